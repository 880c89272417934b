"""A fake transport: an in-memory table that understands exactly the requests the pool builds.

Failures are scripted: ``fail`` queues `TransportError`s (or exceptions) that the next calls
raise before (``applied=False``) or after (``applied=True``) the write is applied, so tests
can tell what a real server would have done. ``gate`` holds every call on the wire until it is
set, and ``on_the_wire(n)`` waits until ``n`` calls are there: tests order their steps by these
events, never by sleeping.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from typing import Any

from async_counters.transport import Outcome, TransportError


class FakeTransport:
    def __init__(self, *, latency: float = 0.0) -> None:
        self.values: dict[str, int] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.script: deque[tuple[TransportError, bool]] = deque()
        self.latency = latency
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False
        self.gate: asyncio.Event | None = None  # when set, calls wait for it
        self.return_all_old = True  # False: like dynalite, no item in a failed condition
        self._arrived = asyncio.Event()  # set whenever a call reaches the transport

    def fail(
        self,
        outcome: Outcome,
        code: str,
        *,
        times: int = 1,
        applied: bool = False,
        reasons: tuple[str, ...] = (),
    ) -> None:
        for _ in range(times):
            status = 500 if outcome is Outcome.AMBIGUOUS else 400
            error = TransportError(outcome, code, "scripted", status=status, reasons=reasons)
            self.script.append((error, applied))

    def requests(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    async def on_the_wire(self, count: int = 1) -> None:
        """Wait until at least ``count`` calls are in flight here (sent, not yet answered)."""
        while self.in_flight < count:
            self._arrived.clear()
            await self._arrived.wait()

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append((operation, dict(params)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self._arrived.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.latency:
                await asyncio.sleep(self.latency)
            else:
                await asyncio.sleep(0)
            failure = self.script.popleft() if self.script else None
            if failure is not None and not failure[1]:
                raise failure[0]
            response = self._apply(operation, params)
            if failure is not None:
                raise failure[0]
            return response
        finally:
            self.in_flight -= 1

    def _apply(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "UpdateItem":
            key = params["Key"]["pk"]["S"]
            values = params["ExpressionAttributeValues"]
            delta = int(values[":n"]["N"])
            condition = params.get("ConditionExpression")
            current = self.values.get(key)
            if condition is not None and ":max" in values:  # a rate limiter's admission
                allowed = current is None or current <= int(values[":max"]["N"])
            elif condition is not None:
                minimum = int(values[":min"]["N"])
                allowed = (current is None and condition.startswith("attribute_not_exists")) or (
                    current is not None and current >= minimum
                )
            if condition is not None and not allowed:
                item = None if current is None else {"count": {"N": str(current)}}
                if not self.return_all_old:
                    item = None
                raise TransportError(
                    Outcome.CONDITION_FAILED,
                    "ConditionalCheckFailedException",
                    "The conditional request failed",
                    status=400,
                    item=item,
                )
            self.values[key] = (current or 0) + delta
            return {"Attributes": {"count": {"N": str(self.values[key])}}}
        if operation == "GetItem":
            key = params["Key"]["pk"]["S"]
            if key not in self.values:
                return {}
            return {"Item": {"count": {"N": str(self.values[key])}}}
        if operation == "BatchGetItem":
            (table, request), *_ = params["RequestItems"].items()
            items = [
                {"pk": {"S": k["pk"]["S"]}, "count": {"N": str(self.values[k["pk"]["S"]])}}
                for k in request["Keys"]
                if k["pk"]["S"] in self.values
            ]
            return {"Responses": {table: items}, "UnprocessedKeys": {}}
        raise AssertionError(f"unexpected operation {operation}")

    async def aclose(self) -> None:
        self.closed = True
