"""The fast transport: DynamoDB's JSON protocol spoken directly over aiohttp's connections.

botocore spends most of an ``UpdateItem``'s CPU on things a counter pool does not need (parameter
validation against the service model, endpoint rules, a dozen event dispatches, building the
User-Agent twice). The pool's request builders already produce DynamoDB's wire JSON, so this
transport only serializes it (orjson), signs it (`sigv4`, signing key cached), sends it, checks
``x-amz-crc32`` and parses the answer into the same outcomes as the botocore transport.

Connections come from one aiohttp ``TCPConnector`` (keep-alive, TLS, DNS, at most
``max_in_flight`` connections), and each answer is parsed by aiohttp's own response protocol. What
this transport leaves out is ``ClientSession``'s per-request machinery (cookies, redirects,
proxies, traces, a request and a response object, a task writing the body): for one small POST to
one endpoint that machinery is about 60 % of the CPU of a ``session.post`` (see
``benchmarks/client_cpu.py``). The request is one fixed head and the body, in one write.

What a failure means for the request, the part the pool's retry decisions rest on:

- no connection could be had (refused, connect timeout, TLS failure, a pooled connection found
  closed before anything was written to it): nothing was sent, ``UNREACHABLE`` (safe to retry);
- anything after the request was written (no answer within ``read_timeout``, a reset or a dropped
  connection, a reused keep-alive connection closed under us, a truncated or malformed answer, a
  body whose CRC32 does not match, a 200 whose body is not JSON): the request may have been
  applied, ``AMBIGUOUS``;
- an HTTP error with a DynamoDB error body: classified by its code (`outcome_for_code`); an
  ``InvalidSignatureException`` caused by the clock says so, with the skew (`skew`).

Nothing is re-sent here, with one exception: a request refused because the credentials' token
expired (``ExpiredToken``, ``ExpiredTokenException``: refused before it ran) is sent once more
after the credentials are renewed (`expiry`).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp.connector import Connection
from aiohttp.http_parser import RawResponseMessage
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies
from yarl import URL

from ..slots import Slots
from . import Outcome, TransportError, answers, endpoints, expiry, is_loopback_url, skew
from .sessions import default_session
from .sigv4 import Credentials, Signer, Stamp, host_header

__all__ = ["CredentialProvider", "FastTransport", "open_fast_transport"]

_API_PREFIX = "DynamoDB_20120810."
_TARGETS = {
    operation: _API_PREFIX + operation
    for operation in (
        "UpdateItem",
        "GetItem",
        "BatchGetItem",
        "CreateTable",
        "DescribeTable",
        "DeleteTable",
        "PutItem",
        "TransactWriteItems",
        "DescribeTimeToLive",
        "UpdateTimeToLive",
    )
}
_OPERATION = re.compile(r"[A-Z][A-Za-z]{1,63}")
_REGION = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")
_USER_AGENT = f"async-counters aiohttp/{aiohttp.__version__}"
_LINE_BREAK = re.compile(r"[\r\n\0]")
#: How long an idle connection is kept for reuse.
_KEEPALIVE_SECONDS = 15.0
#: Pooled connections tried before giving up, when each holds bytes nobody asked for.
_CONNECT_ATTEMPTS = 3
_NO_CREDENTIALS = "Unable to locate credentials"


class _Deadline:
    __slots__ = ("at", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False


class _ReadDeadlines:
    """The read timeouts of every request in flight, kept by one timer.

    A timer per request costs about 6 µs on the standard asyncio loop, whose timer handles are
    Python objects: a tenth of the whole request. Here a request gets its deadline when its
    request is written (`start`), and one sweep, every ``tick`` while requests are in flight,
    cancels the requests past theirs; `FastTransport.call` turns that cancellation into
    ``ReadTimeoutError``. A request times out between ``read_timeout`` and ``read_timeout + tick``
    after it was sent.
    """

    __slots__ = ("_handle", "_loop", "read_timeout", "tick", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self._loop = loop
        self.read_timeout = read_timeout
        self.tick = min(max(read_timeout / 8, 0.005), 0.5)
        self.waiting: dict[asyncio.Task[Any], _Deadline] = {}
        self._handle: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[Any]) -> _Deadline:
        deadline = self.waiting[task] = _Deadline(self._loop.time() + self.read_timeout)
        if self._handle is None:
            self._handle = self._loop.call_later(self.tick, self._sweep)
        return deadline

    def _sweep(self) -> None:
        now = self._loop.time()
        for task, deadline in self.waiting.items():
            if deadline.at <= now and not deadline.expired:
                deadline.expired = True
                task.cancel()
        self._handle = self._loop.call_later(self.tick, self._sweep) if self.waiting else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class CredentialProvider(Protocol):
    """What botocore's and aiobotocore's credentials objects offer: a consistent snapshot of
    access key, secret key and token, refreshed first when they are about to expire."""

    def get_frozen_credentials(self) -> Awaitable[Any]: ...


class FastTransport:
    """A `Transport` that signs and sends DynamoDB's JSON itself over one aiohttp connector.

    ``credentials`` is either fixed `Credentials` or a provider (aiobotocore's credentials from
    ``AioSession.get_credentials()``), asked at most once per second for a fresh snapshot (which
    is how refreshable credentials refresh before they expire; the question is awaited, so a
    refresh from a metadata service or SSO never blocks the event loop). ``None`` means none
    were found: every call is then refused with ``NoCredentialsError``, as botocore does.

    The connector holds at most ``max_in_flight`` connections; a call waits for a free one.
    ``connect_timeout`` bounds establishing a connection, ``read_timeout`` the wait for the whole
    answer once the request is written. An https endpoint's certificate is verified against
    ``ssl_context`` when given, else against the system's trust store. ``proxy``
    (``http://[user:password@]host:port``): an https endpoint is reached through a ``CONNECT``
    tunnel, an http one by sending the proxy the request.

    Create it inside a running event loop; `open_fast_transport` also resolves credentials,
    region and endpoint the way botocore does.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        region_name: str,
        credentials: Credentials | CredentialProvider | None,
        max_in_flight: int = 64,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        proxy: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint_url must be an http(s) URL, got {endpoint_url!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("endpoint_url must not carry a query, a fragment or user info")
        _check_region(region_name)
        self._url = URL(endpoint_url)
        self._signer = Signer(host=host_header(endpoint_url), region=region_name, path=parts.path)
        if isinstance(credentials, Credentials):
            self._credentials: Credentials | None = credentials
            self._provider: CredentialProvider | None = None
        else:
            self._credentials = None
            self._provider = credentials
        self._clock = clock
        self._second = -1  # the whole second ``_stamp`` was made for
        self._stamp: Stamp | None = None
        self._head = ""  # the request head up to the per-request headers, for ``_stamp``
        self._refreshed = -1  # the second of the last successful credentials refresh
        self._generation = 0  # renewals after an expired token (`expiry`)
        self._refresh_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._deadlines = _ReadDeadlines(self._loop, read_timeout)
        # The transport's own bound comes first: a caller cancelled while waiting in it always
        # passes its turn on, which the connector's own queue does not promise.
        self._slots = Slots(max_in_flight)
        # Idle connections are dropped after 15 s, well before DynamoDB closes them (about a
        # minute): a write sent on a connection the server has just closed could only be
        # reported ambiguous.
        self._connector = aiohttp.TCPConnector(
            limit=max_in_flight, limit_per_host=0, keepalive_timeout=_KEEPALIVE_SECONDS
        )
        proxy_url, proxy_auth = _proxy(proxy)
        # What the connector needs to know of a request to pick or open a connection for it:
        # the same for every request (scheme, host, port, how TLS is verified, the proxy).
        self._request = aiohttp.ClientRequest(
            "POST",
            self._url,
            loop=self._loop,
            ssl=ssl_context if ssl_context is not None else True,
            proxy=proxy_url,
            proxy_headers=None if proxy_auth is None else {"Proxy-Authorization": proxy_auth},
        )
        self._connect_timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=None
        )
        # The request line, and for a plain-HTTP proxy its credentials: the head's fixed start.
        path = self._url.raw_path or "/"
        if proxy_url is None or self._url.scheme == "https":  # direct, or through a tunnel
            self._head_start = f"POST {path} HTTP/1.1\r\n"
        else:  # to an HTTP proxy, which forwards it: the absolute form, and its credentials
            self._head_start = f"POST {parts.scheme}://{self._signer.host}{path} HTTP/1.1\r\n"
            if proxy_auth is not None:
                self._head_start += f"Proxy-Authorization: {proxy_auth}\r\n"

    @property
    def endpoint_url(self) -> str:
        return str(self._url)

    @property
    def region_name(self) -> str:
        return self._signer.region

    def __repr__(self) -> str:
        return f"<FastTransport {self._url} {self._signer.region}>"

    async def call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        generation = self._generation
        try:
            return await self._send(operation, params)
        except TransportError as error:
            if not expiry.is_expired_token(error):
                raise
            await self._renew(generation, error)
        try:  # once more, signed with the renewed credentials
            return await self._send(operation, params)
        except TransportError as error:
            if expiry.is_expired_token(error):
                raise expiry.expired_again(error) from None
            raise

    async def _renew(self, generation: int, error: TransportError) -> None:
        """Renew the credentials after ``error`` said their token expired, unless a call refused
        alike has renewed them since ``generation``."""
        provider = self._provider
        if provider is None or not expiry.can_renew(provider):
            raise expiry.cannot_renew(error) from None
        async with self._refresh_lock:
            if self._generation == generation:
                await expiry.renew(provider)
                self._generation += 1
                # Nothing more is signed with the refused credentials: the next stamp waits for
                # the provider's new ones.
                self._credentials = None
                self._refreshed = -1
                self._stamp = None

    async def _send(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        target = _TARGETS.get(operation)
        if target is None:
            if not _OPERATION.fullmatch(operation):
                raise ValueError(f"not a DynamoDB operation name: {operation!r}")
            target = _API_PREFIX + operation
        second = int(self._clock())
        stamp = self._stamp
        if second != self._second or stamp is None:
            stamp = await self._restamp(second)
        body = orjson.dumps(params)
        request = (
            f"{self._head}X-Amz-Target: {target}\r\n"
            f"Authorization: {stamp.authorization(target, body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("FastTransport.call must run in a task of the loop that made it")
        slots = self._slots
        if not slots.try_take():
            await slots.take()
        try:
            connection = await self._connect()
            message, raw = await self._exchange(connection, task, request)
        finally:
            slots.release()
        status = message.code
        crc = message.headers.get("x-amz-crc32")
        if crc is not None and not (crc.isdigit() and int(crc) == zlib.crc32(raw)):
            raise answers.crc32_mismatch(status, crc)  # applied or not: never sent again
        if status == 200:
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                raise answers.invalid_success()
            return parsed
        error = answers.service_error(status, raw)
        if error.code == "InvalidSignatureException":
            error = skew.explain(error, message.headers.get("Date"), self._clock())
        raise error

    async def _connect(self) -> Connection:
        """A connection with nothing left on it of an earlier exchange; UNREACHABLE if none can
        be had (nothing was sent)."""
        for _ in range(_CONNECT_ATTEMPTS):
            try:
                connection = await self._connector.connect(self._request, [], self._connect_timeout)
            except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
                raise TransportError(
                    Outcome.UNREACHABLE, "ConnectTimeoutError", str(exc) or "connect timed out"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise TransportError(
                    Outcome.UNREACHABLE, "EndpointConnectionError", str(exc) or type(exc).__name__
                ) from None
            protocol = connection.protocol
            writer = connection.transport
            if (
                protocol is not None
                and writer is not None
                and not writer.is_closing()
                and not protocol.should_close
            ):
                return connection
            # Closed while idle, or holding bytes nobody asked for (a server that answered
            # twice): read next, they would pass for this request's answer. Never reused.
            connection.close()
        raise TransportError(
            Outcome.UNREACHABLE,
            "EndpointConnectionError",
            f"no clean connection in {_CONNECT_ATTEMPTS} tries (the server sends unasked bytes)",
        )

    async def _exchange(
        self, connection: Connection, task: asyncio.Task[Any], request: bytes
    ) -> tuple[RawResponseMessage, bytes]:
        """Write ``request`` on ``connection`` and read its whole answer; AMBIGUOUS on failure."""
        protocol = connection.protocol
        writer = connection.transport
        assert protocol is not None and writer is not None  # checked by `_connect`, no await since
        deadlines = self._deadlines
        deadline = deadlines.start(task)
        try:
            protocol.set_response_params(read_until_eof=True, auto_decompress=False)
            writer.write(request)
            message, payload = await protocol.read()
            while 100 <= message.code < 200:  # an interim answer; the real one follows
                message, payload = await protocol.read()
            raw = await payload.read()
        except asyncio.CancelledError:
            connection.close()
            if deadline.expired and task.uncancel() == 0:  # our read timeout, not the caller's
                raise TransportError(
                    Outcome.AMBIGUOUS,
                    "ReadTimeoutError",
                    f"no answer within read_timeout ({deadlines.read_timeout:g} s)",
                ) from None
            raise
        except Exception as exc:  # written: whatever broke, it may have been applied
            connection.close()
            raise TransportError(
                Outcome.AMBIGUOUS, "ConnectionClosedError", str(exc) or type(exc).__name__
            ) from None
        except BaseException:
            connection.close()
            raise
        finally:
            del deadlines.waiting[task]
        connection.release()  # back to the pool, or closed if the answer said so
        return message, raw

    async def _restamp(self, second: int) -> Stamp:
        """The signing stamp for this second, asking the credentials provider once a second."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        self._second = second
        if self._credentials is not None:
            self._use(self._signer.stamp(self._credentials, amz_date), self._credentials)
        if self._provider is None:
            if self._stamp is None:
                raise TransportError(Outcome.REJECTED, "NoCredentialsError", _NO_CREDENTIALS)
            return self._stamp
        if self._refresh_lock.locked() and self._stamp is not None:
            return self._stamp  # another call is refreshing; the current ones stay valid meanwhile
        async with self._refresh_lock:
            if self._refreshed < second or self._stamp is None:
                await self._refresh(second)
            assert self._stamp is not None
            return self._stamp

    async def _refresh(self, second: int) -> None:
        assert self._provider is not None
        try:
            frozen = await self._provider.get_frozen_credentials()
        except Exception as exc:
            # Not sent. The exception's text is not passed on: it may quote a credentials file.
            raise TransportError(
                Outcome.REJECTED,
                "CredentialRetrievalError",
                f"could not get AWS credentials ({type(exc).__name__})",
            ) from None
        access_key = getattr(frozen, "access_key", None)
        secret_key = getattr(frozen, "secret_key", None)
        if not access_key or not secret_key:
            raise TransportError(Outcome.REJECTED, "NoCredentialsError", _NO_CREDENTIALS)
        current = self._credentials
        token = getattr(frozen, "token", None) or None
        if current is None or (current.access_key, current.secret_key, current.token) != (
            access_key,
            secret_key,
            token,
        ):
            current = self._credentials = Credentials(access_key, secret_key, token)
        self._refreshed = second
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._second))
        self._use(self._signer.stamp(current, amz_date), current)

    def _use(self, stamp: Stamp, credentials: Credentials) -> None:
        """Sign with ``stamp`` from now on, and build the request head its requests share."""
        if _LINE_BREAK.search(credentials.access_key + (credentials.token or "")):
            # They would end a header line; the values themselves are not repeated here.
            raise TransportError(
                Outcome.REJECTED, "InvalidCredentials", "AWS credentials hold a line break"
            )
        headers = {
            **stamp.fixed_headers,
            "User-Agent": _USER_AGENT,
            "Accept-Encoding": "identity",  # the CRC32 is over the body as sent: no compression
        }
        self._head = self._head_start + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        self._stamp = stamp

    async def aclose(self) -> None:
        """Close the connector and its connections. Idempotent."""
        self._deadlines.close()
        await self._connector.close()


def _proxy(proxy: str | None) -> tuple[URL | None, str | None]:
    """The proxy's URL without its credentials, and its ``Proxy-Authorization`` value (read as
    botocore reads a proxy: one written without a scheme is an ``http://`` one)."""
    if proxy is None:
        return None, None
    if "://" not in proxy:
        proxy = ("http:" if proxy.startswith("//") else "http://") + proxy
    url = URL(proxy)
    if url.scheme not in ("http", "https") or not url.host or _LINE_BREAK.search(proxy):
        raise ValueError("proxy must be an http(s) URL")  # not repeated: it may hold a password
    if url.user is None and url.password is None:
        return url, None
    pair = f"{url.user or ''}:{url.password or ''}".encode()
    return url.with_user(None), "Basic " + base64.b64encode(pair).decode()


def _environment_proxy(endpoint_url: str) -> str | None:
    """The proxy botocore would use for ``endpoint_url``: ``HTTPS_PROXY``/``HTTP_PROXY`` by its
    scheme, unless ``NO_PROXY`` names the host; never one for this machine's own addresses,
    which no proxy can reach. (Reads the environment, and on some systems their settings.)"""
    if is_loopback_url(endpoint_url):
        return None
    proxy = get_environ_proxies(endpoint_url).get(urlsplit(endpoint_url).scheme)
    return proxy if isinstance(proxy, str) and proxy else None


def _check_region(region: str) -> None:
    """Refuse what is not a region name (botocore's test: a host label) before it is put in a
    header."""
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValueError(f"not an AWS region name: {region!r}")


def _core_session(session: Any) -> Any:
    """The botocore-level session behind ``session`` (an aioboto3 ``Session`` wraps an
    aiobotocore one), or None for a session of neither kind."""
    if hasattr(session, "get_config_variable"):
        return session
    core = getattr(session, "_session", None)
    return core if hasattr(core, "get_config_variable") else None


def _ca_bundle(core: Any) -> str | None:
    """``AWS_CA_BUNDLE`` or the profile's ``ca_bundle`` (may read the config files)."""
    found = core.get_config_variable("ca_bundle")
    return found if isinstance(found, str) and found else None


def _verifying(ca_bundle: str) -> ssl.SSLContext:
    """A TLS context that trusts the certificates in ``ca_bundle`` (reads the file)."""
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"the CA bundle {ca_bundle!r} (AWS_CA_BUNDLE or the profile's ca_bundle) cannot be "
            f"used: {exc}"
        ) from None


async def _session_credentials(session: Any) -> CredentialProvider | None:
    """The session's credentials through botocore's provider chain, resolved without blocking."""
    found = session.get_credentials()
    if asyncio.iscoroutine(found) or isinstance(found, asyncio.Future):
        found = await found
    return found  # type: ignore[no-any-return]


async def _account_id(credentials: Credentials | CredentialProvider | None) -> str | None:
    """The account ID the credentials carry (``AWS_ACCOUNT_ID``, the profile's
    ``aws_account_id``, SSO, an assumed role), as botocore reads it for account-based endpoints;
    None when they carry none or cannot be had now (a call will say why)."""
    if credentials is None or isinstance(credentials, Credentials):
        return None
    try:
        frozen = await credentials.get_frozen_credentials()
    except Exception:
        return None
    account_id = getattr(frozen, "account_id", None)
    return account_id if isinstance(account_id, str) and account_id else None


async def open_fast_transport(
    *,
    session: Any = None,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    placeholder_credentials: bool = False,
    fallback_region: str | None = None,
    max_in_flight: int = 64,
    connect_timeout: float = 3.0,
    read_timeout: float = 10.0,
    table: str | None = None,
) -> FastTransport:
    """A `FastTransport` configured as an aiobotocore client would be, for requests on ``table``.

    Region: ``region_name``, else the session's (``AWS_DEFAULT_REGION``, the profile), else
    ``fallback_region``, else `ValueError`. Credentials: the session's provider chain
    (environment, profiles, SSO, container and instance roles), or, with
    ``placeholder_credentials``, the fixed pair ``local``/``local`` that local servers accept.
    Endpoint and signing region: chosen once, here, by botocore's own endpoint rules
    (`endpoints.choose`): ``endpoint_url`` or the configured one, else the region's, its FIPS or
    dual-stack variant, or the account-based endpoint of the account ID of ``table`` given as an
    ARN, else of the credentials, as ``account_id_endpoint_mode`` says; region ``local`` is
    DynamoDB Local at ``localhost:8000``. TLS is verified against ``AWS_CA_BUNDLE`` or the
    profile's ``ca_bundle`` when set, else against botocore's default bundle (certifi's when
    installed), as botocore does. A proxy in ``HTTPS_PROXY``/``HTTP_PROXY`` is used as botocore
    uses it (``NO_PROXY`` honoured), except for a loopback endpoint.
    """
    if session is None:
        session = default_session()  # built once per loop and configuration, not per pool
    core = _core_session(session)
    if core is None:  # a session of neither kind: only its region is taken from it
        given_region = getattr(session, "region_name", None)
        region_name = region_name or (given_region if isinstance(given_region, str) else None)
        core = default_session()
    if region_name is None:
        configured = await asyncio.to_thread(core.get_config_variable, "region")
        region_name = configured or fallback_region
    credentials: Credentials | CredentialProvider | None
    if placeholder_credentials:
        credentials = Credentials("local", "local")
    else:
        credentials = await _session_credentials(core)
    endpoint = await asyncio.to_thread(
        endpoints.choose,
        core,
        region_name=region_name,
        endpoint_url=endpoint_url,
        account_id=await _account_id(credentials),
        table=table,
    )
    proxy = await asyncio.to_thread(_environment_proxy, endpoint.url)
    ssl_context = None
    if endpoint.url.lower().startswith("https:"):
        # As botocore: the configured bundle, else its default one (certifi's, or its own).
        ca_bundle = await asyncio.to_thread(_ca_bundle, core)
        ssl_context = await asyncio.to_thread(_verifying, ca_bundle or get_cert_path(True))
    return FastTransport(
        endpoint_url=endpoint.url,
        region_name=endpoint.signing_region,
        credentials=credentials,
        max_in_flight=max_in_flight,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        ssl_context=ssl_context,
        proxy=proxy,
    )
