"""Credentials DynamoDB says have expired, renewed at once, and the request sent once more.

botocore's refreshable credentials (SSO, assumed roles, container and instance roles) refresh
themselves shortly before the expiry time they were given. When the service refuses the token
anyway (``ExpiredToken``, ``ExpiredTokenException``: the local clock is behind, or the session was
revoked), sending the same token again fails on every attempt. The refusal came before the
request ran, so renewing the credentials and sending it once more is safe; a second refusal is
an error that says what to do.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from . import Outcome, TransportError

__all__ = [
    "EXPIRED_TOKEN_CODES",
    "can_renew",
    "cannot_renew",
    "expired_again",
    "is_expired_token",
    "renew",
]

#: The codes with which AWS refuses an expired security token.
EXPIRED_TOKEN_CODES = frozenset(("ExpiredToken", "ExpiredTokenException"))


def is_expired_token(error: TransportError) -> bool:
    return error.outcome is Outcome.REJECTED and error.code in EXPIRED_TOKEN_CODES


def can_renew(credentials: Any) -> bool:
    """Whether ``credentials`` can be renewed (botocore's and aiobotocore's refreshable ones)."""
    return callable(getattr(credentials, "_protected_refresh", None))


async def renew(credentials: Any) -> None:
    """Refresh ``credentials`` now, whatever their expiry time says.

    botocore offers no public way to force a refresh; its refreshable credentials do it in
    ``_protected_refresh(is_mandatory=True)`` under their refresh lock, which is what their own
    refresh does once the expiry is near. A failure is a refused request: nothing was sent.
    """
    refresh = credentials._protected_refresh
    lock = getattr(credentials, "_refresh_lock", None)
    try:
        if inspect.iscoroutinefunction(refresh):  # aiobotocore: an asyncio lock
            if lock is not None:
                async with lock:
                    await refresh(is_mandatory=True)
            else:
                await refresh(is_mandatory=True)
        else:  # botocore: a threading lock, and a refresh that may block on the network

            def refresh_locked() -> None:
                if lock is not None:
                    with lock:
                        refresh(is_mandatory=True)
                else:
                    refresh(is_mandatory=True)

            await asyncio.to_thread(refresh_locked)
    except Exception as exc:
        # The exception's text is not passed on: it may quote a credentials file.
        raise TransportError(
            Outcome.REJECTED,
            "CredentialRetrievalError",
            f"the service said the security token has expired, and the credentials could not "
            f"be refreshed ({type(exc).__name__})",
        ) from None


def cannot_renew(error: TransportError) -> TransportError:
    """The error for an expired token on credentials that cannot be refreshed."""
    return TransportError(
        Outcome.REJECTED,
        error.code,
        f"{error.message} (the security token has expired, and these credentials are fixed, "
        "not refreshable, e.g. AWS_SESSION_TOKEN in the environment or a profile: get new ones)",
        status=error.status,
    )


def expired_again(error: TransportError) -> TransportError:
    """The error for a token refused as expired again, just after the credentials were renewed."""
    return TransportError(
        Outcome.REJECTED,
        error.code,
        f"{error.message} (refused again just after the credentials were refreshed: their "
        "source hands out expired credentials, or this machine's clock is far off)",
        status=error.status,
    )
