"""No credential leaves through an error: a server on 127.0.0.1 answers every request with
DynamoDB's ``InvalidSignatureException``, quoting the session token, the access key ID and
signatures (the test's and the one the client sent), and none of them reaches an error's
``str``/``repr``, the project's logs at DEBUG, an application's logged traceback, the hooks, or
the bench's JSON and output, on either transport.

botocore's own DEBUG loggers are the exception the README warns about: the test shows that they
do print the token on the botocore transport, and that the README's advice keeps them quiet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from aiohttp import web

from async_counters import CounterPool, DynamoError, Outcome, PoolHooks

# Real-looking temporary credentials (their shapes are STS's; the values are made up).
KEY_ID = "ASIAQNZGKSLUBF3VXYZ7"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
TOKEN = (
    "IQoJb3JpZ2luX2VjEKr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD3mG8Ck4Yw7f3uG0Zb1fKq8pB+7yq"
    "Qw2y9eVb1nq5Hj0AIgbM3S9jV0bqzW2r5l1k3QnHvX4nP0E6sXqgqS5g1mO6kq9QIIo///////////8BEAAa"
    "DDEyMzQ1Njc4OTAxMiIM1K3R0n0a3oX7r+4B=="
)
SIGNATURE = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"
SCOPE = "20261202/us-east-1/dynamodb/aws4_request"
TRANSPORTS = ["fast", "botocore"]
#: The bench subprocess is small; this only stops a hung run from hanging the suite.
BENCH_TIMEOUT = 120


@dataclass
class QuotingServer:
    """Answers everything as DynamoDB answers a request whose signature it cannot match."""

    url: str = ""
    tokens: list[str] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> list[str]:
        """Everything that must not leak: the test's values and the signatures clients sent."""
        sent = [m.group(1) for a in self.authorizations if (m := re.search(r"Signature=(\w+)", a))]
        return [KEY_ID, SECRET, TOKEN, SIGNATURE, *sent]

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        token = request.headers.get("x-amz-security-token", "")
        authorization = request.headers.get("Authorization", "")
        self.tokens.append(token)
        self.authorizations.append(authorization)
        target = request.headers.get("X-Amz-Target", "")
        message = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.\n\nThe Canonical String for this request should have "
            "been\n'POST\n/\n\ncontent-type:application/x-amz-json-1.0\n"
            f"host:{request.host}\nx-amz-date:20261202T041000Z\n"
            f"x-amz-security-token:{token or TOKEN}\nx-amz-target:{target}\n\n"
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\n"
            f"{'ab' * 32}'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n"
            f"20261202T041000Z\n{SCOPE}\n{'cd' * 32}'\n\n"
            f"Authorization: AWS4-HMAC-SHA256 Credential={KEY_ID}/{SCOPE}, "
            f"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
            f"Signature={SIGNATURE} (access key {KEY_ID}); sent: {authorization}"
        )
        body = {"__type": "com.amazon.coral.service#InvalidSignatureException", "message": message}
        return web.json_response(
            body, status=400, content_type="application/x-amz-json-1.0", dumps=json.dumps
        )


@pytest.fixture
async def quoting_server() -> AsyncIterator[QuotingServer]:
    server = QuotingServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def temporary_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The credentials a process sees, as an STS-issued set is usually given: in its environment."""
    values = {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_SESSION_TOKEN": TOKEN,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


class Recorder(PoolHooks):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_request(self, operation: str, outcome: Outcome, seconds: float) -> None:
        self.calls.append((operation, outcome))

    def on_retry(
        self, operation: str, key: str | None, outcome: Outcome, attempt: int, delay: float
    ) -> None:
        self.calls.append((operation, key, outcome, attempt))

    def on_settled(self, key: str, delta: int, outcome: Outcome, seconds: float) -> None:
        self.calls.append((key, delta, outcome))


def assert_none_in(secrets: list[str], texts: list[str]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pool_errors_and_logs_hold_no_credential(
    quoting_server: QuotingServer,
    temporary_credentials: dict[str, str],
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="async_counters")
    caplog.set_level(logging.INFO, logger="botocore")  # the README's advice; its own test below
    hooks = Recorder()
    errors: list[DynamoError] = []
    app_log = logging.getLogger("tests.app")
    async with CounterPool(
        "counters",
        endpoint_url=quoting_server.url,
        session=get_session(),  # the credential chain: the environment's temporary credentials
        transport=transport,
        hooks=hooks,
    ) as pool:
        for operation in (pool.increment("k", 5), pool.get("k"), pool.get_many(["a", "b"])):
            with pytest.raises(DynamoError) as caught:
                await operation
            errors.append(caught.value)
            app_log.error("counter failed", exc_info=caught.value)  # as an application logs it
    # The client really sent the session token and the key ID: the server quotes what it got.
    assert quoting_server.tokens and set(quoting_server.tokens) == {TOKEN}
    assert all(f"Credential={KEY_ID}/" in a for a in quoting_server.authorizations)
    secrets = quoting_server.secrets
    assert len(secrets) > 4  # the signatures the client sent are among them
    shown: list[str] = []
    for error in errors:
        assert error.code == "InvalidSignatureException"
        assert "[REDACTED]" in error.message and SCOPE in error.message  # the rest stays
        shown += [str(error), repr(error), *map(repr, vars(error).values()), *map(str, error.args)]
    assert_none_in(secrets, shown)
    records = [r for r in caplog.records if r.name.startswith(("async_counters", "tests.app"))]
    assert any(r.exc_info for r in records)
    assert_none_in(secrets, [caplog.text, *(r.getMessage() for r in records)])
    assert_none_in(secrets, [repr(hooks.calls), repr(pool.stats)])


async def test_botocore_debug_logs_print_the_token_unless_quieted(
    quoting_server: QuotingServer,
    temporary_credentials: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the README says: botocore's DEBUG loggers print credentials on the botocore
    transport; ``logging.getLogger("botocore").setLevel(logging.INFO)`` keeps them quiet."""

    async def fail_once() -> None:
        async with CounterPool(
            "counters", endpoint_url=quoting_server.url, session=get_session(), transport="botocore"
        ) as pool:
            with pytest.raises(DynamoError):
                await pool.increment("k")

    caplog.set_level(logging.DEBUG)
    await fail_once()
    botocore_logs = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("botocore")
    )
    sent = quoting_server.secrets[-1]  # the signature the request carried
    for secret in (KEY_ID, TOKEN, sent):
        assert secret in botocore_logs  # botocore.endpoint and botocore.auth, at DEBUG
    caplog.clear()
    caplog.set_level(logging.INFO, logger="botocore")
    await fail_once()
    assert_none_in([KEY_ID, TOKEN, *quoting_server.secrets], [caplog.text])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bench_json_and_output_hold_no_credential(
    quoting_server: QuotingServer,
    temporary_credentials: dict[str, str],
    transport: str,
    tmp_path: Path,
) -> None:
    results = tmp_path / "bench.json"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "async_counters.cli", "bench"),
        *("--endpoint-url", quoting_server.url, "--transport", transport),
        *("-n", "10", "--keys", "2", "--quiet", "--json", str(results)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **temporary_credentials},
    )
    out, err = await asyncio.wait_for(process.communicate(), BENCH_TIMEOUT)
    output = out.decode() + err.decode()
    assert process.returncode not in (0, None), output
    assert quoting_server.authorizations, "the bench never reached the server"
    text = results.read_text()
    data = json.loads(text)
    failures = data["results"]["failures"]
    assert any("InvalidSignatureException" in f and "[REDACTED]" in f for f in failures), failures
    assert_none_in(quoting_server.secrets, [text, output])


async def test_verify_output_holds_no_credential(
    quoting_server: QuotingServer, temporary_credentials: dict[str, str]
) -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "async_counters.cli", "verify"),
        *("--run-id", "r1", "--endpoint-url", quoting_server.url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **temporary_credentials},
    )
    out, err = await asyncio.wait_for(process.communicate(), BENCH_TIMEOUT)
    output = out.decode() + err.decode()
    assert process.returncode not in (0, None), output
    assert "InvalidSignatureException" in output and "[REDACTED]" in output, output
    assert_none_in(quoting_server.secrets, [output])
