"""Which backend a `LocalConfig.backend` names: moto, memory, dynalite or an upstream URL."""

from __future__ import annotations

from async_counters.local.backend import Backend
from async_counters.local.config import MEMORY, MEMORY_ALIAS, TTL_DELAY_SECONDS


def make_backend(
    name: str, *, region: str, endpoint: str, ttl_delay: float = TTL_DELAY_SECONDS
) -> Backend:
    """The backend a `LocalConfig.backend` names (imported only when chosen: moto is slow to
    import and an extra)."""
    if name == "moto":
        from async_counters.local.moto_backend import MotoBackend

        return MotoBackend(region=region, endpoint=endpoint)
    if name in (MEMORY, MEMORY_ALIAS):
        from async_counters.local.memory import MemoryBackend

        return MemoryBackend(region=region, ttl_delay=ttl_delay)
    if name == "dynalite":
        from async_counters.local.dynalite import DynaliteBackend

        return DynaliteBackend()
    if name.startswith(("http://", "https://")):
        from async_counters.local.upstream import UpstreamBackend

        return UpstreamBackend(name)
    raise ValueError(f"unknown backend {name!r}")
