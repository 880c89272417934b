"""UpdateItem calls/s the embedded DynamoDB sustains, per backend, at a fixed number in flight.

    python benchmarks/local_server.py                       # moto, fast, dynalite upstream
    python benchmarks/local_server.py --backends memory --seconds 10 --in-flight 64

Each backend runs as `async-counters local` in a process of its own (dynalite upstream is that
front before a dynalite child process); this process is the client. The client sends prebuilt
UpdateItem bodies over keep-alive aiohttp connections (``--client aiohttp``, the cheapest client
there is, so the server is what is measured) or through aiobotocore (``--client aiobotocore``,
what the pool pays). Every run is checked: the values read back and the server's ledger must
equal the increments acknowledged. CPU per call is reported for both sides, so the table says
which side was the bottleneck. Loopback only; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

BACKENDS = {"moto": "moto", "memory": "memory", "dynalite upstream": "dynalite"}
#: For reference, not a backend: dynalite alone, without the front (so, without the ledger).
DIRECT = "dynalite direct"
HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20250101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/dynamodb/aws4_request,"
    " SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    backend: str
    calls: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float
    errors: int
    verified: bool

    def row(self) -> str:
        rate = self.calls / self.seconds
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        server_us = self.server_cpu / self.calls * 1e6
        client_us = self.client_cpu / self.calls * 1e6
        return (
            f"| {self.backend} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {server_us:,.0f} "
            f"| {client_us:,.0f} | {self.errors} | {'yes' if self.verified else 'NO'} |"
        )


class Server:
    """`async-counters local` in a process of its own; stopped by SIGTERM to its pid."""

    has_ledger = True

    def __init__(self, backend: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "async_counters.local", "--port", "0", "--backend", backend],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._await_url(backend)

    def _await_url(self, backend: str) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        self.url = line[0].strip() if line else ""
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the server for {backend} did not start")

    def cpu_seconds(self) -> float:
        """CPU time of the server and its children (dynalite's node) so far."""
        total = 0.0
        for pid in [self.process.pid, *self._children(self.process.pid)]:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            except (OSError, IndexError, ValueError):
                pass
        return total

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                return [int(child) for child in children.read().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)
        if self.process.stdout is not None:
            self.process.stdout.close()


class DirectDynalite(Server):
    """dynalite alone, started as the dynalite backend starts it (on 127.0.0.1)."""

    has_ledger = False

    def __init__(self) -> None:
        from async_counters.local import dynalite

        node, package = dynalite.find_node(), dynalite.find_dynalite()
        if node is None or package is None:
            raise RuntimeError("dynalite direct needs node and dynalite (see .ci/run)")
        self.process = subprocess.Popen(
            [node, "-e", dynalite._LAUNCHER, str(package), str(dynalite.TABLE_STATE_MS)],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
            text=True,
        )
        self._await_url(DIRECT)


def update_body(table: str, key: str) -> bytes:
    return json.dumps(
        {
            "TableName": table,
            "Key": {"pk": {"S": key}},
            "UpdateExpression": "ADD #v :n",
            "ExpressionAttributeNames": {"#v": "count"},
            "ExpressionAttributeValues": {":n": {"N": "1"}},
            "ReturnValues": "UPDATED_NEW",
        }
    ).encode()


async def call(session: aiohttp.ClientSession, url: str, operation: str, body: bytes) -> Any:
    headers = {**HEADERS, "X-Amz-Target": f"DynamoDB_20120810.{operation}"}
    async with session.post(url, data=body, headers=headers) as response:
        payload = await response.json(content_type=None)
        if response.status != 200:
            raise RuntimeError(f"{operation}: {response.status} {payload}")
        return payload


async def create_table(session: aiohttp.ClientSession, url: str, table: str) -> None:
    definition = {
        "TableName": table,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    await call(session, url, "CreateTable", json.dumps(definition).encode())
    for _ in range(500):
        described = await call(
            session, url, "DescribeTable", json.dumps({"TableName": table}).encode()
        )
        if described["Table"]["TableStatus"] == "ACTIVE":
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{table} did not become ACTIVE")


async def read_back(session: aiohttp.ClientSession, url: str, table: str, keys: list[str]) -> int:
    total = 0
    for key in keys:
        body = json.dumps({"TableName": table, "Key": {"pk": {"S": key}}, "ConsistentRead": True})
        item = (await call(session, url, "GetItem", body.encode())).get("Item")
        total += int(item["count"]["N"]) if item else 0
    return total


def ledger_total(url: str, table: str) -> int:
    with urllib.request.urlopen(f"{url}/_local/ledger?table={table}", timeout=10) as response:
        entries = json.loads(response.read())["tables"].get(table, {})
    return sum(int(entry["sum"]) for entry in entries.values())


async def drive(url: str, args: argparse.Namespace, server: Server, name: str) -> Result:
    table = f"bench-{uuid.uuid4().hex[:8]}"
    keys = [f"k{i}" for i in range(args.keys)]
    bodies = [update_body(table, key) for key in keys]
    connector = aiohttp.TCPConnector(limit=args.in_flight)
    async with aiohttp.ClientSession(connector=connector) as session:
        await create_table(session, url, table)
        sender = Sender(args.client, session, url, table)
        await sender.open()
        counting = False
        calls = errors = 0
        latencies: list[float] = []
        stop_at = time.monotonic() + args.warmup + args.seconds

        async def worker(i: int) -> None:
            nonlocal calls, errors
            n = i
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    await sender.send(keys[n % len(keys)], bodies[n % len(bodies)])
                except Exception:
                    errors += 1
                    continue
                if counting:
                    calls += 1
                    latencies.append(time.perf_counter() - started)
                n += 1

        workers = [asyncio.create_task(worker(i)) for i in range(args.in_flight)]
        await asyncio.sleep(args.warmup)
        counting = True
        client_start = resource.getrusage(resource.RUSAGE_SELF)
        server_start = server.cpu_seconds()
        started = time.perf_counter()
        await asyncio.sleep(args.seconds)
        counting = False
        elapsed = time.perf_counter() - started
        client_end = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = server.cpu_seconds() - server_start
        await asyncio.gather(*workers)
        await sender.aclose()
        client_cpu = (client_end.ru_utime - client_start.ru_utime) + (
            client_end.ru_stime - client_start.ru_stime
        )
        acknowledged = sender.acknowledged
        stored = await read_back(session, url, table, keys)
    applied = ledger_total(url, table) if server.has_ledger else stored
    verified = stored == acknowledged == applied
    return Result(name, calls, elapsed, latencies, server_cpu, client_cpu, errors, verified)


class Sender:
    """Sends one increment at a time and counts what was acknowledged."""

    def __init__(self, kind: str, session: aiohttp.ClientSession, url: str, table: str) -> None:
        self.kind = kind
        self.session = session
        self.url = url
        self.table = table
        self.headers = {**HEADERS, "X-Amz-Target": "DynamoDB_20120810.UpdateItem"}
        self.acknowledged = 0
        self._context: Any = None
        self._client: Any = None

    async def open(self) -> None:
        if self.kind == "aiobotocore":
            from aiobotocore.session import get_session
            from botocore.config import Config

            self._context = get_session().create_client(
                "dynamodb",
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id="local",
                aws_secret_access_key="local",
                config=Config(max_pool_connections=64, retries={"total_max_attempts": 1}),
            )
            self._client = await self._context.__aenter__()

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)

    async def send(self, key: str, body: bytes) -> None:
        if self._client is None:
            async with self.session.post(self.url, data=body, headers=self.headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"UpdateItem: HTTP {response.status}")
        else:
            await self._client.update_item(
                TableName=self.table,
                Key={"pk": {"S": key}},
                UpdateExpression="ADD #v :n",
                ExpressionAttributeNames={"#v": "count"},
                ExpressionAttributeValues={":n": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        self.acknowledged += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join([*BACKENDS, DIRECT]),
        help="comma-separated, from: " + ", ".join([*BACKENDS, DIRECT]) + " (default: all)",
    )
    parser.add_argument("--in-flight", type=int, default=64, help="requests in flight (64)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    parser.add_argument("--keys", type=int, default=16, help="counters written round-robin (16)")
    parser.add_argument("--client", choices=("aiohttp", "aiobotocore"), default="aiohttp")
    args = parser.parse_args()
    names = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS and name != DIRECT]
    if unknown:
        parser.error(f"unknown backends: {unknown}")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.1f} before the run: other work shares these CPUs")
    print(
        f"UpdateItem ADD, {args.in_flight} in flight, {args.keys} keys, {args.seconds:g} s "
        f"after {args.warmup:g} s warm-up, client: {args.client} in its own process; "
        f"{os.cpu_count()} CPUs\n"
    )
    print(
        "| backend | calls/s | p50 ms | p99 ms | server CPU µs/call | client CPU µs/call "
        "| errors | exact |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    ok = True
    for name in names:
        server = DirectDynalite() if name == DIRECT else Server(BACKENDS[name])
        try:
            result = asyncio.run(drive(server.url, args, server, name))
        finally:
            server.stop()
        print(result.row(), flush=True)
        ok = ok and result.verified and result.errors == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
