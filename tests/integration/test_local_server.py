"""The embedded DynamoDB over real HTTP: atomic, keep-alive, private stores, loopback only."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from async_counters.local import LocalDynamo

_names = itertools.count()


def table_name(prefix: str = "t") -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture
async def server() -> AsyncIterator[LocalDynamo]:
    async with LocalDynamo() as server:
        yield server


def make_client(endpoint_url: str, *, pool: int = 64, access_key: str = "local") -> Any:
    return get_session().create_client(
        "dynamodb",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key="local",
        config=Config(max_pool_connections=pool, retries={"total_max_attempts": 1}),
    )


@pytest.fixture
async def client(server: LocalDynamo) -> AsyncIterator[Any]:
    async with make_client(server.endpoint_url) as client:
        yield client


async def create_table(client: Any, name: str) -> None:
    await client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


async def add(client: Any, table: str, key: str, amount: int, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = await client.update_item(
        TableName=table,
        Key={"pk": {"S": key}},
        UpdateExpression="ADD #v :n",
        ExpressionAttributeNames={"#v": "count"},
        ExpressionAttributeValues={":n": {"N": str(amount)}, **extra.pop("values", {})},
        ReturnValues="UPDATED_NEW",
        **extra,
    )
    return response


async def read(client: Any, table: str, key: str) -> int | None:
    response = await client.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
    item = response.get("Item")
    return None if item is None else int(item["count"]["N"])


async def test_concurrent_adds_are_exact(server: LocalDynamo, client: Any) -> None:
    table = table_name()
    await create_table(client, table)
    tasks, rounds = 256, 2
    seen: list[int] = []

    async def worker(i: int) -> None:
        for r in range(rounds):
            response = await add(client, table, "hot", 1 + (i + r) % 7)
            seen.append(int(response["Attributes"]["count"]["N"]))

    await asyncio.gather(*(worker(i) for i in range(tasks)))
    expected = sum(1 + (i + r) % 7 for i in range(tasks) for r in range(rounds))
    assert await read(client, table, "hot") == expected
    # Applied one at a time: every returned value is distinct, the largest is the total.
    assert len(set(seen)) == tasks * rounds
    assert max(seen) == expected


async def test_conditional_decrements_never_oversell(client: Any) -> None:
    table = table_name()
    await create_table(client, table)
    await add(client, table, "stock", 50)
    sold, refused = 0, 0

    async def buy() -> None:
        nonlocal sold, refused
        try:
            await add(
                client,
                table,
                "stock",
                -1,
                ConditionExpression="#v >= :one",
                values={":one": {"N": "1"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
            assert exc.response["Item"]["count"] == {"N": "0"}
            refused += 1
        else:
            sold += 1

    await asyncio.gather(*(buy() for _ in range(200)))
    assert (sold, refused) == (50, 150)
    assert await read(client, table, "stock") == 0


async def test_keep_alive_reuses_connections(server: LocalDynamo) -> None:
    table = table_name()
    async with make_client(server.endpoint_url, pool=4) as client:
        await create_table(client, table)
        before = server.stats()["connections"]
        for _ in range(50):
            await add(client, table, "k", 1)
        await asyncio.gather(*(add(client, table, "k", 1) for _ in range(200)))
        assert await read(client, table, "k") == 250
        assert server.stats()["connections"] - before <= 4


async def test_keep_alive_on_one_socket(server: LocalDynamo) -> None:
    """Two requests on one TCP connection both get answers, and none says `Connection: close`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        request = (
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Amz-Target: DynamoDB_20120810.ListTables\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"
        )
        for _ in range(2):
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
            assert head.startswith("http/1.1 200")
            assert "connection: close" not in head
            length = next(
                int(line.split(":")[1])
                for line in head.split("\r\n")
                if line.startswith("content-length")
            )
            assert json.loads(await reader.readexactly(length)) == {"TableNames": []}
    finally:
        writer.close()
        await writer.wait_closed()


async def test_servers_have_separate_stores() -> None:
    name = table_name()
    async with (
        LocalDynamo() as one,
        LocalDynamo() as two,
        make_client(one.endpoint_url) as a,
        make_client(two.endpoint_url) as b,
    ):
        await create_table(a, name)
        await add(a, name, "k", 5)
        assert (await b.list_tables())["TableNames"] == []
        with pytest.raises(ClientError) as raised:
            await read(b, name, "k")
        assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
        await create_table(b, name)
        await add(b, name, "k", 7)
        assert await read(a, name, "k") == 5
        assert await read(b, name, "k") == 7


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the kernel's listening TCP sockets on a port (0100007F is 127.0.0.1)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return [row[1] for row in rows if row[3] == "0A" and row[1].endswith(f":{port:04X}")]


def test_binds_loopback_only() -> None:
    with LocalDynamo() as server:
        assert server.endpoint_url == f"http://127.0.0.1:{server.port}"
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(server.port) == [f"0100007F:{server.port:04X}"]
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""):
        with pytest.raises(ValueError, match="loopback"):
            LocalDynamo(host=host)


async def test_crc32_matches_every_body(server: LocalDynamo) -> None:
    table = table_name()
    calls = [
        (
            "CreateTable",
            {
                "TableName": table,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        ),
        (
            "UpdateItem",
            {
                "TableName": table,
                "Key": {"pk": {"S": "k"}},
                "UpdateExpression": "ADD #v :n",
                "ExpressionAttributeNames": {"#v": "count"},
                "ExpressionAttributeValues": {":n": {"N": "3"}},
                "ReturnValues": "UPDATED_NEW",
            },
        ),
        ("GetItem", {"TableName": "missing", "Key": {"pk": {"S": "k"}}}),
        ("NoSuchOperation", {}),
    ]
    statuses = []
    async with aiohttp.ClientSession() as session:
        for operation, payload in calls:
            async with session.post(
                server.endpoint_url,
                data=json.dumps(payload),
                headers={
                    "X-Amz-Target": f"DynamoDB_20120810.{operation}",
                    "Content-Type": "application/x-amz-json-1.0",
                },
            ) as response:
                body = await response.read()
                statuses.append(response.status)
                assert response.headers["x-amz-crc32"] == str(zlib.crc32(body))
                assert response.headers["Content-Type"] == "application/x-amz-json-1.0"
                assert response.headers["x-amzn-RequestId"]
    assert statuses == [200, 200, 400, 400]


async def test_any_credentials_are_accepted(server: LocalDynamo) -> None:
    table = table_name()
    async with make_client(server.endpoint_url, access_key="AKIAANYTHING") as one:
        await create_table(one, table)
    async with make_client(server.endpoint_url, access_key="someone-else") as other:
        await add(other, table, "k", 2)
        assert await read(other, table, "k") == 2


async def test_async_start_does_not_block_the_callers_loop() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    async with LocalDynamo():
        during_start = ticks - start
    stop.set()
    await task
    assert during_start > 1


def test_sync_use_and_lifecycle() -> None:
    import urllib.request

    server = LocalDynamo()
    with pytest.raises(RuntimeError):
        _ = server.endpoint_url
    with server:
        assert server.running
        request = urllib.request.Request(
            server.endpoint_url,
            data=b"{}",
            headers={"X-Amz-Target": "DynamoDB_20120810.ListTables"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"TableNames": []}
    assert not server.running
    server.stop()  # idempotent
    with pytest.raises(RuntimeError, match="cannot be started"):
        server.start()


def test_a_busy_port_fails_cleanly() -> None:
    with LocalDynamo() as first, pytest.raises(OSError):
        LocalDynamo(port=first.port).start()


def test_cli_prints_the_endpoint_then_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "async_counters.local", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=20)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_cli_refuses_a_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "async_counters.local", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr
