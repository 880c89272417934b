"""`ClientRequestToken` memory: what makes a `TransactWriteItems` retry idempotent.

DynamoDB remembers a token for 10 minutes after the transaction that used it completed: the
same token with the same items is answered again without being applied; with other items it is
refused with ``IdempotentParameterMismatchException``. A token is remembered by a digest of the
request's items (not the request: ``ReturnConsumedCapacity`` only changes what is reported), so
a record is a few dozen bytes, and records are forgotten once their window has passed. The count
is bounded as well: past ``max_tokens``, the oldest are forgotten early (and counted), so a
flood of transactions can slow nothing and fill no memory. Only a transaction that completed is
remembered: a cancelled one changed nothing, and its retry is judged afresh.

    tokens = TokenMemory(clock=time.monotonic)
    tokens.check("t-1", digest)        # None (new), or "replay"; raises TokenMismatch
    tokens.remember("t-1", digest)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Literal

#: DynamoDB's idempotency window, counted from the transaction's completion.
IDEMPOTENCY_SECONDS: Final = 600.0
#: About 300 bytes a record (measured: benchmarks/memory_transactions.py): 300,000 tokens hold
#: 10 minutes of 500 transactions/s in about 90 MB.
MAX_TOKENS: Final = 300_000


MISMATCH_MESSAGE: Final = (
    "The request uses the same client token as a previous, but non-identical request. Do not "
    "reuse a client token with different requests, unless an hour has passed."
)


class TokenMismatch(Exception):
    """The token was used, within its window, for other items."""


def digest(items: Any) -> bytes:
    """A digest of a transaction's items, the same for the same items however keys are ordered."""
    text = json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class TokenMemory:
    """Tokens of completed transactions for `window` seconds, at most `max_tokens` of them."""

    __slots__ = ("_records", "clock", "evicted", "max_tokens", "window")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: float = IDEMPOTENCY_SECONDS,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        self.clock = clock
        self.window = window
        self.max_tokens = max_tokens
        #: Tokens forgotten before their window ended, because the memory was full.
        self.evicted = 0
        # In completion order, so the expired are always at the front.
        self._records: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def _expire(self, now: float) -> None:
        records = self._records
        while records:
            token, (_, completed) = next(iter(records.items()))
            if now - completed < self.window:
                return
            del records[token]

    def check(self, token: str, items_digest: bytes) -> Literal["replay"] | None:
        """``"replay"`` if this token completed these items within the window, None if the
        token is new (or its window passed); `TokenMismatch` if it completed other items."""
        self._expire(self.clock())
        record = self._records.get(token)
        if record is None:
            return None
        if record[0] != items_digest:
            raise TokenMismatch(token)
        return "replay"

    def remember(self, token: str, items_digest: bytes) -> None:
        """Record a completed transaction under its token."""
        now = self.clock()
        self._expire(now)
        self._records.pop(token, None)
        self._records[token] = (items_digest, now)
        while len(self._records) > self.max_tokens:
            self._records.popitem(last=False)
            self.evicted += 1
