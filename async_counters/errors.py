"""The exceptions a caller of the pool can see, all under one root.

```
CounterError
├── CounterFloorError      the decrement would cross its floor; nothing was applied
├── ThrottledError         retries or deadline ran out while throttled; nothing was applied
├── ConnectError           retries or deadline ran out while unable to connect; nothing was applied
├── AmbiguousWriteError    the write may or may not have applied (timeout, dropped connection, 5xx)
├── TableNotFoundError     the table does not exist (or is not active yet)
└── DynamoError            any other service error, with its code and message
```

Every class says, in ``applied``, what is known about the write: ``False`` when it was certainly not
applied, ``None`` when nobody can know. Bad arguments raise ``TypeError``/``ValueError`` before
anything is sent; no botocore or aiohttp exception reaches a caller.

What came from the service (a code, a message, the reason a write is ambiguous) is redacted
(`async_counters.redact`) before it is kept or shown: an error is logged and sent to error
trackers, and a service message can quote a session token, an access key ID or a signature.
"""

from __future__ import annotations

from async_counters.redact import redact

__all__ = [
    "AmbiguousWriteError",
    "ConnectError",
    "CounterError",
    "CounterFloorError",
    "DynamoError",
    "TableNotFoundError",
    "ThrottledError",
]


class CounterError(Exception):
    """Root of every error the pool raises about an operation."""

    #: What is known about the write: False = certainly not applied, None = unknown.
    applied: bool | None = False

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class CounterFloorError(CounterError):
    """The decrement would take the counter below its floor; nothing was applied.

    ``current`` is the counter's value when the server refused, where the server told us.
    """

    def __init__(self, *, key: str, amount: int, floor: int, current: int | None = None) -> None:
        seen = "" if current is None else f" (current value {current})"
        super().__init__(
            f"decrement of {key!r} by {amount} would cross floor {floor}{seen}; nothing applied",
            key=key,
        )
        self.amount = amount
        self.floor = floor
        self.current = current


class _RetriesExhausted(CounterError):
    """``elapsed``: the seconds the retry deadline counted, from the first attempt sent;
    ``queued``: the seconds its retries waited behind a pace or for a pool slot besides (flow
    control, which the deadline leaves out). The call took at least their sum."""

    what = ""  # what kept failing, as the message opens

    def __init__(
        self,
        *,
        key: str | None,
        attempts: int,
        elapsed: float,
        last_code: str,
        queued: float = 0.0,
    ) -> None:
        target = "" if key is None else f" for {key!r}"
        last_code = redact(last_code)
        besides = (
            f", plus {queued:.2f}s waiting its turn (pacing, max_in_flight)"
            if queued >= 0.005
            else ""
        )
        super().__init__(
            f"{self.what}{target} after {attempts} attempt(s) in {elapsed:.2f}s{besides} "
            f"(last: {last_code}); nothing applied",
            key=key,
        )
        self.attempts = attempts
        self.elapsed = elapsed
        self.queued = queued
        self.last_code = last_code


class ThrottledError(_RetriesExhausted):
    """Every attempt was throttled until the retry policy ran out; nothing was applied."""

    what = "throttled"


class ConnectError(_RetriesExhausted):
    """No attempt reached the server before the retry policy ran out; nothing was applied."""

    what = "could not connect"


class AmbiguousWriteError(CounterError):
    """The write may or may not have been applied: it was sent but no answer came back.

    Retrying an ``ADD`` blindly could count it twice, so the pool does not; it reports instead.
    """

    applied = None

    def __init__(self, *, key: str, amount: int, attempts: int, reason: str) -> None:
        reason = redact(reason)
        super().__init__(
            f"write of {amount} to {key!r} may or may not have applied ({reason}) "
            f"on attempt {attempts}",
            key=key,
        )
        self.amount = amount
        self.attempts = attempts
        self.reason = reason


class TableNotFoundError(CounterError):
    """The table does not exist; call ``ensure_table()`` or create it."""

    def __init__(self, table: str, *, key: str | None = None) -> None:
        super().__init__(f"table {table!r} not found", key=key)
        self.table = table


class DynamoError(CounterError):
    """Any other error the service answered, with its code and message.

    The request was refused as a whole, so nothing was applied.
    """

    def __init__(
        self, code: str, message: str, *, status: int | None = None, key: str | None = None
    ) -> None:
        code, message = redact(code), redact(message)
        super().__init__(f"{code}: {message}", key=key)
        self.code = code
        self.message = message
        self.status = status
