"""A table's description, read once its throttles name its capacity: the table's pace starts at
the write capacity it gives, where it would guess and descend through the silence after the
bucket ran dry. A hint only: a measured pace under it stays, and a description that cannot be
read leaves the pace to find the rate as before."""

from __future__ import annotations

from typing import Any

import pytest

from async_counters.described import REFRESH, names_table_capacity, write_capacity
from async_counters.limiter import KeyLimiter
from async_counters.transport import Outcome

from .fake_time import VirtualTime
from .partition_sim import Described, Result, load
from .virtual_loop import run_virtual


def _table(mode: str | None, **fields: Any) -> dict[str, Any]:
    table: dict[str, Any] = dict(fields)
    if mode is not None:
        table["BillingModeSummary"] = {"BillingMode": mode}
    return {"Table": table}


@pytest.mark.parametrize(
    ("description", "units"),
    [
        (_table("PROVISIONED", ProvisionedThroughput={"WriteCapacityUnits": 25}), 25.0),
        (_table(None, ProvisionedThroughput={"WriteCapacityUnits": 5}), 5.0),  # created so
        (_table("PAY_PER_REQUEST", OnDemandThroughput={"MaxWriteRequestUnits": 400}), 400.0),
        (_table("PAY_PER_REQUEST", OnDemandThroughput={"MaxWriteRequestUnits": -1}), None),
        (_table("PAY_PER_REQUEST", ProvisionedThroughput={"WriteCapacityUnits": 0}), None),
        (_table("PROVISIONED", ProvisionedThroughput={"WriteCapacityUnits": 0}), None),
        (_table("PROVISIONED", ProvisionedThroughput={"WriteCapacityUnits": True}), None),
        (_table("PROVISIONED", ProvisionedThroughput={"WriteCapacityUnits": "25"}), None),
        (_table("PROVISIONED"), None),
        ({"Table": "counters"}, None),
        ({}, None),
    ],
)
def test_a_description_gives_the_write_capacity_of_its_billing_mode(
    description: dict[str, Any], units: float | None
) -> None:
    assert write_capacity(description) == units


@pytest.mark.parametrize(
    ("reasons", "asks"),
    [
        (("TableWriteProvisionedThroughputExceeded",), True),
        (("TableWriteMaxOnDemandThroughputExceeded",), True),
        (("TableWriteKeyRangeThroughputExceeded", "TableWriteProvisionedThroughputExceeded"), True),
        (("TableWriteKeyRangeThroughputExceeded",), False),  # a partition's: paced per key
        (("IndexWriteProvisionedThroughputExceeded",), False),  # an index's capacity is its own
        (("TableWriteAccountLimitExceeded",), False),  # the account's: no table describes it
        (("TableReadProvisionedThroughputExceeded",), False),
        ((), False),
    ],
)
def test_only_a_throttle_naming_the_tables_write_capacity_asks_for_its_description(
    reasons: tuple[str, ...], asks: bool
) -> None:
    assert names_table_capacity(reasons) is asks


def _guessed(time: VirtualTime) -> KeyLimiter:
    """A limiter whose key just met a crowd all throttled: its pace is a guess."""
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    for _ in range(40):
        limiter.observe("table", Outcome.THROTTLED, 0, rtt=0.005)
    time.now += 0.001
    limiter.observe("table", Outcome.THROTTLED, 0, rtt=0.005)
    assert limiter.paced("table")
    return limiter


def test_a_told_capacity_replaces_a_guess_but_no_pace_that_is_not_one() -> None:
    time = VirtualTime()
    limiter = _guessed(time)
    guess = limiter.rates()["table"]
    assert guess > 100.0  # a crowd's guess, far above the table's 10/s
    limiter.tell("table", 10.0)
    assert limiter.rates()["table"] == pytest.approx(10.0)
    assert limiter.delay("table") <= 0.1 + 1e-9  # the next write a slot of it away
    # Told again (the description read again 10 s later): a pace told, or measured, is kept,
    # under or above it. Read again, a capacity must not hold down a pace that found more.
    limiter.tell("table", 20.0)
    assert limiter.rates()["table"] == pytest.approx(10.0)
    limiter.tell("table", 5.0)
    assert limiter.rates()["table"] == pytest.approx(10.0)


async def test_a_pace_cut_blind_after_it_was_told_is_not_told_again() -> None:
    """Told 50, then a window overrun beyond measure (another process joined the table): a
    blind cut, a guess. Read again, the capacity must not put the share back to the whole."""
    time = VirtualTime()
    limiter = _guessed(time)
    limiter.tell("table", 50.0)
    assert limiter.told("table")
    epoch = await limiter.acquire("table")
    time.now += 0.06
    limiter.observe("table", Outcome.ACKNOWLEDGED, epoch, rtt=0.005)
    for _ in range(3):
        limiter.observe("table", Outcome.THROTTLED, epoch, rtt=0.005)
    cut = limiter.rates()["table"]
    assert cut < 50.0
    limiter.tell("table", 50.0)
    assert limiter.rates()["table"] == pytest.approx(cut, rel=0.01)


def test_a_told_capacity_paces_no_key_that_was_not_throttled() -> None:
    time = VirtualTime()
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    limiter.tell("table", 10.0)
    assert not limiter.known("table") and limiter.rates() == {}


async def test_requests_admitted_at_a_guess_go_round_again_once_the_capacity_is_told() -> None:
    time = VirtualTime()
    limiter = _guessed(time)
    epoch = await limiter.acquire("table")
    assert not limiter.stale("table", epoch)
    limiter.tell("table", 10.0)
    assert limiter.stale("table", epoch)


def _small_table(
    described: Described,
    shape: str = "tokens",
    seed: int = 1,
    *,
    seconds: float = 30.0,
    warmup: float = 10.0,
) -> Result:
    """16 callers on one key of a provisioned table of 10 writes/s holding a second of it, for
    30 s: the crowd spends the burst in the first round trips, then meets the rate."""
    result = run_virtual(
        load(
            shape=shape,  # type: ignore[arg-type]
            rate=10.0,
            burst=1.0,
            callers=16,
            seconds=seconds,
            warmup=warmup,
            scope="table",
            seed=seed,
            described=described,
        )
    )
    assert result.failed == 0 and result.value == result.acks_total, result.line()
    return result


@pytest.mark.parametrize("shape", ["tokens", "gcra"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_described_tables_pace_starts_at_its_capacity_not_at_a_guess(
    shape: str, seed: int
) -> None:
    """Undescribed, the table's pace guesses from the crowd's first round, then halves through
    the silence, three throttles a step, and measures its way down: 39-42 throttles, 1.12-1.13
    requests per ack over the 30 s (seeds 1-2). Told 10/s, it is paced there a round trip after
    the first throttle: 19-23 throttles, mostly the first round's, 1.06-1.07."""
    described, undescribed = _small_table(True, shape, seed), _small_table(False, shape, seed)
    throttles = described.requests - described.acks_total
    before = undescribed.requests - undescribed.acks_total
    assert throttles <= 0.6 * before, (described.line(), undescribed.line())
    assert described.per_ack <= 1.10, described.line()
    assert described.goodput >= 0.95 and described.steady_goodput >= 0.95, described.line()
    assert described.descriptions <= 30 / REFRESH + 1  # at most once in `REFRESH`, not per throttle


@pytest.mark.parametrize("shape", ["tokens", "gcra"])
def test_a_description_of_less_than_the_table_takes_holds_no_pace_down(shape: str) -> None:
    """The description says 5/s, and the table takes 10 (its capacity raised since): the pace
    told 5 probes above it, slowly (the edge is taken as found), and reaches the rate within
    the two minutes. Put back to the told 5 at each read, as a first version did, it stayed at
    half the cap."""
    result = _small_table(5.0, shape, seconds=150.0, warmup=120.0)
    assert result.descriptions == 1, result.line()  # told once, nothing read while it lasts
    assert result.steady_goodput >= 0.95, result.line()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_description_back_before_the_first_throttle_is_counted_still_tells(seed: int) -> None:
    """The proxy refuses at once, and a refusal waits until its ack would be back before it
    is counted: the table's state is made then. A description asked for at the refusal came
    back as soon, found no state to tell, and none was read for 10 s (seed 2: 1.06 requests per
    ack, where seeds 1 and 3 made 1.01-1.02). It is now asked for once the state exists."""
    result = run_virtual(
        load(
            shape="gcra",
            rate=10.0,
            burst=1.0,
            callers=2,
            seconds=30.0,
            warmup=10.0,
            scope="table",
            seed=seed,
        )
    )
    assert result.failed == 0 and result.value == result.acks_total, result.line()
    assert result.per_ack <= 1.03, result.line()


def test_a_description_denied_leaves_the_pace_to_find_the_rate_itself() -> None:
    """No ``dynamodb:DescribeTable`` permission: the pool asks no more than once in `REFRESH`,
    surfaces nothing, and paces as a table that gives no capacity."""
    denied, undescribed = _small_table("denied"), _small_table(False)
    assert 1 <= denied.descriptions <= 30 / REFRESH + 1
    assert denied.line() == undescribed.line()


@pytest.mark.parametrize("shape", ["tokens", "gcra"])
@pytest.mark.parametrize("told", [20.0, 40.0])
def test_a_description_of_more_than_the_table_takes_is_followed_down(
    shape: str, told: float
) -> None:
    """The table's description says 20 or 40/s, and it takes 10 (other writers have the rest,
    as when several processes write one table): the pace told overruns, steps and cuts to
    what is accepted, as after any pace that held. A cut to under half of a told rate is not a
    storm to regain fast from: treated as one, the pace climbed back towards 40 and overran
    it every few seconds (1.05-1.06 requests per ack in the steady part)."""
    result = _small_table(told, shape)
    assert result.steady_goodput >= 0.95, result.line()
    assert result.steady_per_ack <= 1.03, result.line()
