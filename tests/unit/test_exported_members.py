import async_counters

PUBLIC = {
    "AmbiguousWriteError",
    "ConnectError",
    "CounterError",
    "CounterFloorError",
    "CounterPool",
    "Decision",
    "DynamoError",
    "LatencySummary",
    "Outcome",
    "PoolHooks",
    "PoolStats",
    "RateLimiter",
    "RetryPolicy",
    "TableNotFoundError",
    "ThrottledError",
}


def test_all_is_exactly_the_public_names() -> None:
    assert set(async_counters.__all__) == PUBLIC
    assert async_counters.__all__ == sorted(async_counters.__all__)


def test_every_public_name_is_exported() -> None:
    exported = {
        name
        for name, value in vars(async_counters).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("async_counters")
    }
    assert exported == PUBLIC


def test_errors_share_one_root() -> None:
    for name in PUBLIC:
        value = getattr(async_counters, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, async_counters.CounterError)
