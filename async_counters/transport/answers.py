"""DynamoDB's answers read alike by both transports: error bodies, and answers not to trust.

botocore reads an error answer's code from ``__type`` (the part after ``#``, before any ``:``)
and its message from ``message`` or ``Message``; `service_error` reads it the same way, byte for
byte, for the fast transport, and for the few bodies botocore's own parser cannot read (a JSON
list as an error body). An answer whose ``x-amz-crc32`` does not match its body, or a 200 whose
body is not a JSON object, cannot be trusted, applied or not: it is ``AMBIGUOUS``, so a write is
never sent again on its account (botocore's own retries would re-send it).
"""

from __future__ import annotations

import http.client
import zlib

import orjson

from . import Outcome, TransportError, outcome_for_code

__all__ = [
    "crc32_matches",
    "crc32_mismatch",
    "invalid_success",
    "service_error",
    "throttling_reasons",
]


def crc32_matches(crc: str, raw: bytes) -> bool:
    """Whether ``crc``, an ``x-amz-crc32`` header, is the CRC32 of ``raw``."""
    return crc.isdigit() and int(crc) == zlib.crc32(raw)


def crc32_mismatch(status: int, crc: str) -> TransportError:
    """The error for an answer whose ``x-amz-crc32`` header ``crc`` is not its body's CRC32."""
    return TransportError(
        Outcome.AMBIGUOUS,
        "CRC32Mismatch",
        f"x-amz-crc32 {crc!r} does not match the body",
        status=status,
    )


def invalid_success() -> TransportError:
    """The error for a 200 whose body is not a JSON object (a proxy's page, a cut answer)."""
    return TransportError(
        Outcome.AMBIGUOUS, "InvalidResponse", "200 without a JSON object body", status=200
    )


def throttling_reasons(listed: object) -> tuple[str, ...]:
    """The ``reason`` of each entry of a throttle's ``ThrottlingReasons``, if it sent any."""
    if not isinstance(listed, list):
        return ()
    return tuple(
        str(entry["reason"])
        for entry in listed
        if isinstance(entry, dict) and isinstance(entry.get("reason"), str)
    )


def service_error(status: int, raw: bytes) -> TransportError:
    """A DynamoDB error answer, read as botocore reads it: the code is the part of ``__type``
    after ``#`` (and before any ``:``), the message is ``message`` or ``Message``; a 5xx with an
    empty or HTML body (a proxy's) is known only by its status."""
    stripped = raw.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        code = str(status)
        return TransportError(
            outcome_for_code(code, status),
            code,
            http.client.responses.get(status, ""),
            status=status,
        )
    try:
        body = orjson.loads(raw) if stripped else {}
    except orjson.JSONDecodeError:
        body = {"message": raw.decode("utf-8", "replace")}
    if not isinstance(body, dict):
        body = {}
    kind = body.get("__type")
    code = kind if isinstance(kind, str) and kind else str(status)
    code = code.split(":", 1)[0].rsplit("#", 1)[-1]
    message = body.get("message", body.get("Message", ""))
    item = body.get("Item")
    reasons = throttling_reasons(body.get("ThrottlingReasons"))
    return TransportError(
        outcome_for_code(code, status),
        code,
        message if isinstance(message, str) else str(message),
        status=status,
        item=item if isinstance(item, dict) else None,
        reasons=reasons,
    )
