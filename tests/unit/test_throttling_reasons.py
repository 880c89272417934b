"""``ThrottlingReasons`` tell a hot partition from a table's limit: the first paces the key, the
second the table as a whole (every key's writes share it)."""

from __future__ import annotations

import orjson
import pytest

from async_counters.clock import Clock
from async_counters.limiter import KeyLimiter
from async_counters.observers import Observers
from async_counters.retry import RetryPolicy
from async_counters.sender import Sender
from async_counters.slots import Slots
from async_counters.transport import Outcome, TransportError
from async_counters.transport.answers import service_error

from .test_sender import Scripted, VirtualTime

ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/counters"


def throttle(*reasons: str) -> TransportError:
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "throughput exceeded",
        "ThrottlingReasons": [{"reason": reason, "resource": ARN} for reason in reasons],
    }
    return service_error(400, orjson.dumps(body))


def test_the_reasons_are_read_from_the_answer() -> None:
    error = throttle(
        "TableWriteKeyRangeThroughputExceeded", "TableWriteProvisionedThroughputExceeded"
    )
    assert error.outcome is Outcome.THROTTLED
    assert error.reasons == (
        "TableWriteKeyRangeThroughputExceeded",
        "TableWriteProvisionedThroughputExceeded",
    )
    assert service_error(400, b'{"__type": "x#ThrottlingException"}').reasons == ()


class Marker:
    on_wire = False


@pytest.mark.parametrize(
    ("reasons", "key_paced", "table_paced"),
    [
        (("TableWriteKeyRangeThroughputExceeded",), True, False),
        (
            ("TableWriteKeyRangeThroughputExceeded", "TableWriteProvisionedThroughputExceeded"),
            True,
            True,
        ),
        ((), True, False),  # no reasons (older servers, proxies): taken as the partition's
        (("TableWriteProvisionedThroughputExceeded",), False, True),
        (("IndexWriteProvisionedThroughputExceeded",), False, True),
        (("AccountLimitExceeded",), False, True),
        (("TableWriteMaxOnDemandThroughputExceeded",), False, True),
    ],
)
async def test_a_partitions_throttle_paces_the_key_and_a_tables_the_table(
    reasons: tuple[str, ...], key_paced: bool, table_paced: bool
) -> None:
    time = VirtualTime()
    # A first window of throttles paces; many more at the floor would let the key loose.
    answers = [throttle(*reasons) for _ in range(20)]
    transport = Scripted(time, *answers, {"ok": 1})
    limiter = KeyLimiter(clock=time, sleep=time.sleep)
    sender = Sender(
        policy=RetryPolicy(clock=time, sleep=time.sleep, rng=lambda: 0.01, attempts=40),
        clock=Clock(now=time, sleep=time.sleep),
        observers=Observers(),
        slots=Slots(2),
        pace=limiter,
        transport=transport,
    )
    await sender.send("UpdateItem", {}, idempotent=False, key="hot", wire=Marker())
    assert ("hot" in limiter.rates()) is key_paced
    assert (sender.table_rate() is not None) is table_paced
