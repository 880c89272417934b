"""The pure parts of the clock-skew explanation and of renewing expired credentials."""

from __future__ import annotations

import datetime
import email.utils

import pytest
from aiobotocore.credentials import AioCredentials, AioRefreshableCredentials
from botocore.credentials import Credentials as BotocoreCredentials
from botocore.credentials import RefreshableCredentials

from async_counters.transport import Outcome, TransportError, expiry, skew

NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC).timestamp()


def _refused(message: str, code: str = "InvalidSignatureException") -> TransportError:
    return TransportError(Outcome.REJECTED, code, message, status=400)


def _date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


@pytest.mark.parametrize(
    ("message", "offset", "said"),
    [
        (
            "Signature expired: 20260301T120000Z is now earlier than ...",
            20 * 60,
            "20 min 0 s behind",
        ),
        ("Signature not yet current: ...", -3725, "1 h 2 min 5 s ahead of"),
        ("The request signature we calculated does not match", 16 * 60, "16 min 0 s behind"),
        ("Signature expired: ...", 3, "3 s behind"),  # the server says so: the time is to blame
    ],
)
def test_a_skew_is_said_with_its_size_and_side(message: str, offset: float, said: str) -> None:
    explained = skew.explain(_refused(message), _date(offset), NOW)
    assert explained.message.startswith(message)
    assert f"this machine's clock is {said} the server's" in explained.message
    assert (explained.outcome, explained.code, explained.status) == (
        Outcome.REJECTED,
        "InvalidSignatureException",
        400,
    )


@pytest.mark.parametrize(
    ("error", "date"),
    [
        (_refused("The request signature we calculated does not match"), _date(60)),
        (_refused("Signature expired: ..."), None),
        (_refused("Signature expired: ..."), "not a date"),
        (_refused("Signature expired: ...", code="ValidationException"), _date(3600)),
    ],
    ids=["clocks-agree", "no-date", "bad-date", "other-code"],
)
def test_nothing_is_blamed_on_the_clock_without_cause(
    error: TransportError, date: str | None
) -> None:
    assert skew.explain(error, date, NOW) is error


async def test_botocore_refreshable_credentials_are_renewed_in_a_thread() -> None:
    issued: list[str] = []

    def refresh() -> dict[str, str]:
        issued.append(f"ASIA{len(issued)}")
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        return {
            "access_key": issued[-1],
            "secret_key": "s",
            "token": "t",
            "expiry_time": later.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    assert expiry.can_renew(credentials)
    await expiry.renew(credentials)
    assert credentials.get_frozen_credentials().access_key == "ASIA1"


async def test_a_failed_renewal_is_a_refusal_that_quotes_nothing() -> None:
    async def refresh() -> dict[str, str]:
        raise RuntimeError("aws_secret_access_key = hunter2")

    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    metadata = {
        "access_key": "A",
        "secret_key": "s",
        "token": "t",
        "expiry_time": later.isoformat(),
    }
    credentials = AioRefreshableCredentials.create_from_metadata(metadata, refresh, "test")
    with pytest.raises(TransportError) as info:
        await expiry.renew(credentials)
    assert (info.value.outcome, info.value.code) == (Outcome.REJECTED, "CredentialRetrievalError")
    assert "hunter2" not in str(info.value)


def test_fixed_credentials_cannot_be_renewed() -> None:
    for fixed in (BotocoreCredentials("A", "s", "t"), AioCredentials("A", "s", "t"), None):
        assert not expiry.can_renew(fixed)
