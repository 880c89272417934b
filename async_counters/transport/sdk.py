"""The botocore transport: DynamoDB calls through an aiobotocore client.

botocore's own retries must be off (the pool is the only retry layer; botocore would retry an
``ADD`` after a timeout and count it twice), and its connection pool must be as large as the pool's
in-flight bound (botocore's default of 10 would silently cap it). `client_config` builds that.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from . import Outcome, TransportError, answers, expiry, outcome_for_code, skew

__all__ = ["BotocoreTransport", "client_config"]

# Raised before anything is sent (bad parameters, no region, credentials that cannot be had or
# refreshed): the request was refused, not lost.
_REFUSED_UNSENT: tuple[type[BotoCoreError], ...] = (
    ParamValidationError,
    NoCredentialsError,
    PartialCredentialsError,
    CredentialRetrievalError,
    NoRegionError,
)

_METHODS = {
    "UpdateItem": "update_item",
    "GetItem": "get_item",
    "BatchGetItem": "batch_get_item",
    "CreateTable": "create_table",
    "DescribeTable": "describe_table",
    "DeleteTable": "delete_table",
    "TransactWriteItems": "transact_write_items",
    "DescribeTimeToLive": "describe_time_to_live",
    "UpdateTimeToLive": "update_time_to_live",
}


#: Set while this transport's own call runs: the answer check below touches no other call of a
#: client the application may share.
_OURS: contextvars.ContextVar[bool] = contextvars.ContextVar("async_counters_call", default=False)
_CHECK_ID = "async-counters-answer-check"


def _check_answer(response_dict: Mapping[str, Any], **_: Any) -> None:
    """``before-parse``: refuse, as the fast transport does, what botocore would take as read.

    With its retries off botocore accepts an answer whose ``x-amz-crc32`` does not match (with
    them on, it re-sends the write, which was applied), reads a 200 with an HTML body as an
    empty success, and fails with an ``AttributeError`` on an error body that is a JSON list.
    Raised here, before parsing, the error leaves the client without any retry.
    """
    if not _OURS.get():
        return
    status = response_dict["status_code"]
    raw = response_dict["body"]
    if not isinstance(raw, bytes):
        return  # a streamed body: no DynamoDB operation answers with one
    crc = response_dict["headers"].get("x-amz-crc32")
    if crc is not None and not answers.crc32_matches(crc, raw):
        raise answers.crc32_mismatch(status, crc)
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        body = None
    if status == 200 and not isinstance(body, dict):
        raise answers.invalid_success()
    if status >= 300 and body is not None and not isinstance(body, dict):
        raise answers.service_error(status, raw)


def client_config(*, max_in_flight: int, connect_timeout: float, read_timeout: float) -> Any:
    """An `AioConfig` with botocore's retries off and a connection pool of ``max_in_flight``."""
    return AioConfig(
        max_pool_connections=max_in_flight,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


class BotocoreTransport:
    """A `Transport` over an aiobotocore DynamoDB client (which the transport does not close).

    A request refused because the token expired is sent once more after the client's
    credentials are renewed (`expiry`); an ``InvalidSignatureException`` caused by the clock
    says so, with the skew (`skew`).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._generation = 0  # renewals after an expired token
        self._renewing = asyncio.Lock()
        client.meta.events.register("before-parse.dynamodb", _check_answer, unique_id=_CHECK_ID)

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
        # The client signs with its request signer's credentials object, asked per request.
        credentials = getattr(getattr(self._client, "_request_signer", None), "_credentials", None)
        if not expiry.can_renew(credentials):
            raise expiry.cannot_renew(error) from None
        async with self._renewing:
            if self._generation == generation:  # not yet renewed by a call refused alike
                await expiry.renew(credentials)
                self._generation += 1

    async def _send(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        method = getattr(self._client, _METHODS[operation])
        token = _OURS.set(True)
        try:
            response: dict[str, Any] = await method(**params)
        except TransportError:  # raised by `_check_answer`
            raise
        except ClientError as exc:
            raise _from_client_error(exc) from None
        except _REFUSED_UNSENT as exc:
            raise TransportError(Outcome.REJECTED, type(exc).__name__, str(exc)) from None
        except BotoCoreError as exc:
            raise _from_connection_error(exc) from None
        finally:
            _OURS.reset(token)
        response.pop("ResponseMetadata", None)
        return response

    async def aclose(self) -> None:
        """The client belongs to whoever created it; nothing to release here."""


def _from_client_error(exc: ClientError) -> TransportError:
    response = exc.response
    error = response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    metadata = response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode")
    found = TransportError(
        outcome_for_code(code, status),
        code,
        str(error.get("Message", "")),
        status=status,
        item=response.get("Item"),
        reasons=answers.throttling_reasons(response.get("ThrottlingReasons")),
    )
    if code == "InvalidSignatureException":
        found = skew.explain(found, metadata.get("HTTPHeaders", {}).get("date"), time.time())
    return found


def _from_connection_error(exc: BotoCoreError) -> TransportError:
    """Tell "nothing was sent" (safe to retry) from "sent, answer lost" (ambiguous).

    aiobotocore maps every aiohttp ``ClientConnectionError`` to ``EndpointConnectionError``,
    including a connection reset while the request was in flight; only a failure to *establish*
    the connection (``ClientConnectorError``, a DNS failure) or a connect timeout proves the request
    never left.
    """
    code = type(exc).__name__
    if isinstance(exc, ConnectTimeoutError):
        return TransportError(Outcome.UNREACHABLE, code, str(exc))
    if isinstance(exc, EndpointConnectionError):
        cause = exc.kwargs.get("error")
        if isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror):
            return TransportError(Outcome.UNREACHABLE, code, str(exc))
    return TransportError(Outcome.AMBIGUOUS, code, str(exc))
