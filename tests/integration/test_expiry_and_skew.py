"""Expired tokens and skewed clocks, answered by a server on 127.0.0.1, on both transports.

The server refuses the tokens it has revoked (``ExpiredTokenException``) and, like DynamoDB,
any signature dated more than 15 minutes from its own clock (``InvalidSignatureException``,
"Signature expired"), with its clock in its ``Date`` header.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession, get_session
from botocore.credentials import ReadOnlyCredentials

from async_counters import CounterPool, DynamoError, RetryPolicy
from async_counters.transport.fast import FastTransport
from tests.integration.answers import Answer, Answering, answering

OK = b'{"Attributes":{"count":{"N":"1"}}}'
TransportName = Literal["fast", "botocore"]
BOTH = pytest.mark.parametrize("transport_name", ["fast", "botocore"])


def _error(code: str, message: str) -> bytes:
    return json.dumps({"__type": f"com.amazon.coral.service#{code}", "message": message}).encode()


EXPIRED = _error("ExpiredTokenException", "The security token included in the request is expired")


@dataclass
class Issuer:
    """Hands out temporary credentials ``ASIA0``, ``ASIA1``... valid for an hour, as STS would."""

    issued: int = 0
    revoked: set[str] = field(default_factory=set)

    async def refresh(self) -> dict[str, str]:
        key = f"ASIA{self.issued}"
        self.issued += 1
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return {
            "access_key": key,
            "secret_key": "s",
            "token": f"token-{key}",
            "expiry_time": expiry.isoformat(),
        }

    async def session(self) -> AioSession:
        """A session whose credential chain yields these refreshable credentials."""
        credentials = AioRefreshableCredentials.create_from_metadata(
            await self.refresh(), refresh_using=self.refresh, method="sts-assume-role"
        )
        session = get_session()
        session._credentials = credentials  # what its provider chain would have found
        return session


def _access_key(headers: dict[str, str]) -> str:
    found = re.search(r"Credential=([^/]+)/", headers["authorization"])
    assert found is not None
    return found.group(1)


@pytest.fixture
async def server() -> AsyncIterator[Answering]:
    async with answering(Answering()) as state:
        yield state


def _pool(server: Answering, session: AioSession, transport_name: TransportName) -> CounterPool:
    return CounterPool(
        "t",
        endpoint_url=server.url,
        region_name="eu-west-1",
        session=session,
        transport=transport_name,
        retry=RetryPolicy(base=0.001, cap=0.005, deadline=5.0),
    )


@BOTH
async def test_an_expired_token_is_renewed_and_the_write_sent_once_more(
    server: Answering, transport_name: TransportName
) -> None:
    issuer = Issuer(revoked={"ASIA0"})  # revoked though its expiry time is an hour away
    server.respond = lambda h: (
        Answer(400, EXPIRED) if _access_key(h) in issuer.revoked else (Answer(200, OK))
    )
    async with _pool(server, await issuer.session(), transport_name) as pool:
        assert await pool.increment("a") == 1
        assert await pool.increment("a") == 1  # the renewed credentials are kept
    assert [_access_key(h) for h in server.seen] == ["ASIA0", "ASIA1", "ASIA1"]
    assert server.seen[1]["x-amz-security-token"] == "token-ASIA1"
    assert issuer.issued == 2  # the first credentials, and one renewal
    assert pool.stats.acknowledged == 2


@BOTH
async def test_calls_refused_together_renew_the_credentials_once(
    server: Answering, transport_name: TransportName
) -> None:
    issuer = Issuer(revoked={"ASIA0"})
    server.gather = 10  # the first ten answers wait until all ten requests have arrived
    server.respond = lambda h: (
        Answer(400, EXPIRED) if _access_key(h) in issuer.revoked else (Answer(200, OK))
    )
    async with _pool(server, await issuer.session(), transport_name) as pool:
        values = await asyncio.gather(*(pool.increment(f"k{i}") for i in range(10)))
    assert values == [1] * 10
    assert issuer.issued == 2  # ten refusals, one renewal
    assert len(server.seen) == 20  # each sent twice: refused, then accepted


class SlowIssuer(Issuer):
    """Credentials whose every look takes a moment (a lock, a file, a metadata service): calls
    keep arriving while a renewal or a refresh is under way."""

    def __init__(self, revoked: set[str]) -> None:
        super().__init__(revoked=revoked)
        self.frozen: Any = None

    async def get_frozen_credentials(self) -> Any:
        await asyncio.sleep(0.01)
        if self.frozen is None:
            await self._protected_refresh(is_mandatory=True)
        return self.frozen

    async def _protected_refresh(self, is_mandatory: bool) -> None:
        await asyncio.sleep(0.01)
        data = await self.refresh()
        self.frozen = ReadOnlyCredentials(data["access_key"], data["secret_key"], data["token"])


async def test_no_call_signs_with_refused_credentials_while_new_ones_are_fetched(
    server: Answering,
) -> None:
    issuer = SlowIssuer(revoked={"ASIA0"})
    server.gather = 10  # ten refused together, their renewal and retries overlapping
    server.respond = lambda h: (
        Answer(400, EXPIRED) if _access_key(h) in issuer.revoked else (Answer(200, OK))
    )
    transport = FastTransport(endpoint_url=server.url, region_name="eu-west-1", credentials=issuer)
    try:
        await asyncio.gather(*(transport.call("GetItem", {}) for _ in range(10)))
    finally:
        await transport.aclose()
    assert issuer.issued == 2
    keys = [_access_key(h) for h in server.seen]
    assert keys == ["ASIA0"] * 10 + ["ASIA1"] * 10


@BOTH
async def test_a_second_expiry_is_an_error_that_says_what_to_do(
    server: Answering, transport_name: TransportName
) -> None:
    issuer = Issuer()
    server.respond = lambda h: Answer(400, EXPIRED)  # every token refused, renewed or not
    async with _pool(server, await issuer.session(), transport_name) as pool:
        with pytest.raises(DynamoError) as info:
            await pool.increment("a")
    assert info.value.code == "ExpiredTokenException"
    assert "refused again just after the credentials were refreshed" in str(info.value)
    assert [_access_key(h) for h in server.seen] == ["ASIA0", "ASIA1"]  # sent twice, not more
    assert pool.stats.errors == {"ExpiredTokenException": 1}


@BOTH
async def test_fixed_credentials_that_expired_are_refused_once_with_the_way_out(
    server: Answering, transport_name: TransportName, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAFIXED")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-fixed")
    server.respond = lambda h: Answer(400, EXPIRED)
    async with _pool(server, get_session(), transport_name) as pool:
        with pytest.raises(DynamoError) as info:
            await pool.increment("a")
    assert "not refreshable" in str(info.value)
    assert len(server.seen) == 1


def _signature_checker(offset: float) -> Any:
    """A server whose clock is ``offset`` seconds ahead: it refuses, as DynamoDB does, every
    signature dated more than 15 minutes from its clock."""

    def respond(headers: dict[str, str]) -> Answer:
        signed = datetime.datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ")
        now = datetime.datetime.fromtimestamp(time.time() + offset, datetime.UTC)
        signed = signed.replace(tzinfo=datetime.UTC)
        if abs((now - signed).total_seconds()) <= 15 * 60:
            return Answer(200, OK, date_offset=offset)
        stamp, window = now.strftime("%Y%m%dT%H%M%SZ"), datetime.timedelta(minutes=15)
        if signed < now:
            limit = (now - window).strftime("%Y%m%dT%H%M%SZ")
            message = f"Signature expired: {headers['x-amz-date']} is now earlier than {limit}"
            message += f" ({stamp} - 15 min.)"
        else:
            limit = (now + window).strftime("%Y%m%dT%H%M%SZ")
            message = f"Signature not yet current: {headers['x-amz-date']} is still later"
            message += f" than {limit} ({stamp} + 15 min.)"
        return Answer(400, _error("InvalidSignatureException", message), date_offset=offset)

    return respond


_SKEW = re.compile(r"clock is (?:(\d+) h )?(?:(\d+) min )?(\d+) s (behind|ahead of) the server's")


@BOTH
@pytest.mark.parametrize(
    ("offset", "side"), [(20 * 60, "behind"), (-(2 * 3600 + 5 * 60), "ahead of")]
)
async def test_a_signature_refused_for_the_clock_says_the_skew(
    server: Answering, transport_name: TransportName, offset: float, side: str
) -> None:
    server.respond = _signature_checker(offset)
    async with _pool(server, await Issuer().session(), transport_name) as pool:
        with pytest.raises(DynamoError) as info:
            await pool.increment("a")
    message = str(info.value)
    assert info.value.code == "InvalidSignatureException"
    assert message.startswith("InvalidSignatureException: Signature ")  # the server's own words
    said = _SKEW.search(message)
    assert said is not None, message
    hours, minutes, seconds = (int(part or 0) for part in said.groups()[:3])
    # The Date header counts whole seconds, and the answer takes a moment: a few seconds off.
    assert abs(hours * 3600 + minutes * 60 + seconds - abs(offset)) <= 5, message
    assert said.group(4) == side
    assert "set the clock right" in message
    assert len(server.seen) == 1  # refused before it ran; not retried


@BOTH
async def test_clocks_that_agree_are_not_blamed(
    server: Answering, transport_name: TransportName
) -> None:
    server.respond = lambda h: Answer(
        400, _error("InvalidSignatureException", "The request signature we calculated does not")
    )
    async with _pool(server, await Issuer().session(), transport_name) as pool:
        with pytest.raises(DynamoError) as info:
            await pool.increment("a")
    assert "clock" not in str(info.value)


@BOTH
async def test_a_clock_within_the_window_signs_as_usual(
    server: Answering, transport_name: TransportName
) -> None:
    server.respond = _signature_checker(10 * 60)  # ten minutes: still accepted
    async with _pool(server, await Issuer().session(), transport_name) as pool:
        assert await pool.increment("a") == 1
