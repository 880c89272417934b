"""The embedded server's pure parts: token buckets, fault and latency draws, configuration."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from async_counters.local import Capacity, Faults, Latency, LocalConfig, cli
from async_counters.local.capacity import READ, WRITE, CapacityModel
from async_counters.local.faults import FaultInjector, LatencyModel


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def model(**capacity: Any) -> tuple[CapacityModel, Clock]:
    clock = Clock()
    return CapacityModel(Capacity(**capacity), clock=clock), clock


def admitted(m: CapacityModel, n: int, key: str = "k", kind: Any = WRITE, units: float = 1) -> int:
    return sum(not m.take("t", key, kind, units) for _ in range(n))


def test_a_bucket_refuses_past_its_burst_and_refills_at_its_rate() -> None:
    m, clock = model(partition_write_units=10, burst_seconds=2)
    assert admitted(m, 25) == 20  # the burst: 2 s of 10 units/s
    clock.now += 0.5
    assert admitted(m, 10) == 5  # half a second of refill
    clock.now += 60
    assert admitted(m, 100) == 20  # refills up to the burst, no further


def test_a_refused_request_takes_nothing() -> None:
    m, _ = model(partition_write_units=10, burst_seconds=1)
    assert admitted(m, 9) == 9
    assert m.take("t", "k", WRITE, 5) == ["TableWriteKeyRangeThroughputExceeded"]
    assert admitted(m, 1) == 1  # the unit left was not taken by the refusal


def test_keys_and_reads_and_writes_have_buckets_of_their_own() -> None:
    m, _ = model(partition_write_units=5, partition_read_units=7, burst_seconds=1)
    assert admitted(m, 10, key="a") == 5
    assert admitted(m, 10, key="b") == 5
    assert admitted(m, 10, key="a", kind=READ) == 7
    assert m.take("other-table", "a", WRITE, 1) == []


def test_the_table_limit_applies_across_keys() -> None:
    m, _ = model(partition_write_units=100, table_write_units=10, burst_seconds=1)
    admitted_count = sum(admitted(m, 1, key=f"k{i}") for i in range(30))
    assert admitted_count == 10
    assert m.take("t", "fresh", WRITE, 1) == ["TableWriteProvisionedThroughputExceeded"]


def test_both_reasons_when_both_buckets_are_short() -> None:
    m, _ = model(partition_read_units=2, table_read_units=2, burst_seconds=1)
    assert admitted(m, 2, kind=READ) == 2
    assert m.take("t", "k", READ, 1) == [
        "TableReadKeyRangeThroughputExceeded",
        "TableReadProvisionedThroughputExceeded",
    ]


def test_an_item_larger_than_the_bucket_passes_when_the_bucket_is_full() -> None:
    m, clock = model(partition_write_units=10, burst_seconds=1)
    assert m.take("t", "k", WRITE, 50) == []  # full bucket: admitted, 40 units in debt
    clock.now += 4.0
    assert m.take("t", "k", WRITE, 1)  # still repaying
    clock.now += 1.1
    assert m.take("t", "k", WRITE, 1) == []


def test_take_all_judges_items_on_one_bucket_together_and_takes_all_or_none() -> None:
    m, _ = model(partition_write_units=5, burst_seconds=1)
    assert admitted(m, 1, key="a") == 1  # 4 left on "a"
    assert m.take_all([("t", "a", WRITE, 2), ("t", "a", WRITE, 3), ("t", "b", WRITE, 1)]) == [
        ["TableWriteKeyRangeThroughputExceeded"],
        ["TableWriteKeyRangeThroughputExceeded"],
        [],
    ]
    assert admitted(m, 10, key="b") == 5  # the refused transaction took nothing from "b"
    assert m.take_all([("t", "a", WRITE, 2), ("t", "a", WRITE, 2)]) == [[], []]
    assert admitted(m, 1, key="a") == 0


def test_charge_settles_an_estimate_into_debt_or_back_up_to_full() -> None:
    m, _ = model(partition_write_units=10, burst_seconds=1)
    assert m.take("t", "k", WRITE, 2) == []
    m.charge("t", "k", WRITE, 12)  # it really cost 14: 4 in debt
    assert m.take("t", "k", WRITE, 1)
    m.charge("t", "k", WRITE, -100)  # given back, but never past full
    assert admitted(m, 20) == 10


def draws(faults: Faults, n: int = 200, operation: str = "UpdateItem") -> list[Any]:
    injector = FaultInjector(faults)
    return [injector.draw(operation) for _ in range(n)]


def test_the_same_seed_gives_the_same_faults() -> None:
    faults = Faults(error_before_apply=0.1, error_after_apply=0.1, drop_after_apply=0.1, seed=7)
    assert draws(faults) == draws(faults)
    assert draws(faults) != draws(Faults(**{**faults.__dict__, "seed": 8}))


def test_fault_rates_are_respected() -> None:
    faults = Faults(
        error_before_apply=0.1,
        error_after_apply=0.2,
        drop_after_apply=0.05,
        delay_after_apply=0.05,
        seed=1,
    )
    seen = draws(faults, n=20_000)
    share = {kind: seen.count(kind) / len(seen) for kind in set(seen)}
    assert share["error_before_apply"] == pytest.approx(0.1, abs=0.01)
    assert share["error_after_apply"] == pytest.approx(0.2, abs=0.01)
    assert share["drop_after_apply"] == pytest.approx(0.05, abs=0.01)
    assert share["delay_after_apply"] == pytest.approx(0.05, abs=0.01)
    assert share[None] == pytest.approx(0.6, abs=0.015)


def test_faults_hit_only_their_operations() -> None:
    faults = Faults(error_before_apply=1.0)
    assert set(draws(faults, operation="GetItem")) == {None}
    assert set(draws(faults)) == {"error_before_apply"}
    reads = Faults(error_before_apply=1.0, operations=frozenset({"GetItem"}))
    assert set(draws(reads, operation="GetItem")) == {"error_before_apply"}


def test_latency_stays_within_its_jitter() -> None:
    latency = LatencyModel(Latency(mean=0.005, jitter=0.002, seed=3))
    samples = [latency.draw() for _ in range(1000)]
    assert 0.003 <= min(samples) < 0.0035
    assert 0.0065 < max(samples) <= 0.007
    assert LatencyModel(Latency(mean=0.005)).draw() == 0.005


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Faults(error_before_apply=-0.1), ValueError),
        (lambda: Faults(error_after_apply=1.5), ValueError),
        (lambda: Faults(error_before_apply=0.6, drop_after_apply=0.6), ValueError),
        (lambda: Faults(drop_after_apply=True), TypeError),
        (lambda: Faults(delay=0), ValueError),
        (lambda: Latency(mean=0.001, jitter=0.002), ValueError),
        (lambda: Latency(mean=-1), ValueError),
        (lambda: Capacity(partition_write_units=0), ValueError),
        (lambda: Capacity(burst_seconds=float("inf")), ValueError),
        (lambda: Capacity(table_read_units="many"), TypeError),  # type: ignore[arg-type]
        (lambda: LocalConfig(host="0.0.0.0"), ValueError),
        (lambda: LocalConfig(host="10.0.0.1"), ValueError),
        (lambda: LocalConfig(port=70000), ValueError),
        (lambda: LocalConfig(port=True), TypeError),
        (lambda: LocalConfig(backend="postgres"), ValueError),
        (lambda: LocalConfig(ttl_delay=-1), ValueError),
        (lambda: LocalConfig(ttl_delay=float("nan")), ValueError),
        (lambda: LocalConfig(ttl_delay="soon"), TypeError),  # type: ignore[arg-type]
    ],
)
def test_nonsense_configuration_is_refused(build: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert LocalConfig(host=host).host == host


def test_the_default_backend_can_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ASYNC_COUNTERS_LOCAL_BACKEND", raising=False)
    assert LocalConfig().backend == "moto"
    monkeypatch.setenv("ASYNC_COUNTERS_LOCAL_BACKEND", "memory")
    assert LocalConfig().backend == "memory"
    assert LocalConfig(backend="moto").backend == "moto"


def test_the_memory_backend_is_still_accepted_by_its_old_name() -> None:
    assert LocalConfig(backend="fast").backend == "memory"


def test_the_ttl_delay_flag_reaches_the_config() -> None:
    parser = argparse.ArgumentParser()
    cli.add_config_arguments(parser)
    assert cli.config_from_args(parser.parse_args([])).ttl_delay == 300.0
    args = parser.parse_args(["--ttl-delay-seconds", "2.5", "--backend", "memory"])
    assert cli.config_from_args(args).ttl_delay == 2.5
    assert "TransactWriteItems" in cli.config_from_args(args).faults.operations
