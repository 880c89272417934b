"""Client CPU per DynamoDB UpdateItem: the pool's transports against their peers, in one run.

A fake DynamoDB runs in its own process (pinned to its own core when there are two) and answers
every request with one fixed, valid UpdateItem body and its ``x-amz-crc32``, so that what is
measured is the client alone. Each client then runs in a fresh process pinned to one core, drives
64 calls in flight on asyncio and on uvloop, and reports the process CPU time per call
(``time.process_time``, not wall time) and the calls per second it reached.

Clients:
  aioboto3        aioboto3's resource ``Table.update_item`` (the usual recipe)
  aiobotocore     aiobotocore ``client.update_item``, botocore's retries off
  aiodynamo       aiodynamo over aiohttp (its own signing, no botocore)
  floor           aiohttp POST of prebuilt bytes and headers: the floor for any aiohttp client
  floor-tuned     the same POST on a session tuned for it (no cookie jar, no decompression, no
                  per-chunk read timer), to show what session settings alone are worth
  transport       the pool's FastTransport.call alone, no pool (to split the pool's own cost off):
                  it signs each request, writes it on a connection of aiohttp's connector and
                  reads the answer with aiohttp's parser, without ClientSession's machinery
  pool-botocore   CounterPool(transport="botocore").increment
  pool-fast       CounterPool(transport="fast").increment
  pool-otel-metrics  the same with OpenTelemetryHooks on an SDK MeterProvider (in-memory reader)
                  and no tracer: what the metrics alone cost
  pool-otel       the same with metrics and spans: an SDK TracerProvider whose BatchSpanProcessor
                  exports to memory (its export thread's CPU is the process's, so it is counted)

The two pool-otel rows need the ``[otel]`` extra and the OpenTelemetry SDK (both in ``[dev]``); a
run of every client skips them when the SDK is missing.

aioboto3 pins an older aiobotocore than the project uses, so the two peers (aioboto3, aiodynamo)
run from a separate virtualenv that this script creates on first use (``--peer-venv``, default
``.venv-peers`` at the repository root, shared with the other benchmarks: `peers.py`; needs pip
to reach the package index once). ``--no-peers`` skips them.

    python benchmarks/client_cpu.py                     # everything, about 4 minutes
    python benchmarks/client_cpu.py --clients floor,pool-fast --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = "bench"
KEYS = 10_000  # distinct counters cycled through: per-user counters, no coalescing possible
BODY = b'{"Attributes":{"count":{"N":"1"}}}'
#: The same answer with what DynamoDB adds when asked ``ReturnConsumedCapacity=TOTAL`` (the
#: pool asks on every request): ``--consumed-capacity``.
BODY_CONSUMED = (
    b'{"Attributes":{"count":{"N":"1"}},'
    b'"ConsumedCapacity":{"TableName":"bench","CapacityUnits":1.0}}'
)
PEERS = ("aioboto3", "aiodynamo")
CLIENTS = (
    "aioboto3",
    "aiobotocore",
    "aiodynamo",
    "floor",
    "floor-tuned",
    "transport",
    "pool-botocore",
    "pool-fast",
    "pool-otel-metrics",
    "pool-otel",
)
OTEL = ("pool-otel-metrics", "pool-otel")
LABELS = {
    "aioboto3": "aioboto3 resource `Table.update_item`",
    "aiobotocore": "aiobotocore `client.update_item`, retries off",
    "aiodynamo": "aiodynamo + aiohttp",
    "floor": "aiohttp POST of prebuilt bytes (floor)",
    "floor-tuned": "same POST, session tuned (no cookies, decompression, read timer)",
    "transport": "`FastTransport.call` alone (no pool)",
    "pool-botocore": 'pool `increment`, transport="botocore"',
    "pool-fast": 'pool `increment`, transport="fast"',
    "pool-otel-metrics": "pool-fast + `OpenTelemetryHooks`, metrics only",
    "pool-otel": "pool-fast + `OpenTelemetryHooks`, metrics and spans",
}
#: Calls measured per run: the slow clients get fewer, so every run takes a few seconds.
SLOW = {"aioboto3", "aiobotocore", "pool-botocore"}
PEER_REQUIREMENTS = ["aioboto3>=13", "aiodynamo>=24", "uvloop>=0.19"]  # as peers.PEER_PACKAGES


# -- the fake server ---------------------------------------------------------------------------


def _response(body: bytes = BODY) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/x-amz-json-1.0\r\n"
        b"x-amzn-RequestId: BENCH\r\n"
        b"x-amz-crc32: %d\r\n"
        b"Content-Length: %d\r\n\r\n" % (zlib.crc32(body), len(body))
    ) + body


class _FakeDynamo(asyncio.Protocol):
    """HTTP/1.1 keep-alive; every complete request gets the same UpdateItem answer."""

    answer = _response()

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport instances

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"\r\ncontent-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            answers += 1
        self.buffer = buffer
        if answers and self.transport is not None:
            self.transport.write(self.answer * answers)


def serve(port: int, consumed: bool = False) -> None:
    if consumed:
        _FakeDynamo.answer = _response(BODY_CONSUMED)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FakeDynamo, "127.0.0.1", port, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the clients -------------------------------------------------------------------------------

Call = Callable[[int], Awaitable[Any]]


def _key(i: int) -> str:
    return f"user:{i % KEYS}"


@contextlib.asynccontextmanager
async def _client(name: str, url: str, in_flight: int) -> AsyncIterator[Call]:
    """The client ``name``, ready to call: one UpdateItem adding 1 to a counter per call."""
    creds = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    if name == "aioboto3":
        import aioboto3  # type: ignore[import-not-found]
        from aiobotocore.config import AioConfig

        session = aioboto3.Session()
        config = AioConfig(max_pool_connections=in_flight)
        async with session.resource(
            "dynamodb", endpoint_url=url, region_name="us-east-1", config=config, **creds
        ) as resource:
            table = await resource.Table(TABLE)

            async def boto3_call(i: int) -> Any:
                return await table.update_item(
                    Key={"pk": _key(i)},
                    UpdateExpression="ADD #v :n",
                    ExpressionAttributeNames={"#v": "count"},
                    ExpressionAttributeValues={":n": 1},
                    ReturnValues="UPDATED_NEW",
                )

            yield boto3_call
    elif name == "aiobotocore":
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            max_pool_connections=in_flight, retries={"total_max_attempts": 1, "mode": "standard"}
        )
        async with get_session().create_client(
            "dynamodb", endpoint_url=url, region_name="us-east-1", config=config, **creds
        ) as client:

            async def botocore_call(i: int) -> Any:
                return await client.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": _key(i)}},
                    UpdateExpression="ADD #v :n",
                    ExpressionAttributeNames={"#v": "count"},
                    ExpressionAttributeValues={":n": {"N": "1"}},
                    ReturnValues="UPDATED_NEW",
                )

            yield botocore_call
    elif name == "aiodynamo":
        import aiohttp
        from aiodynamo.client import Client  # type: ignore[import-not-found]
        from aiodynamo.credentials import Key, StaticCredentials  # type: ignore[import-not-found]
        from aiodynamo.expressions import F  # type: ignore[import-not-found]
        from aiodynamo.http.aiohttp import AIOHTTP  # type: ignore[import-not-found]
        from aiodynamo.models import ReturnValues  # type: ignore[import-not-found]
        from yarl import URL

        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector) as http:
            client = Client(
                AIOHTTP(http),
                StaticCredentials(Key("local", "local")),
                "us-east-1",
                endpoint=URL(url),
            )
            table = client.table(TABLE)
            add_one = F("count").add(1)

            async def dynamo_call(i: int) -> Any:
                return await table.update_item(
                    {"pk": _key(i)}, add_one, return_values=ReturnValues.updated_new
                )

            yield dynamo_call
    elif name in ("floor", "floor-tuned"):
        import aiohttp

        from async_counters import builders
        from async_counters.transport.sigv4 import Credentials, Signer, host_header

        body = json.dumps(builders.update(TABLE, "pk", "count", _key(0), 1)).encode()
        stamp = Signer(host=host_header(url), region="us-east-1").stamp(
            Credentials("local", "local"), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        )
        headers = stamp.headers("DynamoDB_20120810.UpdateItem", body)
        connector = aiohttp.TCPConnector(limit=in_flight)
        options: dict[str, Any] = {}
        if name == "floor-tuned":
            options = {
                "headers": {"Accept-Encoding": "identity"},
                "auto_decompress": False,
                "cookie_jar": aiohttp.DummyCookieJar(),
                "timeout": aiohttp.ClientTimeout(total=None, sock_connect=3),
            }
        async with aiohttp.ClientSession(connector=connector, **options) as http:

            async def floor_call(i: int) -> Any:
                async with http.post(url, data=body, headers=headers) as response:
                    return await response.read()

            yield floor_call
    elif name == "transport":
        from async_counters import builders
        from async_counters.transport.fast import FastTransport
        from async_counters.transport.sigv4 import Credentials

        transport = FastTransport(
            endpoint_url=url,
            region_name="us-east-1",
            credentials=Credentials("local", "local"),
            max_in_flight=in_flight,
        )
        try:

            async def transport_call(i: int) -> Any:
                params = builders.update(TABLE, "pk", "count", _key(i), 1)
                return await transport.call("UpdateItem", params)

            yield transport_call
        finally:
            await transport.aclose()
    elif name in ("pool-botocore", "pool-fast"):
        from async_counters import CounterPool

        transport_name: Any = name.removeprefix("pool-")
        async with CounterPool(
            TABLE, endpoint_url=url, transport=transport_name, max_in_flight=in_flight
        ) as pool:

            async def pool_call(i: int) -> Any:
                return await pool.increment(_key(i))

            yield pool_call
    elif name in OTEL:
        async with _otel_pool(url, in_flight, spans=name == "pool-otel") as pool:

            async def otel_call(i: int) -> Any:
                return await pool.increment(_key(i))

            yield otel_call
    else:
        raise SystemExit(f"unknown client {name!r}")


@contextlib.asynccontextmanager
async def _otel_pool(url: str, in_flight: int, *, spans: bool) -> AsyncIterator[Any]:
    """The fast pool observed by OpenTelemetryHooks on SDK providers that keep data in memory."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import NoOpTracerProvider

    from async_counters import CounterPool
    from async_counters.telemetry import OpenTelemetryHooks

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    # Without spans, no tracer at all, as an application that only wants metrics has: an SDK
    # tracer with no processor would still build every span.
    traces: Any = NoOpTracerProvider()
    if spans:
        traces = TracerProvider()
        traces.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    hooks = OpenTelemetryHooks(meter_provider, traces, table=TABLE)
    try:
        async with CounterPool(
            TABLE, endpoint_url=url, transport="fast", max_in_flight=in_flight, hooks=hooks
        ) as pool:
            yield pool
        reader.get_metrics_data()  # one collection, as an exporter's interval would do
    finally:
        if spans:
            traces.shutdown()
        meter_provider.shutdown()


async def _drive(call: Call, calls: int, in_flight: int) -> None:
    numbers = iter(range(calls))

    async def worker() -> None:
        for i in numbers:
            await call(i)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def _measure(name: str, url: str, calls: int, warmup: int, in_flight: int) -> dict[str, Any]:
    async with _client(name, url, in_flight) as call:
        await _drive(call, warmup, in_flight)
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        await _drive(call, calls, in_flight)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us": cpu / calls * 1e6, "calls_per_s": calls / wall, "calls": calls}


def _same_imports() -> None:
    """Import the same large modules in every client process before measuring.

    How much a process has imported moves the CPU per call of everything in it by up to 15 %
    here (the same aiohttp POST costs 74 µs in a process that imported little and 62 µs in one
    that also imported botocore, with garbage collection off): allocator and cache layout, not
    the code measured. Every client imports botocore's session (the pool does anyway) so that
    the processes compare like for like.
    """
    for module in ("aiohttp", "botocore.session", "aiobotocore.session"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def run_client(args: argparse.Namespace) -> None:
    _same_imports()
    if hasattr(os, "sched_setaffinity") and args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    result = asyncio.run(_measure(args.name, args.url, args.calls, args.warmup, args.in_flight))
    print(json.dumps(result), flush=True)


# -- orchestration -----------------------------------------------------------------------------


def _peer_python(venv: Path) -> Path:
    from peers import peer_python  # this script's folder is on sys.path when it runs

    return peer_python(tuple(PEER_REQUIREMENTS), venv)


def _versions(python: Path | str, modules: list[str]) -> str:
    code = (
        "import importlib.metadata as m, sys\n"
        f"for name in {modules!r}:\n"
        "    try: print(f'{name} {m.version(name)}', end='; ')\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip().rstrip(";")


def _one_run(
    python: Path | str, name: str, loop: str, url: str, args: argparse.Namespace, cpu: int | None
) -> dict[str, Any]:
    calls = args.calls // 4 if name in SLOW else args.calls
    command = [
        str(python),
        str(Path(__file__).resolve()),
        "client",
        name,
        "--loop",
        loop,
        "--url",
        url,
        "--calls",
        str(calls),
        "--warmup",
        str(args.warmup),
        "--in-flight",
        str(args.in_flight),
    ]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{name} on {loop} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    serve_parser = sub.add_parser("serve", help="run the fake server (used internally)")
    serve_parser.add_argument("--port", type=int, default=0)
    serve_parser.add_argument("--consumed-capacity", action="store_true")
    client_parser = sub.add_parser("client", help="measure one client (used internally)")
    client_parser.add_argument("name", choices=CLIENTS)
    client_parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    client_parser.add_argument("--url", required=True)
    client_parser.add_argument("--calls", type=int, default=20_000)
    client_parser.add_argument("--warmup", type=int, default=2_000)
    client_parser.add_argument("--in-flight", type=int, default=64)
    client_parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--calls", type=int, default=20_000, help="per run (a quarter for slow)")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is shown")
    parser.add_argument("--peer-venv", type=Path, default=ROOT / ".venv-peers")
    parser.add_argument("--no-peers", action="store_true", help="skip aioboto3 and aiodynamo")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--consumed-capacity",
        action="store_true",
        help="the fake answers with ConsumedCapacity, as DynamoDB does to the pool's requests",
    )
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.consumed_capacity)
        return
    if args.mode == "client":
        run_client(args)
        return

    clients = [c for c in args.clients.split(",") if c]
    for name in clients:
        if name not in CLIENTS:
            parser.error(f"unknown client {name!r}; choose from {', '.join(CLIENTS)}")
    if args.no_peers:
        clients = [c for c in clients if c not in PEERS]
    if (
        args.clients == parser.get_default("clients")
        and importlib.util.find_spec("opentelemetry.sdk") is None
    ):
        print("OpenTelemetry SDK not installed: skipping", ", ".join(OTEL))
        clients = [c for c in clients if c not in OTEL]
    loops = [loop for loop in args.loops.split(",") if loop]
    pythons: dict[str, Path | str] = {name: sys.executable for name in clients}
    peer_python: Path | None = None
    if any(name in PEERS for name in clients):
        peer_python = _peer_python(args.peer_venv)
        for name in PEERS:
            pythons[name] = peer_python

    two_cores = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2
    cores = sorted(os.sched_getaffinity(0)) if two_cores else []
    client_cpu, server_cpu = (cores[0], cores[1]) if two_cores else (None, None)
    server_command = [sys.executable, str(Path(__file__).resolve()), "serve"]
    if args.consumed_capacity:
        server_command.append("--consumed-capacity")
    if server_cpu is not None:
        server_command = ["taskset", "-c", str(server_cpu), *server_command]
    server = subprocess.Popen(server_command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        print(
            f"fake DynamoDB at {url} (core {server_cpu}); clients on core {client_cpu}; "
            f"{args.in_flight} in flight; {args.calls} calls per run "
            f"({args.calls // 4} for {', '.join(sorted(SLOW & set(clients)))}); "
            f"median of {args.repeat}",
            flush=True,
        )
        print("project venv:", _versions(sys.executable, ["aiobotocore", "aiohttp", "orjson"]))
        if peer_python is not None:
            print("peer venv:   ", _versions(peer_python, ["aioboto3", "aiobotocore", "aiodynamo"]))
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for repeat in range(args.repeat):
            for loop in loops:
                for name in clients:
                    result = _one_run(pythons[name], name, loop, url, args, client_cpu)
                    results.setdefault((name, loop), []).append(result)
                    print(
                        f"  run {repeat + 1}/{args.repeat} {loop:7} {name:14} "
                        f"{result['cpu_us']:8.1f} µs CPU/call {result['calls_per_s']:9.0f} calls/s",
                        flush=True,
                    )
    finally:
        server.terminate()
        server.wait()

    _print_table(clients, loops, results)
    if args.json:
        args.json.write_text(
            json.dumps({f"{n}/{lp}": runs for (n, lp), runs in results.items()}, indent=1)
        )


def _print_table(
    clients: list[str], loops: list[str], results: dict[tuple[str, str], list[dict[str, Any]]]
) -> None:
    def median(name: str, loop: str, field: str) -> float | None:
        runs = results.get((name, loop))
        return statistics.median(r[field] for r in runs) if runs else None

    header = ["client"]
    for loop in loops:
        header += [f"CPU µs/call ({loop})", f"x floor ({loop})", f"calls/s ({loop})"]
    print()
    print("| " + " | ".join(header) + " |")
    print("|---" + "|---:" * (len(header) - 1) + "|")
    for name in clients:
        row = [LABELS[name]]
        for loop in loops:
            cpu = median(name, loop, "cpu_us")
            floor = median("floor", loop, "cpu_us")
            rate = median(name, loop, "calls_per_s")
            row.append("" if cpu is None else f"{cpu:.0f}")
            row.append("" if cpu is None or floor is None else f"{cpu / floor:.2f}x")
            row.append("" if rate is None else f"{rate / 1000:.1f}k")
        print("| " + " | ".join(row) + " |")
    print()
    for loop in loops:
        fast = median("pool-fast", loop, "cpu_us")
        floor = median("floor", loop, "cpu_us")
        boto3 = median("aioboto3", loop, "cpu_us")
        if fast is not None and floor is not None:
            verdict = "met" if fast / floor <= 1.25 else "NOT met"
            print(f"{loop}: pool-fast / floor = {fast / floor:.2f}x (target <= 1.25x: {verdict})")
        if fast is not None and boto3 is not None:
            verdict = "met" if boto3 / fast >= 5 else "NOT met"
            print(f"{loop}: aioboto3 / pool-fast = {boto3 / fast:.1f}x (target >= 5x: {verdict})")
        for name in OTEL:
            observed = median(name, loop, "cpu_us")
            if fast is not None and observed is not None:
                print(
                    f"{loop}: {name} costs {observed - fast:+.0f} µs CPU/call over pool-fast "
                    f"({observed / fast:.2f}x)"
                )


if __name__ == "__main__":
    main()
