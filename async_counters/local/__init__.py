"""The embedded DynamoDB: atomic, keep-alive, on 127.0.0.1, and as hard to please as the real one.

    from async_counters.local import Capacity, Faults, Latency, LocalDynamo

    async with LocalDynamo() as server:          # or: with LocalDynamo() as server
        server.endpoint_url                      # "http://127.0.0.1:<port>", any credentials

It applies one request at a time (moto served as is loses increments), keeps connections alive
and gives each instance its own tables. In front of the backend sit what DynamoDB has and
emulators lack, each off by default:

    LocalDynamo(
        backend="memory",                        # "moto" (default), "memory", "dynalite", or a URL
        capacity=Capacity(partition_write_units=100),    # throttle like a partition
        latency=Latency(mean=0.005, jitter=0.002),       # 5 ms +- 2 ms per request
        faults=Faults(error_after_apply=0.01, seed=7),   # ambiguous outcomes, reproducible
    )
    server.set_faults(Faults(drop_after_apply=0.1))      # while it runs
    server.ledger("counters")["views"]                   # LedgerEntry(sum=..., count=...)

The memory backend also models TransactWriteItems (ClientRequestToken idempotency included),
TTL that deletes late (``ttl_delay``; ``server.sweep_ttl()`` sweeps now) and ConsumedCapacity.
The ledger is what was really applied, the ground truth for reliability tests. The same is
reachable over HTTP under ``/_local/`` (``ledger``, ``faults``, ``stats``, ``config``) and from
the command line: ``async-counters local --port 8000 [--backend memory --latency-ms 5 ...]``,
``async-counters local ledger --endpoint-url URL [TABLE]``, ``async-counters local faults
--endpoint-url URL [--error-after-apply 0.01 ...]``.
"""

from async_counters.local.config import Capacity, Faults, Latency, LocalConfig
from async_counters.local.ledger import LedgerEntry
from async_counters.local.server import LocalDynamo

__all__ = ["Capacity", "Faults", "Latency", "LedgerEntry", "LocalConfig", "LocalDynamo"]
