"""What the workers of a run acknowledged, recorded in the counters' table itself.

With ``--run-id ID`` the run's counters are ``bench:ID:<n>``: they start from 0, so that the
value of each is exactly the sum of what every worker of the run, on any host, acknowledged.
Each worker records its per-key sums (and the bounds of its ambiguous operations, plus what it
has in flight when it writes mid-run) as items next to the counters:

- ``__bench__:ID`` holds ``workers``, the string set of every worker that joined the run
  (``ADD`` of a set element: idempotent, so safe to retry);
- ``__bench__:ID:WORKER:<chunk>`` holds one worker's record, split into chunks under DynamoDB's
  400 KB item limit. Chunk 0 is written last and says how many chunks there are, whether the
  record is ``final``, and its sequence number; every chunk carries that number, so a reader can
  tell a whole snapshot from one being rewritten. A write only replaces an older sequence number
  (a condition), so every ledger write is idempotent and retried through ambiguity.

Numbers travel as JSON integers inside string attributes: exact at any size, and the same on any
DynamoDB-speaking server. `verify_run` reads all of it back and checks every counter.

Every ledger request asks for its ConsumedCapacity, as the pool's do: `RunLedger.units` is what
the ledger cost, which the bench reports apart from the workload's cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from async_counters.clock import Clock
from async_counters.connect import TransportSettings, open_transport
from async_counters.observers import Observers
from async_counters.retry import DEFAULT_RETRY
from async_counters.sender import Failed, Sender
from async_counters.slots import Slots
from async_counters.transport import Outcome, Transport

from .config import RunConfig
from .metrics import KeyTally, WorkerRecorder
from .verify import Verification, verify

__all__ = ["LEDGER_PREFIX", "RunLedger", "RunRecords", "verify_run"]

LEDGER_PREFIX: Final = "__bench__"
#: Characters of per-key JSON per chunk: well under DynamoDB's 400 KB item limit.
CHUNK_CHARS: Final = 300_000
#: How many times a reader re-reads a record caught while it was being rewritten.
READ_ATTEMPTS: Final = 10


def run_item_key(run_id: str) -> str:
    return f"{LEDGER_PREFIX}:{run_id}"


def worker_item_key(run_id: str, worker_id: str, chunk: int) -> str:
    return f"{LEDGER_PREFIX}:{run_id}:{worker_id}:{chunk}"


def chunk_tallies(tallies: Mapping[str, KeyTally], limit: int = CHUNK_CHARS) -> list[str]:
    """The tallies as JSON objects ``{key: [acknowledged, down, up]}``, each under ``limit``."""
    chunks: list[str] = []
    current: dict[str, list[int]] = {}
    size = 2
    for key, tally in tallies.items():
        entry = [tally["acknowledged"], tally["ambiguous_down"], tally["ambiguous_up"]]
        cost = len(json.dumps({key: entry})) + 1
        if current and size + cost > limit:
            chunks.append(json.dumps(current, separators=(",", ":")))
            current, size = {}, 2
        current[key] = entry
        size += cost
    chunks.append(json.dumps(current, separators=(",", ":")))
    return chunks


def parse_tallies(text: str) -> dict[str, KeyTally]:
    data = json.loads(text)
    return {
        key: KeyTally(acknowledged=int(ack), ambiguous_down=int(down), ambiguous_up=int(up))
        for key, (ack, down, up) in data.items()
    }


class _Superseded(Exception):
    """A conditional ledger write found its own sequence number (or a newer one) in place."""


#: Ledger requests on the wire at once: a worker writes its chunks one after another.
LEDGER_IN_FLIGHT: Final = 4


class RunLedger:
    """Reads and writes a run's records through the pool's sender (its retry loop, its clock)."""

    def __init__(self, transport: Transport, table: str, key_attribute: str, run_id: str) -> None:
        policy = DEFAULT_RETRY
        self._observers = Observers()
        self._sender = Sender(
            policy=policy,
            clock=Clock(now=policy.clock, sleep=policy.sleep),
            observers=self._observers,
            slots=Slots(LEDGER_IN_FLIGHT),
            transport=transport,
        )
        self.table = table
        self.key_attribute = key_attribute
        self.run_id = run_id
        self._sequence = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, config: RunConfig, endpoint_url: str | None, run_id: str
    ) -> AsyncIterator[RunLedger]:
        """A ledger for ``run_id`` in the run's table, over a transport of the run's kind (the
        pool's rule for local servers included), closed on exit."""
        kind = config.pool_options.get("transport", "fast")
        settings = TransportSettings(
            kind="botocore" if kind == "botocore" else "fast",
            endpoint_url=endpoint_url,
            region_name=config.target.region,
            max_in_flight=LEDGER_IN_FLIGHT,
        )
        key_attribute = str(config.pool_options.get("key_attribute", "pk"))
        async with contextlib.AsyncExitStack() as stack:
            transport = await open_transport(settings, stack)
            yield cls(transport, config.target.table, key_attribute, run_id)

    @property
    def units(self) -> tuple[float, float]:
        """``(write units, read units)`` the ledger's requests were charged so far."""
        stats = self._observers.stats
        return sum(stats.writes.values()), sum(stats.reads.values())

    async def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Send with retries: every ledger request is idempotent, ambiguous ones included."""
        params = {**params, "ReturnConsumedCapacity": "TOTAL"}
        try:
            return await self._sender.send(operation, params, idempotent=True)
        except Failed as failure:
            outcome = failure.error.outcome
            if outcome is Outcome.CONDITION_FAILED:
                raise _Superseded from None
            if outcome is Outcome.TABLE_NOT_FOUND:
                raise LookupError(f"table {self.table!r} not found") from None
            raise RuntimeError(f"ledger {operation} failed: {failure.error}") from None

    def _key(self, value: str) -> dict[str, Any]:
        return {self.key_attribute: {"S": value}}

    async def register(self, worker_id: str) -> None:
        """Add ``worker_id`` to the run's set of workers."""
        await self._call(
            "UpdateItem",
            {
                "TableName": self.table,
                "Key": self._key(run_item_key(self.run_id)),
                "UpdateExpression": "ADD #w :w",
                "ExpressionAttributeNames": {"#w": "workers"},
                "ExpressionAttributeValues": {":w": {"SS": [worker_id]}},
            },
        )

    async def write_worker(
        self, worker_id: str, recorder: WorkerRecorder, *, final: bool, config: RunConfig
    ) -> None:
        """Record what the worker acknowledged so far (in flight counts as ambiguous)."""
        self._sequence += 1
        tallies = recorder.key_tallies(include_pending=not final)
        chunks = chunk_tallies(tallies)
        workload = config.workload
        summary = {
            "counts": dict(recorder.totals),
            "key_prefix": workload.key_prefix,
            "keys": workload.keys,
        }
        for index in [*range(1, len(chunks)), 0]:
            names = {"#seq": "seq", "#data": "data"}
            values: dict[str, Any] = {
                ":seq": {"N": str(self._sequence)},
                ":data": {"S": chunks[index]},
            }
            if index == 0:
                names.update(
                    {"#chunks": "chunks", "#state": "state", "#at": "written_at", "#sum": "summary"}
                )
                values[":chunks"] = {"N": str(len(chunks))}
                values[":state"] = {"S": "final" if final else "running"}
                values[":at"] = {"N": str(round(time.time(), 3))}
                values[":sum"] = {"S": json.dumps(summary, separators=(",", ":"))}
            assignments = ", ".join(f"{name} = :{name[1:]}" for name in names)
            # A worker writes its chunks one after another; a write is refused only when the
            # item already holds this sequence number, i.e. this same write applied before an
            # ambiguous answer.
            with contextlib.suppress(_Superseded):
                await self._call(
                    "UpdateItem",
                    {
                        "TableName": self.table,
                        "Key": self._key(worker_item_key(self.run_id, worker_id, index)),
                        "UpdateExpression": "SET " + assignments,
                        "ConditionExpression": "attribute_not_exists(#seq) OR #seq < :seq",
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    },
                )

    async def _get(self, key: str) -> dict[str, Any] | None:
        response = await self._call(
            "GetItem",
            {"TableName": self.table, "Key": self._key(key), "ConsistentRead": True},
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    async def read(self) -> RunRecords:
        """Every worker's latest whole record of the run."""
        run_item = await self._get(run_item_key(self.run_id))
        workers = sorted(run_item.get("workers", {}).get("SS", [])) if run_item else []
        records = RunRecords(self.run_id)
        for worker_id in workers:
            await self._read_worker(worker_id, records)
        return records

    async def _read_worker(self, worker_id: str, records: RunRecords) -> None:
        for _ in range(READ_ATTEMPTS):
            head = await self._get(worker_item_key(self.run_id, worker_id, 0))
            if head is None:
                records.missing.append(worker_id)
                return
            sequence = head["seq"]["N"]
            parts = [head["data"]["S"]]
            whole = True
            for index in range(1, int(head["chunks"]["N"])):
                item = await self._get(worker_item_key(self.run_id, worker_id, index))
                if item is None or item["seq"]["N"] != sequence:
                    whole = False
                    break
                parts.append(item["data"]["S"])
            if whole:
                summary = json.loads(head["summary"]["S"])
                records.add(
                    worker_id,
                    state=head["state"]["S"],
                    written_at=float(head["written_at"]["N"]),
                    summary=summary,
                    tallies=[parse_tallies(part) for part in parts],
                )
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"the record of worker {worker_id} kept changing while read")


class RunRecords:
    """What the ledger says about a run: per worker, its state and its tallies."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.workers: dict[str, dict[str, Any]] = {}
        self.missing: list[str] = []
        self.tallies: dict[str, KeyTally] = {}
        self.keys: list[str] = []

    def add(
        self,
        worker_id: str,
        *,
        state: str,
        written_at: float,
        summary: Mapping[str, Any],
        tallies: list[dict[str, KeyTally]],
    ) -> None:
        from .metrics import merge_key_tallies

        self.workers[worker_id] = {
            "state": state,
            "written_at": written_at,
            "counts": dict(summary.get("counts", {})),
        }
        self.tallies = merge_key_tallies([self.tallies, *tallies])
        prefix, count = summary.get("key_prefix"), summary.get("keys")
        if isinstance(prefix, str) and isinstance(count, int):
            width = len(str(count - 1))
            self.keys = list(
                dict.fromkeys([*self.keys, *(f"{prefix}{i:0{width}d}" for i in range(count))])
            )

    @property
    def unfinished(self) -> list[str]:
        return [w for w, record in self.workers.items() if record["state"] != "final"]

    def incomplete_reasons(self) -> list[str]:
        reasons = []
        now = time.time()
        for worker_id in self.unfinished:
            age = now - self.workers[worker_id]["written_at"]
            reasons.append(
                f"worker {worker_id} has not finished (last record {age:.0f}s ago); "
                "its in-flight operations count as ambiguous"
            )
        for worker_id in self.missing:
            reasons.append(f"worker {worker_id} joined the run but never recorded anything")
        return reasons


async def verify_run(ledger: RunLedger, read_counters: Any) -> tuple[Verification, RunRecords]:
    """Check every counter of the run against the sum of all its workers' records.

    ``read_counters`` is an async callable returning the current values of a list of keys (a
    pool's ``get_many``). The run's counters start from 0, so nothing is read before.
    """
    records = await ledger.read()
    keys = list(dict.fromkeys([*records.keys, *records.tallies]))
    after: dict[str, int] = await read_counters(keys) if keys else {}
    incomplete = records.incomplete_reasons()
    if not records.workers and not records.missing:
        incomplete.append(f"no worker has recorded anything for run {ledger.run_id!r}")
    workers = len(records.workers)
    basis = f"the sum of what the run's {workers} worker(s) acknowledged"
    verification = verify(keys, {}, records.tallies, after, incomplete=incomplete, basis=basis)
    return verification, records
