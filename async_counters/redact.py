"""Credentials taken out of text that came from outside: service messages, their errors.

When a signature does not match, DynamoDB's ``InvalidSignatureException`` quotes the canonical
request it expected, and with temporary credentials that request holds the
``x-amz-security-token`` header's value; other answers and proxies may quote an
``Authorization`` header (the access key ID after ``Credential=``, the ``Signature=``). Every
service message passes through `redact` before it reaches an exception, a hook, a log line or a
bench report, so that none of them ends up in an application's error logs and trackers.

Pure and idempotent (``redact(redact(s)) == redact(s)``); text with nothing to hide comes back
unchanged.

>>> redact("x-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLE\\nhost:dynamodb")
'x-amz-security-token:[REDACTED]\\nhost:dynamodb'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["REDACTED", "redact"]

#: What a secret is replaced with.
REDACTED: Final = "[REDACTED]"

# A value ends at whitespace, a quote, a backslash (an escaped line break, in JSON text) or
# what separates header parameters and query pairs.
_VALUE = r"""[^\s,;&"'<>\\]+"""

_PATTERNS: Final = (
    # The session token as a header line (``x-amz-security-token:V``, ``X-Amz-Security-Token: V``),
    # a query pair (``X-Amz-Security-Token=V``) or a JSON member (``"x-amz-security-token": "V"``).
    # The signed-headers list (``...;x-amz-security-token;...``) names it without a value.
    (
        re.compile(r"""(x-amz-security-token["']?[ \t]*[:=][ \t]*["']?)""" + _VALUE, re.I),
        r"\g<1>" + REDACTED,
    ),
    # The access key ID in ``Credential=KEY/20261202/us-east-1/dynamodb/aws4_request`` (also
    # ``X-Amz-Credential=KEY%2F...``): the key goes, the scope (date, region, service) stays.
    (re.compile(r"(Credential[ \t]*=[ \t]*)[^/\s,;&\"'<>%\\]+", re.I), r"\g<1>" + REDACTED),
    # ``Signature=hex`` (``X-Amz-Signature=`` too), but not ``SignedHeaders=``.
    (re.compile(r"(Signature[ \t]*=[ \t]*)" + _VALUE, re.I), r"\g<1>" + REDACTED),
    # An access key ID standing alone: long-term (AKIA), temporary (ASIA), and the other key
    # kinds IAM issues (ABIA, ACCA). The prefix stays: it tells which kind, and no more.
    (re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{12,124}\b"), r"\g<1>" + REDACTED),
    # A session token standing alone, known by how STS tokens begin (their first bytes are
    # fixed, so their base64 is too); a base64 run from there on is the token.
    (
        re.compile(
            r"(?<![A-Za-z0-9+/])(?:IQoJb3JpZ2lu|FwoGZXIvYXdz|AQoDYXdz|AQoEXAMPLE)[\w+/=%-]*"
        ),
        REDACTED,
    ),
)
# Nothing to redact without one of these: most messages (throttling, validation) pay a few
# substring searches, far cheaper than the patterns (or one case-blind regex) over the text.
_PREFIXES: Final = ("AKIA", "ASIA", "ABIA", "ACCA", "IQoJ", "FwoG", "AQoD", "AQoE")
_WORDS: Final = ("security-token", "credential", "signature")  # matched case-blind
#: What the service says most often (refused conditions, throttling): known clean, looked up once.
_CLEAN: Final = frozenset(
    (
        "ConditionalCheckFailedException",
        "The conditional request failed",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    )
)


def redact(text: str) -> str:
    """``text`` with session tokens, access key IDs and signatures replaced by ``[REDACTED]``."""
    if not text or text in _CLEAN:
        return text
    if not any(prefix in text for prefix in _PREFIXES):
        lower = text.lower()
        if not any(word in lower for word in _WORDS):
            return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
