"""The fast transport without a server: choosing it, configuring it, reading error answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from async_counters import CounterPool
from async_counters.transport import Outcome, TransportError
from async_counters.transport.answers import service_error
from async_counters.transport.fast import (
    FastTransport,
    open_fast_transport,
)
from async_counters.transport.sigv4 import Credentials
from tests.unit.fake import FakeTransport


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transport": "grpc"}, "transport must be"),
        ({"transport": "fast", "client": object()}, "client="),
        ({"transport": FakeTransport(), "session": object()}, "at most one"),
    ],
)
def test_transport_option_is_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CounterPool("t", **kwargs)


async def test_fast_is_the_default_and_botocore_is_selectable() -> None:
    url = "http://127.0.0.1:9"  # nothing is sent: opening a pool connects nowhere
    async with CounterPool("t", endpoint_url=url) as pool:
        assert type(pool._transport).__name__ == "FastTransport"
    async with CounterPool("t", endpoint_url=url, transport="botocore") as pool:
        assert type(pool._transport).__name__ == "BotocoreTransport"
    async with CounterPool("t", endpoint_url=url, transport="fast") as pool:
        transport = pool._transport
        assert isinstance(transport, FastTransport)
        assert transport.region_name == "us-east-1"  # the loopback default
    assert transport._connector.closed  # the pool closed what it built


async def test_the_pool_sizes_the_connector_and_the_timeouts() -> None:
    async with CounterPool(
        "t",
        endpoint_url="http://127.0.0.1:9",
        max_in_flight=17,
        connect_timeout=1.5,
        read_timeout=2.5,
    ) as pool:
        transport = pool._transport
        assert isinstance(transport, FastTransport)
        assert transport._connector.limit == 17
        assert transport._connect_timeout.sock_connect == 1.5
        assert transport._connect_timeout.connect is None  # waiting for a free connection
        assert transport._deadlines.read_timeout == 2.5  # one sweep, not a timer per chunk


@pytest.mark.parametrize(
    ("region", "endpoint"),
    [
        ("us-east-1", "https://dynamodb.us-east-1.amazonaws.com"),
        ("eu-west-3", "https://dynamodb.eu-west-3.amazonaws.com"),
        ("cn-northwest-1", "https://dynamodb.cn-northwest-1.amazonaws.com.cn"),
        ("us-gov-west-1", "https://dynamodb.us-gov-west-1.amazonaws.com"),
    ],
)
async def test_regional_endpoints(region: str, endpoint: str) -> None:
    transport = await open_fast_transport(region_name=region, placeholder_credentials=True)
    try:
        assert (transport.endpoint_url, transport.region_name) == (endpoint, region)
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [
        ({"AWS_USE_FIPS_ENDPOINT": "true"}, "https://dynamodb-fips.eu-west-1.amazonaws.com"),
        ({"AWS_USE_DUALSTACK_ENDPOINT": "true"}, "https://dynamodb.eu-west-1.api.aws"),
        (
            {"AWS_USE_FIPS_ENDPOINT": "true", "AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "https://dynamodb-fips.eu-west-1.api.aws",
        ),
        ({"AWS_ENDPOINT_URL": "http://10.1.2.3:8000"}, "http://10.1.2.3:8000"),
        (
            {
                "AWS_ENDPOINT_URL": "http://10.1.2.3:8000",
                "AWS_ENDPOINT_URL_DYNAMODB": "http://10.9.9.9:8001",
            },
            "http://10.9.9.9:8001",
        ),
        (
            {
                "AWS_ENDPOINT_URL_DYNAMODB": "http://10.9.9.9:8001",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
            },
            "https://dynamodb.eu-west-1.amazonaws.com",
        ),
    ],
    ids=["fips", "dual-stack", "fips-dual-stack", "endpoint-url", "service-endpoint", "ignored"],
)
async def test_the_endpoint_is_configured_as_botocore_configures_it(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], endpoint: str
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    transport = await open_fast_transport()
    try:
        assert transport.endpoint_url == endpoint
    finally:
        await transport.aclose()
    async with get_session().create_client("dynamodb", region_name="eu-west-1") as client:
        assert client.meta.endpoint_url == endpoint  # what the botocore transport would use


async def test_a_given_endpoint_wins_over_the_configured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://10.9.9.9:8001")
    transport = await open_fast_transport(endpoint_url="http://127.0.0.1:9", region_name="x-y-1")
    try:
        assert transport.endpoint_url == "http://127.0.0.1:9"
    finally:
        await transport.aclose()


async def test_an_unreadable_ca_bundle_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match="CA bundle"):
        await open_fast_transport(region_name="eu-west-1")


@pytest.mark.parametrize(
    ("environment", "endpoint", "proxy"),
    [
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, None, "http://proxy.example:3128"),
        ({"HTTPS_PROXY": "proxy.example:3128"}, None, "http://proxy.example:3128"),
        ({"HTTP_PROXY": "http://proxy.example:3128"}, None, None),  # not for https
        (
            {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": ".amazonaws.com"},
            None,
            None,
        ),
        (
            {"HTTP_PROXY": "http://proxy.example:3128"},
            "http://10.1.2.3:8000",
            "http://proxy.example:3128",
        ),
        ({"HTTP_PROXY": "http://proxy.example:3128"}, "http://127.0.0.1:8000", None),
    ],
    ids=["https-proxy", "no-scheme", "http-proxy-only", "no-proxy", "http-endpoint", "loopback"],
)
async def test_the_proxy_is_chosen_as_botocore_chooses_it(
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    endpoint: str | None,
    proxy: str | None,
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    transport = await open_fast_transport(endpoint_url=endpoint, region_name="eu-west-1")
    try:
        chosen = transport._request.proxy
        assert (str(chosen) if chosen is not None else None) == proxy
    finally:
        await transport.aclose()


async def test_proxy_credentials_are_taken_out_of_its_url() -> None:
    transport = FastTransport(
        endpoint_url="http://10.1.2.3:8000",
        region_name="eu-west-1",
        credentials=None,
        proxy="http://user:top-secret@proxy.example:3128",
    )
    try:
        assert str(transport._request.proxy) == "http://proxy.example:3128"
        assert "top-secret" not in repr(transport)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("proxy", ["ftp://proxy.example", "http://", "http://p\r\nX: 1"])
async def test_an_odd_proxy_is_refused(proxy: str) -> None:
    with pytest.raises(ValueError, match="proxy must be"):
        FastTransport(
            endpoint_url="http://10.1.2.3:8000",
            region_name="eu-west-1",
            credentials=None,
            proxy=proxy,
        )


async def test_region_local_is_dynamodb_local_as_in_botocore() -> None:
    transport = await open_fast_transport(region_name="local")
    try:
        assert (transport.endpoint_url, transport.region_name) == (
            "http://localhost:8000",
            "us-east-1",
        )
    finally:
        await transport.aclose()
    async with get_session().create_client("dynamodb", region_name="local") as client:
        assert client.meta.endpoint_url == "http://localhost:8000"


@pytest.mark.parametrize(
    ("region", "endpoint", "signing_region"),
    [
        ("us-east-1-fips", "https://dynamodb-fips.us-east-1.amazonaws.com", "us-east-1"),
        ("fips-us-gov-west-1", "https://dynamodb.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
    ],
)
async def test_a_fips_pseudo_region_is_the_region_with_fips_as_in_botocore(
    region: str, endpoint: str, signing_region: str
) -> None:
    transport = await open_fast_transport(region_name=region)
    try:
        assert (transport.endpoint_url, transport.region_name) == (endpoint, signing_region)
    finally:
        await transport.aclose()


@pytest.mark.parametrize("region", ["eu-west-1\r\nX-Injected: 1", "", "a/b"])
async def test_a_transport_refuses_a_region_that_is_not_one(region: str) -> None:
    with pytest.raises(ValueError, match="region"):
        FastTransport(endpoint_url="http://127.0.0.1:9", region_name=region, credentials=None)


@pytest.mark.parametrize("region", ["us-east-1.evil.example/", "a b", "-x", "123"])
async def test_a_region_is_never_spliced_into_a_url_unchecked(region: str) -> None:
    with pytest.raises(ValueError, match="region"):
        await open_fast_transport(region_name=region)


async def test_no_region_anywhere_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no AWS region"):
        await open_fast_transport(endpoint_url="https://dynamodb.example.invalid")


@pytest.mark.parametrize(
    "url",
    ["ftp://h", "http://", "http://h/?q=1", "http://user:secret@h", "http://h/#frag"],
)
async def test_odd_endpoints_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="endpoint_url"):
        FastTransport(endpoint_url=url, region_name="us-east-1", credentials=None)


async def test_no_credentials_are_refused_before_anything_is_sent() -> None:
    transport = FastTransport(
        endpoint_url="http://127.0.0.1:9", region_name="us-east-1", credentials=None
    )
    try:
        with pytest.raises(TransportError) as info:
            await transport.call("GetItem", {})
    finally:
        await transport.aclose()
    assert (info.value.outcome, info.value.code) == (Outcome.REJECTED, "NoCredentialsError")


async def test_an_operation_name_is_never_spliced_unchecked() -> None:
    transport = FastTransport(
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        credentials=Credentials("a", "b"),
    )
    try:
        with pytest.raises(ValueError, match="operation"):
            await transport.call("UpdateItem\r\nX-Injected: 1", {})
    finally:
        await transport.aclose()


async def test_reprs_hold_no_secret() -> None:
    transport = FastTransport(
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        credentials=Credentials("AKID", "top-secret", "secret-token"),
    )
    try:
        assert "secret" not in repr(transport)
        assert "secret" not in repr(transport.__dict__)
    finally:
        await transport.aclose()


def _body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("status", "raw", "expected"),
    [
        (
            400,
            _body(__type="com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"),
            (Outcome.THROTTLED, "ProvisionedThroughputExceededException", ""),
        ),
        (
            400,
            _body(__type="com.amazon.coral.availability#ThrottlingException", message="slow"),
            (Outcome.THROTTLED, "ThrottlingException", "slow"),
        ),
        (
            400,
            _body(__type="x#RequestLimitExceeded", Message="capital"),
            (Outcome.THROTTLED, "RequestLimitExceeded", "capital"),
        ),
        (
            400,
            _body(__type="x#ConditionalCheckFailedException", message="no"),
            (Outcome.CONDITION_FAILED, "ConditionalCheckFailedException", "no"),
        ),
        (
            400,
            _body(__type="x#ResourceNotFoundException"),
            (Outcome.TABLE_NOT_FOUND, "ResourceNotFoundException", ""),
        ),
        (
            400,
            _body(__type="ValidationException:http://internal.example/"),
            (Outcome.REJECTED, "ValidationException", ""),
        ),
        (400, b"not json", (Outcome.REJECTED, "400", "not json")),
        (
            500,
            _body(__type="x#InternalServerError"),
            (Outcome.AMBIGUOUS, "InternalServerError", ""),
        ),
        (500, b"", (Outcome.AMBIGUOUS, "500", "Internal Server Error")),
        (502, b"<html>bad gateway</html>", (Outcome.AMBIGUOUS, "502", "Bad Gateway")),
        (503, _body(__type="x#SomethingNew"), (Outcome.AMBIGUOUS, "SomethingNew", "")),
    ],
)
def test_error_answers(status: int, raw: bytes, expected: tuple[Outcome, str, str]) -> None:
    error = service_error(status, raw)
    assert (error.outcome, error.code, error.message) == expected
    assert error.status == status


def test_the_current_item_of_a_failed_condition_is_kept() -> None:
    item = {"pk": {"S": "a"}, "count": {"N": "0"}}
    error = service_error(400, _body(__type="x#ConditionalCheckFailedException", Item=item))
    assert error.item == item
    assert service_error(400, _body(__type="x#ConditionalCheckFailedException")).item is None
