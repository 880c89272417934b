"""A throttling proxy with its own token bucket per partition key (or per table), before any
DynamoDB endpoint.

The pool's pacing is judged against two buckets built apart: the embedded server's capacity model
(``--capacity``, ``--burst-seconds``) and this one, written without looking at that one's code, so
that the pacer cannot be tuned to the quirks of one model. This bucket is a GCRA (the "virtual
scheduling" form of a token bucket): each key keeps the time its next request is due, not a token
count. Its throttles are answered at once, before the upstream's latency, as a partition does.

Writes to one item (``UpdateItem``, ``DeleteItem``) cost one unit from their key's bucket, the
counters' small items being one WCU each; a throttled one is answered with DynamoDB's own body and
never forwarded. With ``--scope table`` one bucket holds the whole table's capacity instead (a
provisioned table's): its throttles name ``TableWriteProvisionedThroughputExceeded``, not the key
range, and a table's description (``DescribeTable``) gives that bucket's rate as its provisioned
write capacity, as DynamoDB's does. Everything else is forwarded untouched. Forwarded answers
keep their bytes and their ``x-amz-crc32`` (an upstream's wrong checksum stays visible); the
proxy's own answers carry the CRC32 of their bytes. Connections are kept alive on both sides.

    python benchmarks/bucket_proxy.py --upstream http://127.0.0.1:8000 --rate 100 --burst-seconds 1

prints its endpoint and serves until stopped; ``GET /_proxy/stats`` gives the counts per key.
In a test:

    async with BucketProxy("http://127.0.0.1:8000", rate=100, burst_seconds=0.05) as proxy:
        proxy.endpoint_url                    # "http://127.0.0.1:<port>"
        proxy.counts("counters", "hot")       # KeyCounts(requests=, throttled=, forwarded=)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

MIN_BURST_SECONDS: Final = 0.05
MAX_BURST_SECONDS: Final = 300.0
JSON_TYPE: Final = "application/x-amz-json-1.0"
THROTTLED_TYPE: Final = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
INTERNAL_TYPE: Final = "com.amazonaws.dynamodb.v20120810#InternalServerError"
#: A throttle's reason and message by the bucket's scope: a partition key, or the whole table.
SCOPES: Final = ("key", "table")
THROTTLED_REASONS: Final = {
    "key": "TableWriteKeyRangeThroughputExceeded",
    "table": "TableWriteProvisionedThroughputExceeded",
}
THROTTLED_MESSAGES: Final = {
    "key": "Throughput exceeds the current capacity for one or more partitions of your table. "
    "Reduce the request rate to the hot key or distribute writes across more keys.",
    "table": "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API.",
}
ACCOUNT: Final = "000000000000"
KEYED_WRITES: Final = frozenset({"UpdateItem", "DeleteItem"})
#: Headers that belong to one hop, not to the message: never relayed.
HOP_HEADERS: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}
)


class KeyBucket:
    """A GCRA limiter: ``rate`` units/s, a burst of ``burst_seconds`` of it, starting full.

    ``due`` is when the bucket would be empty were every admitted unit spent at the steady rate;
    a request fits while ``due`` is at most the bucket's depth ahead of now. A burst too small to
    hold one unit holds one, or nothing could ever pass.
    """

    __slots__ = ("due", "interval", "tolerance")

    def __init__(self, rate: float, burst_seconds: float) -> None:
        check_bucket(rate, burst_seconds)
        self.interval = 1.0 / rate
        depth = max(1.0, rate * burst_seconds)  # units the bucket holds
        self.tolerance = (depth - 1.0) * self.interval
        self.due = -math.inf

    def admit(self, now: float) -> bool:
        """Take one unit at ``now`` if the bucket holds one; ``False`` (nothing taken) if not."""
        start = max(self.due, now)
        # A thousandth of a unit of slack, so float sums of many intervals do not lose one.
        if start - now > self.tolerance + self.interval * 1e-3:
            return False
        self.due = start + self.interval
        return True


def check_bucket(rate: float, burst_seconds: float) -> None:
    if not (isinstance(rate, int | float) and 0 < rate < math.inf):
        raise ValueError(f"rate must be a number of units/s > 0, got {rate!r}")
    if not (
        isinstance(burst_seconds, int | float)
        and MIN_BURST_SECONDS <= burst_seconds <= MAX_BURST_SECONDS
    ):
        raise ValueError(
            f"burst_seconds must be from {MIN_BURST_SECONDS:g} to {MAX_BURST_SECONDS:g}, "
            f"got {burst_seconds!r}"
        )


@dataclass(slots=True)
class KeyCounts:
    """What one key's requests met: ``requests`` = ``throttled`` + ``forwarded``."""

    requests: int = 0
    throttled: int = 0
    forwarded: int = 0


def dynamodb_body(type_: str, message: str, **extra: Any) -> bytes:
    payload = {"__type": type_, "message": message, **extra}
    return json.dumps(payload, separators=(",", ":")).encode()


def throttle_body(region: str, table: str, scope: str = "key") -> bytes:
    """DynamoDB's body for a write throttled by its partition, or by the table's capacity (sent
    with HTTP 400)."""
    arn = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
    reasons = [{"reason": THROTTLED_REASONS[scope], "resource": arn}]
    return dynamodb_body(THROTTLED_TYPE, THROTTLED_MESSAGES[scope], ThrottlingReasons=reasons)


def own_answer(status: int, body: bytes) -> web.Response:
    """An answer the proxy writes itself, its checksum computed over exactly these bytes."""
    headers = {
        "Content-Type": JSON_TYPE,
        "x-amzn-RequestId": secrets.token_hex(26).upper(),
        "x-amz-crc32": str(zlib.crc32(body)),
    }
    return web.Response(status=status, body=body, headers=headers)


def keyed_write(target: str, body: bytes) -> tuple[str, str] | None:
    """(table, key) of a single-item write, the key's values joined in attribute order; or None."""
    if target.rpartition(".")[2] not in KEYED_WRITES:
        return None
    try:
        payload = json.loads(body)
        key = payload["Key"]
        table = payload["TableName"]
        values = "/".join(str(next(iter(key[name].values()))) for name in sorted(key) if key[name])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # malformed: the upstream answers it
    return (table, values) if isinstance(table, str) else None


def credential_region(authorization: str, default: str) -> str:
    """The region of a SigV4 ``Authorization`` header's credential scope, for the ARN."""
    _, found, rest = authorization.partition("Credential=")
    parts = rest.split(",")[0].split("/") if found else []
    return parts[2] if len(parts) >= 5 else default


class BucketProxy:
    """Throttles single-item writes per key with its own `KeyBucket` (``scope="key"``), or per
    table (``scope="table"``: all its keys share one); forwards the rest.

    Started once (``async with`` or `start`/`stop`); ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float,
        burst_seconds: float,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        scope: str = "key",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_bucket(rate, burst_seconds)
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        self.scope = scope
        self.upstream = upstream.rstrip("/")
        self.rate = rate
        self.burst_seconds = burst_seconds
        self._host, self._port, self._region, self._clock = host, port, region, clock
        self._buckets: dict[tuple[str, str], KeyBucket] = {}
        self._counts: dict[tuple[str, str], KeyCounts] = {}
        self.other = 0  # requests not throttled by key (reads, batches, table calls)
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.endpoint_url = ""

    async def start(self) -> str:
        self._session = ClientSession(
            connector=TCPConnector(limit=0, force_close=False),
            auto_decompress=False,
            timeout=ClientTimeout(total=None, sock_connect=10),
            skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_proxy/stats", self._stats)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint_url = f"http://{self._host}:{port}"
        return self.endpoint_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> BucketProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def counts(self, table: str, key: str) -> KeyCounts:
        """What ``key`` of ``table`` met so far (zeros if it was never written)."""
        return self._counts.get((table, key), KeyCounts())

    def snapshot(self) -> dict[str, Any]:
        """Counts per key and in total, as ``GET /_proxy/stats`` answers them."""
        keys = [{"table": t, "key": k, **asdict(c)} for (t, k), c in self._counts.items()]
        totals = {name: sum(int(entry[name]) for entry in keys) for name in asdict(KeyCounts())}
        return {
            "rate": self.rate,
            "burst_seconds": self.burst_seconds,
            "scope": self.scope,
            "totals": totals,
            "other": self.other,
            "keys": keys,
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        found = keyed_write(target, body)
        if found is None:
            self.other += 1
            if self.scope == "table" and target.rpartition(".")[2] == "DescribeTable":
                return await self._describe(request, body)
        else:
            counts = self._counts.get(found)
            if counts is None:
                counts = self._counts[found] = KeyCounts()
            limit = found if self.scope == "key" else (found[0], "")
            bucket = self._buckets.get(limit)
            if bucket is None:
                bucket = self._buckets[limit] = KeyBucket(self.rate, self.burst_seconds)
            counts.requests += 1
            if not bucket.admit(self._clock()):
                counts.throttled += 1
                region = credential_region(request.headers.get("Authorization", ""), self._region)
                return own_answer(400, throttle_body(region, found[0], self.scope))
            counts.forwarded += 1
        return await self._forward(request, body)

    async def _describe(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """The upstream's description of a table, giving the table's bucket as its provisioned
        write capacity: what DynamoDB's own description says of the capacity that throttles."""
        answer = await self._forward(request, body)
        raw = answer.body if isinstance(answer, web.Response) else None
        if answer.status != 200 or not isinstance(raw, bytes):
            return answer
        try:
            described = json.loads(raw)
            table = described["Table"]
            table["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
            throughput = table.setdefault("ProvisionedThroughput", {})
            throughput["WriteCapacityUnits"] = self.rate
        except (ValueError, KeyError, TypeError, AttributeError):
            return answer  # not a description: as it came
        return own_answer(200, json.dumps(described, separators=(",", ":")).encode())

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        try:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body
            ) as answer:
                raw = await answer.read()
                relayed = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=answer.status, body=raw, headers=relayed)
        except (ClientError, TimeoutError) as exc:
            # Sent or not, the write's fate is unknown: answered as DynamoDB's own ambiguous 500.
            message = f"upstream failed: {type(exc).__name__}"
            return own_answer(500, dynamodb_body(INTERNAL_TYPE, message))


async def serve(args: argparse.Namespace) -> None:
    proxy = BucketProxy(
        args.upstream,
        rate=args.rate,
        burst_seconds=args.burst_seconds,
        port=args.port,
        scope=args.scope,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with proxy:
        print(proxy.endpoint_url, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="the DynamoDB endpoint to forward to")
    parser.add_argument(
        "--rate", type=float, required=True, help="units/s per partition key (or per table)"
    )
    parser.add_argument(
        "--scope",
        choices=SCOPES,
        default="key",
        help="a bucket per partition key (default), or one per table (a provisioned table's)",
    )
    parser.add_argument(
        "--burst-seconds",
        type=float,
        default=1.0,
        help=f"seconds of the rate a bucket holds ({MIN_BURST_SECONDS:g} to "
        f"{MAX_BURST_SECONDS:g}; default %(default)s)",
    )
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        check_bucket(args.rate, args.burst_seconds)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
