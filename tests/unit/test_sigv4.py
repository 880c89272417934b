"""Our SigV4 equals botocore's ``SigV4Auth``, byte for byte, for the same request and timestamp."""

from __future__ import annotations

import datetime
from typing import Any

import orjson
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from async_counters import builders
from async_counters.transport.sigv4 import (
    CONTENT_TYPE,
    Credentials,
    Signer,
    host_header,
    signing_key,
)

AMZ_DATE = "20240229T235959Z"
FROZEN = datetime.datetime(2024, 2, 29, 23, 59, 59)
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+session/token=="

CREDENTIALS = [
    pytest.param(("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None), id="long-term"),
    pytest.param(("ASIAEXAMPLE", "tmp/secret+key", TOKEN), id="session-token"),
]

ENDPOINTS = [
    "https://dynamodb.eu-west-1.amazonaws.com",
    "https://dynamodb.eu-west-1.amazonaws.com:443/",
    "http://127.0.0.1:8000",
    "http://LocalHost:8000/prefix/",
    "http://[::1]:8000",
]

BODIES = [
    orjson.dumps(builders.update("counters", "pk", "count", "views:/home", 5)),
    orjson.dumps(builders.update("t", "pk", "COUNT", "sku-ünï-😀", -3, floor=0)),
    orjson.dumps(builders.get_item("t", "pk", "count", "a")),
    b"",
]


def _botocore_headers(
    url: str, region: str, target: str, body: bytes, creds: tuple[str, str, str | None]
) -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": target},
    )
    auth = SigV4Auth(BotocoreCredentials(*creds), "dynamodb", region)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("botocore.auth.get_current_datetime", lambda *_: FROZEN)
        auth.add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("creds", CREDENTIALS)
@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("body", BODIES, ids=["update", "floored-unicode", "get", "empty"])
def test_signature_equals_botocore_sigv4auth(
    creds: tuple[str, str, str | None], url: str, body: bytes
) -> None:
    target = "DynamoDB_20120810.UpdateItem"
    expected = _botocore_headers(url, "eu-west-1", target, body, creds)
    path = url.split("/", 3)[3] if url.count("/") > 2 else ""
    signer = Signer(host=host_header(url), region="eu-west-1", path="/" + path)
    ours = signer.stamp(Credentials(*creds), AMZ_DATE).headers(target, body)

    assert ours["Authorization"].encode() == expected["Authorization"].encode()
    assert ours["X-Amz-Date"] == expected["X-Amz-Date"] == AMZ_DATE
    assert ours.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token") == creds[2]
    # Every header botocore signed is sent with the same value.
    assert {k: v for k, v in ours.items() if k != "Host"} == expected
    assert ours["Host"] == _botocore_host(url)


def _botocore_host(url: str) -> str:
    from botocore.auth import _host_from_url

    host: str = _host_from_url(url)
    return host


@pytest.mark.parametrize("url", ENDPOINTS)
def test_host_header_matches_botocore(url: str) -> None:
    assert host_header(url) == _botocore_host(url)


def test_signing_key_is_cached_per_day_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[tuple[str, str]] = []
    real = signing_key

    def counting(secret: str, date: str, region: str, service: str) -> bytes:
        computed.append((secret, date))
        return real(secret, date, region, service)

    monkeypatch.setattr("async_counters.transport.sigv4.signing_key", counting)
    signer = Signer(host="h", region="us-east-1")
    a, b = Credentials("A", "s1"), Credentials("A", "s2")
    for stamp in ("20240101T000000Z", "20240101T000001Z", "20240101T235959Z"):
        signer.stamp(a, stamp)
    signer.stamp(a, "20240102T000000Z")
    signer.stamp(b, "20240102T000001Z")
    signer.stamp(b, "20240102T000002Z")
    assert computed == [("s1", "20240101"), ("s1", "20240102"), ("s2", "20240102")]


def test_known_answer_from_the_sigv4_documentation() -> None:
    # AWS's documented example signing key (General Reference, "Examples of how to derive a
    # signing key for Signature Version 4").
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_secrets_stay_out_of_reprs() -> None:
    creds = Credentials("AKIDVISIBLE", "very-secret-key", "very-secret-token")
    signer = Signer(host="h", region="us-east-1")
    stamp = signer.stamp(creds, AMZ_DATE)
    for text in (repr(creds), str(creds), repr(signer), repr(stamp)):
        assert "very-secret" not in text
    assert "AKIDVISIBLE" in repr(creds)


@pytest.mark.parametrize("kwargs", [{"host": ""}, {"region": ""}, {"service": ""}])
def test_signer_refuses_empty_parts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Signer(**{"host": "h", "region": "r", **kwargs})
