"""The independent token bucket of `benchmarks/bucket_proxy.py`, in virtual time.

Its throttling answer is checked here byte for byte too; the proxy over HTTP is tested in
``tests/integration/test_bucket_proxy.py``.
"""

from __future__ import annotations

import json
import zlib

import pytest

from benchmarks.bucket_proxy import (
    THROTTLED_TYPE,
    BucketProxy,
    KeyBucket,
    credential_region,
    keyed_write,
    own_answer,
    throttle_body,
)


def admitted(bucket: KeyBucket, times: list[float]) -> int:
    return sum(bucket.admit(t) for t in times)


@pytest.mark.parametrize(
    ("rate", "burst_seconds", "depth"),
    [
        (100, 1.0, 100),
        (100, 0.05, 5),
        (1000, 0.05, 50),
        (10, 0.05, 1),  # half a unit of burst still lets one request through
        (25, 300, 7500),
        (7, 0.5, 3),  # 3.5 units: three whole ones
    ],
)
def test_a_fresh_bucket_admits_its_depth_at_once_and_no_more(
    rate: float, burst_seconds: float, depth: int
) -> None:
    bucket = KeyBucket(rate, burst_seconds)
    assert admitted(bucket, [50.0] * (depth + 10)) == depth


@pytest.mark.parametrize("burst_seconds", [0.05, 1.0, 300.0])
def test_a_long_idle_refills_only_to_the_depth(burst_seconds: float) -> None:
    bucket = KeyBucket(100, burst_seconds)
    depth = int(100 * burst_seconds)
    assert admitted(bucket, [0.0] * (depth + 1)) == depth
    assert admitted(bucket, [10_000.0] * (depth + 1)) == depth


@pytest.mark.parametrize(("rate", "burst_seconds"), [(10, 0.05), (100, 1.0), (1000, 0.05)])
def test_under_overload_it_admits_the_rate_plus_one_burst(
    rate: float, burst_seconds: float
) -> None:
    # Offered at 10x the rate for 20 s: admitted = depth + rate x 20 s, to within one unit.
    bucket = KeyBucket(rate, burst_seconds)
    depth = max(1, int(rate * burst_seconds))
    offered = [i / (10 * rate) for i in range(int(10 * rate * 20))]
    assert abs(admitted(bucket, offered) - (depth + rate * 20)) <= 1


def test_a_steady_stream_at_the_rate_is_never_throttled() -> None:
    bucket = KeyBucket(100, 0.05)
    assert all(bucket.admit(i / 100) for i in range(10_000))


def test_a_refused_request_takes_nothing() -> None:
    bucket = KeyBucket(10, 0.05)  # one unit deep
    assert bucket.admit(0.0)
    for _ in range(100):
        assert not bucket.admit(0.05)  # half an interval later: refused, and no debt
    assert bucket.admit(0.1)


@pytest.mark.parametrize(
    ("rate", "burst_seconds"),
    [(0, 1.0), (-1, 1.0), (float("inf"), 1.0), (100, 0.01), (100, 301), (100, float("nan"))],
)
def test_bad_settings_are_refused_before_anything_runs(rate: float, burst_seconds: float) -> None:
    with pytest.raises(ValueError, match=r"^(rate|burst_seconds) must"):
        KeyBucket(rate, burst_seconds)
    with pytest.raises(ValueError, match=r"^(rate|burst_seconds) must"):
        BucketProxy("http://127.0.0.1:1", rate=rate, burst_seconds=burst_seconds)


def test_the_throttling_answer_is_dynamodbs_with_a_matching_checksum() -> None:
    response = own_answer(400, throttle_body("eu-west-1", "counters"))
    assert response.status == 400
    assert isinstance(response.body, bytes)
    assert response.headers["x-amz-crc32"] == str(zlib.crc32(response.body))
    assert response.headers["Content-Type"] == "application/x-amz-json-1.0"
    assert json.loads(response.body) == {
        "__type": THROTTLED_TYPE,
        "message": json.loads(response.body)["message"],
        "ThrottlingReasons": [
            {
                "reason": "TableWriteKeyRangeThroughputExceeded",
                "resource": "arn:aws:dynamodb:eu-west-1:000000000000:table/counters",
            }
        ],
    }
    assert THROTTLED_TYPE == (
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    )
    assert json.loads(response.body)["message"]


@pytest.mark.parametrize(
    ("target", "body", "found"),
    [
        (
            "DynamoDB_20120810.UpdateItem",
            {"TableName": "t", "Key": {"pk": {"S": "hot#3"}}},
            ("t", "hot#3"),
        ),
        (
            "DynamoDB_20120810.DeleteItem",
            {"TableName": "t", "Key": {"sk": {"N": "2"}, "pk": {"S": "a"}}},
            ("t", "a/2"),
        ),
        ("DynamoDB_20120810.GetItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}}, None),
        ("DynamoDB_20120810.BatchGetItem", {"RequestItems": {}}, None),
        ("DynamoDB_20120810.UpdateItem", {"TableName": "t"}, None),
        ("DynamoDB_20120810.UpdateItem", "not json", None),
    ],
)
def test_only_single_item_writes_are_keyed(
    target: str, body: object, found: tuple[str, str] | None
) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert keyed_write(target, raw) == found


def test_the_region_comes_from_the_credential_scope() -> None:
    header = (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/ap-south-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )
    assert credential_region(header, "us-east-1") == "ap-south-1"
    assert credential_region("", "us-east-1") == "us-east-1"
