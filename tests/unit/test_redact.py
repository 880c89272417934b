"""Redaction of credentials from service messages: a table of cases, and where it is applied."""

from __future__ import annotations

import pytest

from async_counters import AmbiguousWriteError, DynamoError, ThrottledError
from async_counters.redact import REDACTED, redact
from async_counters.transport import Outcome, TransportError

KEY_ID = "ASIAQNZGKSLUBF3VXYZ7"
LONG_TERM_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TOKEN = (
    "IQoJb3JpZ2luX2VjEKr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD3mG8Ck4Yw7f3uG0Zb1fKq8pB+7yq"
    "Qw2y9eVb1nq5Hj0AIgbM3S9jV0bqzW2r5l1k3QnHvX4nP0E6sXqgqS5g1mO6kq9QIIo///////////8BEAAa"
    "DDEyMzQ1Njc4OTAxMiIM1K3R0n0a3oX7r+4B=="
)
OLD_TOKEN = "FwoGZXIvYXdzEBYaDHhBTEXAMPLEbGVzdCIqmdGK8ZQWHm0lLmXaBs4r3v8R1Zw9xp/5bgCuZ6Kq+T0H=="
SIGNATURE = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
SCOPE = "20261202/us-east-1/dynamodb/aws4_request"
AUTHORIZATION = (
    f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{SCOPE}, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
    f"Signature={SIGNATURE}"
)
# As DynamoDB's InvalidSignatureException writes it: the canonical request it expected (with the
# session token's header line), then the string to sign.
INVALID_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n"
    "The Canonical String for this request should have been\n'POST\n/\n\n"
    "content-type:application/x-amz-json-1.0\nhost:dynamodb.us-east-1.amazonaws.com\n"
    f"x-amz-date:20261202T041000Z\nx-amz-security-token:{TOKEN}\n"
    "x-amz-target:DynamoDB_20120810.UpdateItem\n\n"
    "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n"
    "5f2a3b7c0d1e9f8a6b4c2d0e1f3a5b7c9d8e6f4a2b0c1d3e5f7a9b8c6d4e2f0a'\n\n"
    "The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n20261202T041000Z\n"
    f"{SCOPE}\n0f3c8b2a1d4e6f7a9b8c5d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a'\n"
)
SECRETS = (KEY_ID, LONG_TERM_KEY_ID, TOKEN, OLD_TOKEN, SIGNATURE)

CASES = [
    # (text, what it must become)
    (f"x-amz-security-token:{TOKEN}\n", f"x-amz-security-token:{REDACTED}\n"),
    (f"X-Amz-Security-Token: {TOKEN}\r\n", f"X-Amz-Security-Token: {REDACTED}\r\n"),
    (
        f'{{"X-Amz-Security-Token": "{TOKEN}", "a": 1}}',
        f'{{"X-Amz-Security-Token": "{REDACTED}", "a": 1}}',
    ),
    (
        f"/?X-Amz-Security-Token={TOKEN.replace('+', '%2B')}&X-Amz-Date=20261202T041000Z",
        f"/?X-Amz-Security-Token={REDACTED}&X-Amz-Date=20261202T041000Z",
    ),
    (
        f"Authorization: {AUTHORIZATION}",
        f"Authorization: AWS4-HMAC-SHA256 Credential={REDACTED}/{SCOPE}, SignedHeaders="
        f"content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature={REDACTED}",
    ),
    (
        f"X-Amz-Credential={LONG_TERM_KEY_ID}%2F20261202%2Fus-east-1%2Fdynamodb%2Faws4_request"
        f"&X-Amz-Signature={SIGNATURE}",
        f"X-Amz-Credential={REDACTED}%2F20261202%2Fus-east-1%2Fdynamodb%2Faws4_request"
        f"&X-Amz-Signature={REDACTED}",
    ),
    (
        f"The security token included in the request is invalid: {KEY_ID}",
        f"The security token included in the request is invalid: ASIA{REDACTED}",
    ),
    (f"key {LONG_TERM_KEY_ID}.", f"key AKIA{REDACTED}."),
    (f"token {TOKEN} expired", f"token {REDACTED} expired"),
    (f"token ({OLD_TOKEN})", f"token ({REDACTED})"),
    # A JSON body that was not parsed: escaped line breaks end a value.
    (
        f'{{"message":"x-amz-security-token:{TOKEN}\\nx-amz-target:X"}}',
        f'{{"message":"x-amz-security-token:{REDACTED}\\nx-amz-target:X"}}',
    ),
    # Nothing to hide: unchanged.
    ("", ""),
    (
        "Throughput exceeds the current capacity of your table or index.",
        "Throughput exceeds the current capacity of your table or index.",
    ),
    (
        "The request signature we calculated does not match the signature you provided.",
        "The request signature we calculated does not match the signature you provided.",
    ),
    ("SignedHeaders=content-type;host", "SignedHeaders=content-type;host"),
    ("Requested resource not found: Table: ASIAN-food not found", None),
    ("counter 'AKIAsmall': 1", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redact(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_invalid_signature_message_keeps_everything_but_the_secrets() -> None:
    redacted = redact(INVALID_SIGNATURE)
    for secret in SECRETS:
        assert secret not in redacted
    assert f"x-amz-security-token:{REDACTED}\nx-amz-target:DynamoDB_20120810.UpdateItem" in (
        redacted
    )
    assert "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n" in redacted
    assert SCOPE in redacted  # the scope (date, region, service) is what one debugs with
    assert redacted == INVALID_SIGNATURE.replace(TOKEN, REDACTED)


@pytest.mark.parametrize("text", [text for text, _ in CASES] + [INVALID_SIGNATURE])
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


def test_transport_errors_are_redacted_where_they_are_made() -> None:
    error = TransportError(
        Outcome.REJECTED, "InvalidSignatureException", INVALID_SIGNATURE, status=400
    )
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        assert TOKEN not in text
        assert REDACTED in text


def test_errors_carrying_service_text_are_redacted() -> None:
    message = f"{INVALID_SIGNATURE} {AUTHORIZATION}"
    errors = [
        DynamoError("InvalidSignatureException", message, status=400, key="k"),
        AmbiguousWriteError(key="k", amount=1, attempts=1, reason=message),
        ThrottledError(key="k", attempts=3, elapsed=1.0, last_code=f"Code {KEY_ID}"),
    ]
    for error in errors:
        shown = [str(error), repr(error), *map(str, vars(error).values())]
        for text in shown:
            for secret in SECRETS:
                assert secret not in text
