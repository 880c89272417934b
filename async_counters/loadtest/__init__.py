"""The harness behind ``async-counters bench`` and ``async-counters verify``.

A run is one `RunConfig` (config.py). The parent (runner.py) starts the target, one worker process
per ``--processes`` (worker.py: its own event loop and `CounterPool`, driving drivers.py's closed or
open loop), merges what they measure (metrics.py, HdrHistograms and per-key sums, never a record per
operation), and checks every counter (verify.py; ledger.py for runs recorded with ``--run-id``).
"""

from .config import RunConfig, ServerOptions, Target, Workload
from .verify import KeyCheck, Verification

__all__ = ["KeyCheck", "RunConfig", "ServerOptions", "Target", "Verification", "Workload"]
