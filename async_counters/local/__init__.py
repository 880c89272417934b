"""The embedded DynamoDB: atomic, keep-alive, on 127.0.0.1, with throttling, latency and faults.

    from async_counters.local import LocalDynamo

    async with LocalDynamo() as server:
        server.endpoint_url          # "http://127.0.0.1:<port>"

Also a process of its own: ``async-counters local --port 8000``.
"""

from async_counters.local.config import Capacity, Faults, Latency, LocalConfig
from async_counters.local.ledger import LedgerEntry
from async_counters.local.server import LocalDynamo

__all__ = ["Capacity", "Faults", "Latency", "LedgerEntry", "LocalConfig", "LocalDynamo"]
