"""Signatures refused for the clock: say so, with the skew measured from the server's ``Date``.

DynamoDB refuses a SigV4 request whose ``X-Amz-Date`` is more than 15 minutes from its own clock
(``InvalidSignatureException``, "Signature expired: ..." or "Signature not yet current: ...").
The code alone reads like wrong credentials; the answer's ``Date`` header tells how far this
machine's clock is off, and that is the thing to fix.
"""

from __future__ import annotations

import email.utils

from . import TransportError

__all__ = ["SIGNATURE_WINDOW", "explain"]

#: How far from the server's clock a signature may be dated, in seconds.
SIGNATURE_WINDOW = 15 * 60
_CODE = "InvalidSignatureException"
_TIME_WORDS = ("signature expired", "not yet current")


def _duration(seconds: float) -> str:
    seconds = round(abs(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes) + [f"{seconds} s"]
    return " ".join(parts)


def explain(error: TransportError, date: str | None, now: float) -> TransportError:
    """``error`` with the clock skew said, when it is an ``InvalidSignatureException`` caused by
    the clock: the server says the signature is too old or too new, or its ``Date`` is more
    than 15 minutes from ``now`` (this machine's clock when the answer came, in epoch
    seconds). Otherwise ``error`` itself."""
    if error.code != _CODE or not date:
        return error
    try:
        server = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return error
    skew = now - server
    about_time = any(words in error.message.lower() for words in _TIME_WORDS)
    if not about_time and abs(skew) <= SIGNATURE_WINDOW:
        return error
    side = "ahead of" if skew > 0 else "behind"
    return TransportError(
        error.outcome,
        error.code,
        f"{error.message} (clock skew: this machine's clock is {_duration(skew)} {side} the "
        f"server's, whose answer is dated {date}; DynamoDB refuses signatures more than "
        f"{SIGNATURE_WINDOW // 60} minutes off its clock: set the clock right, e.g. with NTP)",
        status=error.status,
        item=error.item,
    )
