"""How the botocore transport classifies what aiobotocore raises, as a table."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.hooks import HierarchicalEmitter

from async_counters.transport import Outcome, TransportError
from async_counters.transport.sdk import BotocoreTransport

URL = "http://127.0.0.1:1"
_KEY = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)


class RaisingClient:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.meta = SimpleNamespace(events=HierarchicalEmitter())  # the transport hooks in

    async def update_item(self, **params: object) -> dict[str, object]:
        raise self.error


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "UpdateItem",
    )


CASES = [
    (_client_error("ProvisionedThroughputExceededException", 400), Outcome.THROTTLED),
    (_client_error("ConditionalCheckFailedException", 400), Outcome.CONDITION_FAILED),
    (_client_error("InternalServerError", 500), Outcome.AMBIGUOUS),
    (_client_error("ValidationException", 400), Outcome.REJECTED),
    (ConnectTimeoutError(endpoint_url=URL), Outcome.UNREACHABLE),
    (
        EndpointConnectionError(
            endpoint_url=URL, error=aiohttp.ClientConnectorError(_KEY, OSError(111, "refused"))
        ),
        Outcome.UNREACHABLE,
    ),
    # aiobotocore maps a reset mid-request to EndpointConnectionError too: that one was sent.
    (
        EndpointConnectionError(endpoint_url=URL, error=aiohttp.ClientOSError(104, "reset")),
        Outcome.AMBIGUOUS,
    ),
    (ReadTimeoutError(endpoint_url=URL), Outcome.AMBIGUOUS),
    (ConnectionClosedError(endpoint_url=URL), Outcome.AMBIGUOUS),
    (NoCredentialsError(), Outcome.REJECTED),
    (CredentialRetrievalError(provider="sso", error_msg="expired"), Outcome.REJECTED),
    (ParamValidationError(report="bad"), Outcome.REJECTED),
]


@pytest.mark.parametrize(("raised", "outcome"), CASES, ids=[type(c[0]).__name__ for c in CASES])
async def test_botocore_errors_become_outcomes(raised: Exception, outcome: Outcome) -> None:
    transport = BotocoreTransport(RaisingClient(raised))
    with pytest.raises(TransportError) as info:
        await transport.call("UpdateItem", {})
    assert info.value.outcome is outcome
