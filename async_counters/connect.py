"""How a pool (or the load test's ledger) gets its transport: fast or botocore, from a session,
a client or nothing, with the one rule for local servers.

The rule, written here once: a loopback ``endpoint_url`` with neither ``session`` nor ``client``
is a local server. It gets placeholder credentials (local servers do not check them, and nothing
real should be sent to one) and the region ``us-east-1`` unless one is given or configured, so a
newcomer needs no AWS configuration at all.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Literal

from .transport import Transport, is_loopback_url

__all__ = ["LOCAL_REGION", "TransportSettings", "is_local", "open_transport"]

#: Region used for a loopback endpoint when none is given or configured.
LOCAL_REGION = "us-east-1"
#: The placeholder credentials a local server is sent.
LOCAL_KEY = "local"


def is_local(endpoint_url: str | None, *, session: Any = None, client: Any = None) -> bool:
    """Whether the rule for local servers applies: a loopback endpoint, no session, no client."""
    return (
        session is None
        and client is None
        and endpoint_url is not None
        and is_loopback_url(endpoint_url)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportSettings:
    """Everything a transport is built from (the pool's options of the same names)."""

    kind: Literal["fast", "botocore"] = "fast"
    #: The table the pool uses: given as an ARN, it picks that account's endpoint (as botocore).
    table: str | None = None
    endpoint_url: str | None = None
    region_name: str | None = None
    session: Any = None
    client: Any = None
    max_in_flight: int = 64
    connect_timeout: float = 3.0
    read_timeout: float = 10.0


async def open_transport(
    settings: TransportSettings, stack: contextlib.AsyncExitStack
) -> Transport:
    """A transport for ``settings``; whatever it builds is closed by ``stack``, what it was
    given (a session, a client) is not."""
    local = is_local(settings.endpoint_url, session=settings.session, client=settings.client)
    if settings.kind == "fast":
        from .transport.fast import open_fast_transport

        fast = await open_fast_transport(
            session=settings.session,
            endpoint_url=settings.endpoint_url,
            region_name=settings.region_name,
            placeholder_credentials=local,
            fallback_region=LOCAL_REGION if local else None,
            max_in_flight=settings.max_in_flight,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            table=settings.table,
        )
        stack.push_async_callback(fast.aclose)
        return fast

    from botocore.exceptions import NoRegionError

    from .transport.sdk import BotocoreTransport

    client = settings.client
    if client is None:
        try:
            client = await stack.enter_async_context(_client_context(settings, local))
        except NoRegionError:
            raise ValueError(
                "no AWS region: pass region_name= or set AWS_DEFAULT_REGION (or a profile's)"
            ) from None
    return BotocoreTransport(client)


def _client_context(settings: TransportSettings, local: bool) -> Any:
    """An async context manager yielding an aiobotocore DynamoDB client."""
    from .transport.sdk import client_config

    kwargs: dict[str, Any] = {
        "region_name": settings.region_name,
        "endpoint_url": settings.endpoint_url,
        "config": client_config(
            max_in_flight=settings.max_in_flight,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        ),
    }
    session = settings.session
    if session is None:
        from .transport.sessions import default_session

        session = default_session()
        if local:
            kwargs["aws_access_key_id"] = LOCAL_KEY
            kwargs["aws_secret_access_key"] = LOCAL_KEY
            if settings.region_name is None:
                kwargs["region_name"] = session.get_config_variable("region") or LOCAL_REGION
    if hasattr(session, "create_client"):  # aiobotocore AioSession
        return session.create_client("dynamodb", **kwargs)
    return session.client("dynamodb", **kwargs)  # aioboto3 Session
