"""The fast transport over real HTTP on 127.0.0.1: what it sends, and what each answer means.

A recording server keeps every request (headers and body) and answers from a script, so tests can
check the bytes on the wire (the signature is recomputed with botocore's ``SigV4Auth``) and feed
the transport answers a real DynamoDB or a broken network could give. Where both transports can
see the same answer, they must classify it alike.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import get_session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from async_counters import AmbiguousWriteError, CounterPool, DynamoError, RetryPolicy
from async_counters.transport import Outcome, TransportError
from async_counters.transport.fast import FastTransport, _ReadDeadlines, open_fast_transport
from async_counters.transport.sdk import BotocoreTransport, client_config
from async_counters.transport.sigv4 import Credentials

UPDATE = {
    "TableName": "t",
    "Key": {"pk": {"S": "a"}},
    "UpdateExpression": "ADD #v :n",
    "ExpressionAttributeNames": {"#v": "count"},
    "ExpressionAttributeValues": {":n": {"N": "1"}},
    "ReturnValues": "UPDATED_NEW",
}
OK_BODY = b'{"Attributes":{"count":{"N":"1"}}}'
TOKEN = "FwoGZXIvYXdzEJr//////////session+token/=="


@dataclass
class Recorded:
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Answers each request with the next scripted action: ``(status, body)``, ``(status, body,
    crc)`` with a given ``x-amz-crc32`` (None: no header), ``"drop"``, ``("late", seconds)``, or
    ``("interim", action)``: a ``100 Continue`` before the action's answer, ``("chunked", body)``:
    a 200 sent in chunks, ``("close", body)``: a 200 with ``Connection: close``, then closed, or
    ``("then-unasked",)``: a 200, then, while the connection idles, an answer nobody asked for."""

    script: deque[Any] = field(default_factory=deque)
    seen: list[Recorded] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    unasked_sent: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    async def _send_framed(writer: asyncio.StreamWriter, framing: str, payload: bytes) -> None:
        """A 200 with ``payload`` sent in chunks, or with ``Connection: close`` and closed."""
        crc = f"x-amz-crc32: {zlib.crc32(payload)}\r\n"
        if framing == "chunked":
            half = len(payload) // 2
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:half], payload[half:])
            )
            writer.write(
                f"HTTP/1.1 200 OK\r\n{crc}Transfer-Encoding: chunked\r\n\r\n".encode()
                + chunks
                + b"0\r\n\r\n"
            )
        else:
            writer.write(
                f"HTTP/1.1 200 OK\r\n{crc}Connection: close\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {}
                for line in lines:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append(Recorded(headers, body))
                self.arrived.set()
                action: Any = self.script.popleft() if self.script else (200, OK_BODY)
                if action == "drop":
                    return
                if action[0] == "late":
                    await asyncio.sleep(action[1])
                    action = (200, OK_BODY)
                if action[0] == "interim":  # a 100 Continue first, then the answer
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    action = action[1]
                unasked = action[0] == "then-unasked"
                if unasked:
                    action = (200, OK_BODY)
                if action[0] in ("chunked", "close"):
                    await self._send_framed(writer, action[0], action[1])
                    if action[0] == "close":
                        return
                    continue
                status, payload = action[0], action[1]
                crc = action[2] if len(action) > 2 else str(zlib.crc32(payload))
                crc_line = "" if crc is None else f"x-amz-crc32: {crc}\r\n"
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.0\r\n"
                    f"{crc_line}Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
                if unasked:  # a moment later, while the connection idles, a second answer
                    await asyncio.sleep(0.05)
                    stale = b'{"__type":"#ValidationException","message":"unasked"}'
                    writer.write(
                        f"HTTP/1.1 400 X\r\nx-amz-crc32: {zlib.crc32(stale)}\r\n"
                        f"Content-Length: {len(stale)}\r\n\r\n".encode()
                        + stale
                    )
                    await writer.drain()
                    self.unasked_sent.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _Server(Protocol):
    port: int

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None: ...


_S = TypeVar("_S", bound=_Server)


@contextlib.asynccontextmanager
async def serving(state: _S, context: ssl.SSLContext | None = None) -> AsyncIterator[_S]:
    """``state`` serving on 127.0.0.1 (over TLS with ``context``), its port filled in."""
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=context)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state
        server.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    async with serving(Recorder()) as state:
        yield state


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


FROZEN = datetime.datetime(2024, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(FROZEN.timestamp())


def _fast(url: str, credentials: Any, clock: Clock | None = None, **kwargs: Any) -> FastTransport:
    if clock is not None:
        kwargs["clock"] = clock
    return FastTransport(
        endpoint_url=url, region_name="eu-west-1", credentials=credentials, **kwargs
    )


def _botocore_authorization(
    url: str, seen: Recorded, creds: BotocoreCredentials, when: datetime.datetime
) -> str:
    signed = {
        k: v for k, v in seen.headers.items() if k in ("content-type", "x-amz-target", "host")
    }
    request = AWSRequest(method="POST", url=url, data=seen.body, headers=signed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("botocore.auth.get_current_datetime", lambda *_: when.replace(tzinfo=None))
        SigV4Auth(creds, "dynamodb", "eu-west-1").add_auth(request)
    return str(request.headers["Authorization"])


# -- what is sent ------------------------------------------------------------------------------


async def test_the_request_on_the_wire_is_signed_as_botocore_signs_it(
    recorder: Recorder, clock: Clock
) -> None:
    transport = _fast(recorder.url, Credentials("ASIAKEY", "secret/key+1", TOKEN), clock)
    try:
        assert await transport.call("UpdateItem", UPDATE) == json.loads(OK_BODY)
    finally:
        await transport.aclose()
    (seen,) = recorder.seen
    assert json.loads(seen.body) == UPDATE
    assert seen.headers["x-amz-target"] == "DynamoDB_20120810.UpdateItem"
    assert seen.headers["content-type"] == "application/x-amz-json-1.0"
    assert seen.headers["x-amz-date"] == "20240301T120000Z"
    assert seen.headers["x-amz-security-token"] == TOKEN
    assert seen.headers["host"] == f"127.0.0.1:{recorder.port}"
    expected = _botocore_authorization(
        recorder.url, seen, BotocoreCredentials("ASIAKEY", "secret/key+1", TOKEN), FROZEN
    )
    assert seen.headers["authorization"] == expected


async def test_max_in_flight_sizes_the_connection_pool(recorder: Recorder) -> None:
    recorder.script.extend([("late", 0.05)] * 30)
    transport = _fast(recorder.url, Credentials("a", "b"), max_in_flight=7)
    try:
        await asyncio.gather(*(transport.call("UpdateItem", UPDATE) for _ in range(30)))
    finally:
        await transport.aclose()
    assert recorder.connections == 7  # kept alive and reused, never more than the bound


# -- credentials -------------------------------------------------------------------------------


class Provider:
    """A credentials provider like aiobotocore's: an awaited snapshot per question."""

    def __init__(self, *snapshots: BotocoreCredentials | Exception) -> None:
        self.snapshots = list(snapshots)
        self.asked = 0

    async def get_frozen_credentials(self) -> Any:
        self.asked += 1
        await asyncio.sleep(0)
        snapshot = self.snapshots[min(self.asked, len(self.snapshots)) - 1]
        if isinstance(snapshot, Exception):
            raise snapshot
        return snapshot.get_frozen_credentials()


async def test_credentials_are_asked_at_most_once_a_second_and_changes_are_used(
    recorder: Recorder, clock: Clock
) -> None:
    provider = Provider(
        BotocoreCredentials("AKID1", "secret1"), BotocoreCredentials("ASIA2", "secret2", TOKEN)
    )
    transport = _fast(recorder.url, provider, clock)
    try:
        await asyncio.gather(*(transport.call("UpdateItem", UPDATE) for _ in range(20)))
        assert provider.asked == 1
        clock.now += 1.0
        await transport.call("UpdateItem", UPDATE)
        assert provider.asked == 2
    finally:
        await transport.aclose()
    first, last = recorder.seen[0], recorder.seen[-1]
    assert (
        "Credential=AKID1/20240301/eu-west-1/dynamodb/aws4_request"
        in (first.headers["authorization"])
    )
    assert "x-amz-security-token" not in first.headers
    assert last.headers["x-amz-security-token"] == TOKEN
    later = FROZEN + datetime.timedelta(seconds=1)
    assert last.headers["authorization"] == _botocore_authorization(
        recorder.url, last, BotocoreCredentials("ASIA2", "secret2", TOKEN), later
    )


async def test_refreshable_credentials_refresh_before_they_expire(
    recorder: Recorder, clock: Clock
) -> None:
    """aiobotocore's own refreshable credentials, about to expire: each look refreshes them."""
    issued: list[str] = []

    async def refresh() -> dict[str, str]:
        issued.append(f"ASIA{len(issued)}")
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {
            "access_key": issued[-1],
            "secret_key": "s",
            "token": TOKEN,
            "expiry_time": expiry.isoformat(),
        }

    credentials = AioRefreshableCredentials.create_from_metadata(
        await refresh(), refresh_using=refresh, method="test"
    )
    transport = _fast(recorder.url, credentials, clock)
    try:
        await transport.call("UpdateItem", UPDATE)
        clock.now += 1.0
        await transport.call("UpdateItem", UPDATE)
    finally:
        await transport.aclose()
    keys = [seen.headers["authorization"].split("Credential=")[1][:5] for seen in recorder.seen]
    assert keys == ["ASIA1", "ASIA2"]


async def test_a_credentials_failure_is_refused_unsent_and_says_no_secret(
    recorder: Recorder, clock: Clock
) -> None:
    provider = Provider(RuntimeError("aws_secret_access_key = hunter2 in ~/.aws/credentials"))
    transport = _fast(recorder.url, provider, clock)
    try:
        with pytest.raises(TransportError) as info:
            await transport.call("UpdateItem", UPDATE)
    finally:
        await transport.aclose()
    assert info.value.outcome is Outcome.REJECTED
    assert info.value.code == "CredentialRetrievalError"
    assert "hunter2" not in str(info.value)
    assert recorder.seen == []


async def test_environment_credentials_through_the_provider_chain(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # A session given: its credential chain is used even for a loopback endpoint.
    async with CounterPool("t", session=get_session(), endpoint_url=recorder.url) as pool:
        assert await pool.increment("a") == 1
    (seen,) = recorder.seen
    assert "Credential=AKIDFROMENV/" in seen.headers["authorization"]
    assert "/eu-west-1/dynamodb/aws4_request" in seen.headers["authorization"]
    assert seen.headers["x-amz-security-token"] == TOKEN


async def test_a_local_endpoint_gets_placeholder_credentials(recorder: Recorder) -> None:
    async with CounterPool("t", endpoint_url=recorder.url) as pool:
        assert await pool.increment("a") == 1
    (seen,) = recorder.seen
    assert "Credential=local/" in seen.headers["authorization"]
    assert "/us-east-1/dynamodb/aws4_request" in seen.headers["authorization"]


@pytest.mark.parametrize("transport_name", ["botocore", "fast"])
async def test_no_credentials_anywhere_is_the_same_refusal_on_both_transports(
    recorder: Recorder, transport_name: str
) -> None:
    # conftest scrubbed the environment; a session given disables the loopback placeholders.
    async with CounterPool(
        "t",
        session=get_session(),
        endpoint_url=recorder.url,
        region_name="eu-west-1",
        transport=transport_name,  # type: ignore[arg-type]
    ) as pool:
        with pytest.raises(DynamoError) as info:
            await pool.increment("a")
    assert info.value.code == "NoCredentialsError"
    assert recorder.seen == []


# -- what answers mean -------------------------------------------------------------------------


def _error_body(code: str, message_key: str = "message", **extra: Any) -> bytes:
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", message_key: f"said {code}"}
    return json.dumps({**body, **extra}).encode()


ITEM = {"pk": {"S": "a"}, "count": {"N": "3"}}
ANSWERS = [
    pytest.param((400, _error_body("ConditionalCheckFailedException", Item=ITEM)), id="cond-item"),
    pytest.param((400, _error_body("ConditionalCheckFailedException")), id="cond-no-item"),
    pytest.param((400, _error_body("ValidationException", "Message")), id="capital-message"),
    pytest.param((400, _error_body("ResourceNotFoundException")), id="no-table"),
    pytest.param(
        (400, b'{"__type":"com.amazon.coral.availability#ThrottlingException","message":"m"}'),
        id="coral-throttle",
    ),
    pytest.param(
        (400, b'{"__type":"SomethingException:http://internal/","message":"m"}'), id="colon"
    ),
    pytest.param((500, _error_body("InternalServerError")), id="500"),
    pytest.param((503, b"<html>busy</html>"), id="503-html"),
    pytest.param((413, b"too large"), id="413-text"),
]


async def _outcome(transport: Any) -> tuple[Any, ...]:
    try:
        response = await transport.call("UpdateItem", UPDATE)
    except TransportError as exc:
        return (exc.outcome, exc.code, exc.message, exc.status, exc.item)
    return ("answered", response)


@pytest.mark.parametrize("answer", ANSWERS)
async def test_both_transports_read_an_answer_alike(recorder: Recorder, answer: Any) -> None:
    recorder.script.extend([answer, answer])
    fast = _fast(recorder.url, Credentials("local", "local"))
    try:
        ours = await _outcome(fast)
    finally:
        await fast.aclose()
    config = client_config(max_in_flight=4, connect_timeout=1, read_timeout=1)
    async with get_session().create_client(
        "dynamodb",
        endpoint_url=recorder.url,
        region_name="eu-west-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=config,
    ) as client:
        theirs = await _outcome(BotocoreTransport(client))
    assert ours == theirs
    assert len(recorder.seen) == 2


async def test_a_failed_condition_carries_the_current_item(recorder: Recorder) -> None:
    recorder.script.append((400, _error_body("ConditionalCheckFailedException", Item=ITEM)))
    transport = _fast(recorder.url, Credentials("local", "local"))
    try:
        with pytest.raises(TransportError) as info:
            await transport.call("UpdateItem", UPDATE)
    finally:
        await transport.aclose()
    assert info.value.outcome is Outcome.CONDITION_FAILED
    assert info.value.item == ITEM


@pytest.mark.parametrize(
    "answer",
    [
        (200, OK_BODY, "12345"),
        (200, OK_BODY, "not-a-number"),
        (400, _error_body("ProvisionedThroughputExceededException"), "1"),
        (200, b"<html>proxy</html>", None),
        (200, b'["not", "an", "object"]'),
        (200, OK_BODY[:10], None),
    ],
    ids=["crc-200", "crc-garbage", "crc-on-a-throttle", "html-200", "json-list-200", "cut-200"],
)
async def test_a_corrupt_answer_is_ambiguous_and_never_resent(
    recorder: Recorder, answer: Any
) -> None:
    recorder.script.append(answer)
    policy = RetryPolicy(base=0.001, cap=0.005, deadline=2.0)
    async with CounterPool("t", endpoint_url=recorder.url, retry=policy) as pool:
        with pytest.raises(AmbiguousWriteError):
            await pool.increment("a")
        assert await pool.increment("a") == 1  # the next write goes through
    assert len(recorder.seen) == 2
    assert pool.stats.ambiguous == 1


async def test_an_interim_answer_is_passed_over(recorder: Recorder) -> None:
    recorder.script.append(("interim", (200, b'{"Attributes":{"count":{"N":"7"}}}')))
    async with CounterPool("t", endpoint_url=recorder.url) as pool:
        assert await pool.increment("a") == 7
        assert await pool.increment("a") == 1  # and the connection is still in step
    assert recorder.connections == 1


async def test_a_chunked_answer_is_read_whole(recorder: Recorder) -> None:
    recorder.script.append(("chunked", b'{"Attributes":{"count":{"N":"12345"}}}'))
    async with CounterPool("t", endpoint_url=recorder.url) as pool:
        assert await pool.increment("a") == 12345
        assert await pool.increment("a") == 1  # and the connection is kept
    assert recorder.connections == 1


@pytest.mark.timing
async def test_an_answer_nobody_asked_for_is_never_taken_for_the_next(
    recorder: Recorder,
) -> None:
    recorder.script.append(("then-unasked",))
    transport = _fast(recorder.url, Credentials("local", "local"), max_in_flight=1)
    try:
        assert await transport.call("UpdateItem", UPDATE) == json.loads(OK_BODY)
        await recorder.unasked_sent.wait()
        # It is in the socket (loopback): the loop reads it on its next turns, while the
        # connection idles in the pool, before this test runs on.
        for _ in range(3):
            await asyncio.sleep(0)
        assert await transport.call("UpdateItem", UPDATE) == json.loads(OK_BODY)
    finally:
        await transport.aclose()
    assert recorder.connections == 2  # the tainted connection was closed, not reused


@pytest.mark.timing
async def test_the_in_flight_bound_survives_cancelled_waiters(recorder: Recorder) -> None:
    recorder.script.extend([("late", 0.05)] * 6)
    transport = _fast(recorder.url, Credentials("local", "local"), max_in_flight=1)
    try:
        calls = [asyncio.create_task(transport.call("UpdateItem", UPDATE)) for _ in range(6)]
        for index in (1, 3, 4):
            await asyncio.sleep(0.03)
            calls[index].cancel()  # waiting for the one connection, or on it
        done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    finally:
        await transport.aclose()
    answered = [result for result in done if isinstance(result, dict)]
    assert len(answered) + sum(isinstance(r, asyncio.CancelledError) for r in done) == 6
    assert len(answered) >= 3
    assert recorder.connections <= 3  # one at a time (a cancelled exchange's is closed)


async def test_connection_close_is_honoured(recorder: Recorder) -> None:
    recorder.script.extend([("close", OK_BODY), ("close", OK_BODY)])
    async with CounterPool("t", endpoint_url=recorder.url, max_in_flight=1) as pool:
        assert [await pool.increment("a") for _ in range(3)] == [1, 1, 1]
    assert recorder.connections == 3  # a new connection after each close, none reused
    assert pool.stats.ambiguous == 0


async def test_no_crc_header_is_accepted(recorder: Recorder) -> None:
    recorder.script.append((200, OK_BODY, None))
    async with CounterPool("t", endpoint_url=recorder.url) as pool:
        assert await pool.increment("a") == 1


async def test_a_reset_on_a_reused_connection_is_ambiguous(recorder: Recorder) -> None:
    recorder.script.extend([(200, OK_BODY), "drop"])
    transport = _fast(recorder.url, Credentials("local", "local"), max_in_flight=1)
    try:
        await transport.call("UpdateItem", UPDATE)
        with pytest.raises(TransportError) as info:
            await transport.call("UpdateItem", UPDATE)  # same keep-alive connection
        assert info.value.outcome is Outcome.AMBIGUOUS
        assert recorder.connections == 1
        await transport.call("UpdateItem", UPDATE)  # a new connection
    finally:
        await transport.aclose()
    assert len(recorder.seen) == 3  # aiohttp did not re-send the POST on its own


async def test_a_read_timeout_is_ambiguous(recorder: Recorder) -> None:
    recorder.script.append(("late", 1.0))
    transport = _fast(recorder.url, Credentials("local", "local"), read_timeout=0.2)
    try:
        with pytest.raises(TransportError) as info:
            await transport.call("UpdateItem", UPDATE)
    finally:
        await transport.aclose()
    assert (info.value.outcome, info.value.code) == (Outcome.AMBIGUOUS, "ReadTimeoutError")


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: connecting to it hangs until the connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_connect_timeout_is_unreachable(unanswered_port: int) -> None:
    transport = _fast(
        f"http://127.0.0.1:{unanswered_port}", Credentials("local", "local"), connect_timeout=0.2
    )
    try:
        with pytest.raises(TransportError) as info:
            await asyncio.wait_for(transport.call("UpdateItem", UPDATE), 5)
    finally:
        await transport.aclose()
    assert (info.value.outcome, info.value.code) == (Outcome.UNREACHABLE, "ConnectTimeoutError")


async def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = _fast(f"http://127.0.0.1:{port}", Credentials("local", "local"))
    try:
        with pytest.raises(TransportError) as info:
            await transport.call("UpdateItem", UPDATE)
    finally:
        await transport.aclose()
    assert (info.value.outcome, info.value.code) == (Outcome.UNREACHABLE, "EndpointConnectionError")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A CA's certificate, and a server certificate and key it signed for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: Any, issuer: str, signer: Any, *, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, "test CA", ca_key, ca=False)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
async def tls_recorder(tls_files: tuple[Path, Path, Path]) -> AsyncIterator[Recorder]:
    _, cert_path, key_path = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    async with serving(Recorder(), context) as state:
        yield state


async def test_https_is_verified_against_the_configured_ca_bundle(
    tls_recorder: Recorder, tls_files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls_files[0]))
    url = f"https://127.0.0.1:{tls_recorder.port}"
    async with CounterPool("t", endpoint_url=url) as pool:
        assert await pool.increment("a") == 1
        assert await pool.increment("a") == 1  # the fixed answer; over the same connection
    assert tls_recorder.connections == 1
    host = f"127.0.0.1:{tls_recorder.port}"
    assert [seen.headers["host"] for seen in tls_recorder.seen] == [host, host]


async def test_an_untrusted_certificate_is_refused_before_anything_is_sent(
    tls_recorder: Recorder,
) -> None:
    transport = await open_fast_transport(
        endpoint_url=f"https://127.0.0.1:{tls_recorder.port}",
        region_name="us-east-1",
        placeholder_credentials=True,
    )
    try:
        with pytest.raises(TransportError) as info:
            await transport.call("UpdateItem", UPDATE)
    finally:
        await transport.aclose()
    assert info.value.outcome is Outcome.UNREACHABLE  # retried as never sent
    assert "certificate" in str(info.value).lower()
    assert tls_recorder.seen == []


@dataclass
class Proxy:
    """A forward proxy on 127.0.0.1: ``CONNECT`` tunnels, and absolute-form requests passed on
    as they are; keeps the first request line of each connection and its credentials."""

    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
            credentials = None
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "proxy-authorization":
                    credentials = value.strip()
            self.seen.append((method, target, credentials))
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
            else:
                authority = target.split("://", 1)[1].split("/", 1)[0]
                host, port = authority.rsplit(":", 1)
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream_writer.write(head)

            async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
                try:
                    while data := await source.read(65536):
                        sink.write(data)
                        await sink.drain()
                finally:
                    sink.close()

            await asyncio.gather(
                pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
            )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    async with serving(Proxy()) as state:
        yield state


PROXY_CREDENTIALS = "Basic " + base64.b64encode(b"user:pa ss").decode()


async def test_an_http_endpoint_through_a_proxy(recorder: Recorder, proxy: Proxy) -> None:
    transport = _fast(
        recorder.url,
        Credentials("local", "local"),
        proxy=f"http://user:pa%20ss@127.0.0.1:{proxy.port}",
    )
    try:
        for _ in range(3):
            assert await transport.call("UpdateItem", UPDATE) == json.loads(OK_BODY)
    finally:
        await transport.aclose()
    assert len(proxy.seen) <= 2
    # aiohttp files a proxied connection under a key that changes once, after the first
    # connect (it adds Host to the proxy headers): a second connection, then reuse.
    assert set(proxy.seen) == {("POST", f"{recorder.url}/", PROXY_CREDENTIALS)}
    assert len(recorder.seen) == 3
    assert recorder.seen[0].headers["host"] == f"127.0.0.1:{recorder.port}"  # as signed


async def test_an_https_endpoint_through_a_proxy_tunnel(
    tls_recorder: Recorder, tls_files: tuple[Path, Path, Path], proxy: Proxy
) -> None:
    transport = FastTransport(
        endpoint_url=f"https://127.0.0.1:{tls_recorder.port}",
        region_name="eu-west-1",
        credentials=Credentials("local", "local"),
        ssl_context=ssl.create_default_context(cafile=tls_files[0]),
        proxy=f"http://user:pa%20ss@127.0.0.1:{proxy.port}",
    )
    try:
        for _ in range(2):
            assert await transport.call("UpdateItem", UPDATE) == json.loads(OK_BODY)
    finally:
        await transport.aclose()
    assert set(proxy.seen) == {("CONNECT", f"127.0.0.1:{tls_recorder.port}", PROXY_CREDENTIALS)}
    assert len(tls_recorder.seen) == 2


async def test_open_resolves_region_and_endpoint_like_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "cn-north-1")
    transport = await open_fast_transport()
    try:
        assert transport.region_name == "cn-north-1"
        assert transport.endpoint_url == "https://dynamodb.cn-north-1.amazonaws.com.cn"
    finally:
        await transport.aclose()


async def test_a_cancelled_caller_leaves_its_sent_write_to_finish(recorder: Recorder) -> None:
    recorder.script.append(("late", 0.3))
    async with CounterPool("t", endpoint_url=recorder.url) as pool:
        caller = asyncio.create_task(pool.increment("a", 5))
        await recorder.arrived.wait()  # on the wire
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert (pool.stats.detached, pool.stats.in_progress) == (1, 1)
        flushed = await pool.flush()
        assert (flushed.acknowledged, flushed.acknowledged_amount) == (1, 5)
        assert (flushed.ambiguous, flushed.cancelled, flushed.in_progress) == (0, 0, 0)
        assert await pool.increment("a") == 1  # on the same connection: the answer was read
    assert recorder.connections == 1


async def test_a_caller_cancelling_is_not_a_read_timeout(recorder: Recorder) -> None:
    recorder.script.append(("late", 1.0))
    transport = _fast(recorder.url, Credentials("local", "local"), read_timeout=5.0)
    try:
        call = asyncio.ensure_future(transport.call("UpdateItem", UPDATE))
        await recorder.arrived.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert transport._deadlines.waiting == {}
    finally:
        await transport.aclose()


async def test_a_caller_cancelling_as_the_read_timeout_fires_stays_cancelled(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder.script.append(("late", 1.0))
    calls: list[asyncio.Future[Any]] = []
    sweep = _ReadDeadlines._sweep

    def sweep_then_cancel(self: _ReadDeadlines) -> None:
        sweep(self)
        if any(deadline.expired for deadline in self.waiting.values()):
            calls[0].cancel()  # in the same loop turn: both cancellations are pending at once

    monkeypatch.setattr(_ReadDeadlines, "_sweep", sweep_then_cancel)
    transport = _fast(recorder.url, Credentials("local", "local"), read_timeout=0.1)
    try:
        calls.append(asyncio.ensure_future(transport.call("UpdateItem", UPDATE)))
        with pytest.raises(asyncio.CancelledError):
            await calls[0]
    finally:
        await transport.aclose()


@pytest.mark.timing
async def test_the_read_timeout_sweep_stops_when_nothing_is_in_flight(recorder: Recorder) -> None:
    # Far above any natural answer here; the sweep ticks every read_timeout / 8 (at least 5 ms).
    read_timeout = 1.0
    transport = _fast(recorder.url, Credentials("local", "local"), read_timeout=read_timeout)
    try:
        await asyncio.gather(*(transport.call("UpdateItem", UPDATE) for _ in range(20)))
        assert transport._deadlines.waiting == {}
        await asyncio.sleep(2 * read_timeout / 8)  # a tick and more: timers fire in order
        assert transport._deadlines._handle is None
        await transport.call("UpdateItem", UPDATE)  # and starts again
    finally:
        await transport.aclose()
