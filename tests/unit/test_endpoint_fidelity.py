"""The fast transport chooses DynamoDB's endpoint as a real aiobotocore client does, or refuses
where it refuses: for every region of every partition botocore knows, FIPS, dual-stack, a given
or configured endpoint, each account-ID endpoint mode, with and without an account ID.

The cases are generated from botocore's own data (``partitions.json``, ``endpoints.json``), not
written by hand. Nothing is sent: the client's request is stopped once signed, where its URL and
signing region are read. A table given by its ARN is one more dimension: botocore routes it to
the ARN's account. ``pytest -s`` prints the agreement counts by partition and mode.
``ASYNC_COUNTERS_FULL_ENDPOINT_GRID=1`` crosses every dimension over every region (some
minutes); by default every region is crossed with FIPS and dual-stack, and the mode, account and
endpoint dimensions over one region of each partition and the regions the rules treat apart.
"""

from __future__ import annotations

import itertools
import os
import re
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiobotocore.session import AioSession, get_session
from botocore.loaders import create_loader

from async_counters.transport import fast
from async_counters.transport.fast import open_fast_transport

ACCOUNT = "123456789012"
TABLE_ACCOUNT = "111122223333"  # the account of a table given by its ARN
CUSTOM = "https://ddb.example.test"
MODES = (None, "preferred", "required", "disabled")
#: Spellings botocore folds (``Disabled``) or refuses (``sometimes``, empty).
ODD_MODES = ("Disabled", "REQUIRED", "sometimes", "")
TABLES = ("name", "arn", "arn-elsewhere")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/dynamodb/aws4_request")
_LOADER = create_loader()
_PARTITIONS: list[dict[str, Any]] = _LOADER.load_data("partitions")["partitions"]


def _partition_of(region: str) -> dict[str, Any]:
    """The partition botocore's rules put ``region`` in (``aws`` when none claims it)."""
    for partition in _PARTITIONS:
        if region in partition["regions"]:
            return partition
    for partition in _PARTITIONS:
        if re.match(partition["regionRegex"], region):
            return partition
    return next(p for p in _PARTITIONS if p["id"] == "aws")


def _regions() -> list[str]:
    """Every region botocore names for DynamoDB, a made-up one per partition (its pattern with
    another number), FIPS pseudo-regions, ``local``, and one no partition claims."""
    found: dict[str, None] = {}
    for partition in _PARTITIONS:
        found.update(dict.fromkeys(partition["regions"]))
        known = sorted(r for r in partition["regions"] if re.match(partition["regionRegex"], r))
        found[re.sub(r"\d+$", "9", known[0])] = None
        found[f"fips-{known[0]}"] = None
    for partition in _LOADER.load_data("endpoints")["partitions"]:
        found.update(dict.fromkeys(partition["services"].get("dynamodb", {}).get("endpoints", {})))
    found["zz-nowhere-1"] = None
    return list(found)


def _representatives(regions: list[str]) -> list[str]:
    """One listed region per partition, and the regions the rules name or treat apart."""
    chosen = {sorted(r for r in p["regions"] if not r.endswith("-global"))[0] for p in _PARTITIONS}
    chosen |= {"local", "us-gov-west-1", "cn-north-1", "zz-nowhere-1"}
    return [r for r in regions if r in chosen]


@dataclass(frozen=True)
class Case:
    region: str
    fips: bool
    dualstack: bool
    endpoint: str  # "none", "given", "configured", "given-dual-stack"
    mode: str | None
    account: bool
    table: str = "name"  # "name", "arn" (in the region), "arn-elsewhere" (another region's)

    @property
    def partition(self) -> str:
        return str(_partition_of(self.region)["id"])

    def table_name(self) -> str:
        if self.table == "name":
            return "counters"
        region = self.region if self.table == "arn" else "elsewhere-1"
        return f"arn:{self.partition}:dynamodb:{region}:{TABLE_ACCOUNT}:table/counters"

    def endpoint_url(self) -> str | None:
        if self.endpoint == "given":
            return CUSTOM
        if self.endpoint == "given-dual-stack":
            suffix = _partition_of(self.region)["outputs"]["dualStackDnsSuffix"]
            return f"https://dynamodb.{self.region}.{suffix}"
        return None

    def environment(self) -> dict[str, str]:
        env = {"AWS_DEFAULT_REGION": self.region}
        if self.fips:
            env["AWS_USE_FIPS_ENDPOINT"] = "true"
        if self.dualstack:
            env["AWS_USE_DUALSTACK_ENDPOINT"] = "true"
        if self.endpoint == "configured":
            env["AWS_ENDPOINT_URL_DYNAMODB"] = CUSTOM
        if self.mode is not None:
            env["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = self.mode  # "" is set, and refused
        return env


def _cases() -> Iterator[Case]:
    regions = _regions()
    flags = (False, True)
    endpoints = ("none", "given", "configured", "given-dual-stack")
    if os.environ.get("ASYNC_COUNTERS_FULL_ENDPOINT_GRID") == "1":
        for region, fips, ds, endpoint, mode, account, table in itertools.product(
            regions, flags, flags, endpoints, MODES + ODD_MODES, flags, TABLES
        ):
            yield Case(region, fips, ds, endpoint, mode, account, table)
        return
    for region, fips, ds in itertools.product(regions, flags, flags):
        yield Case(region, fips, ds, "none", None, True)
    representatives = _representatives(regions)
    for region, fips, ds, mode, account in itertools.product(
        representatives, flags, flags, MODES, flags
    ):
        if (mode, account) != (None, True):
            yield Case(region, fips, ds, "none", mode, account)
    for region, fips, ds, endpoint in itertools.product(
        representatives, flags, flags, endpoints[1:]
    ):
        yield Case(region, fips, ds, endpoint, None, True)
        if not fips and not ds:
            yield Case(region, fips, ds, endpoint, "required", True)
    for region, mode, account in itertools.product(("eu-west-1", "cn-north-1"), ODD_MODES, flags):
        yield Case(region, False, False, "none", mode, account)
    for region, fips, ds, mode in itertools.product(
        representatives, flags, flags, (None, "required")
    ):
        yield Case(region, fips, ds, "none", mode, False, "arn")
    for region in representatives:
        yield Case(region, False, False, "none", None, False, "arn-elsewhere")


class _Stop(Exception):
    """Raised in place of sending: carries the signed request's URL and Authorization."""


def _stop(request: Any, **_: Any) -> None:
    raise _Stop(request.url, request.headers["Authorization"].decode())


Choice = tuple[str, str] | tuple[str]


def _normal(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}{parts.path or '/'}"


async def _botocore_choice(session: AioSession, case: Case) -> Choice:
    try:
        async with session.create_client("dynamodb", endpoint_url=case.endpoint_url()) as client:
            client.meta.events.register("before-send.dynamodb.GetItem", _stop)
            await client.get_item(TableName=case.table_name(), Key={"pk": {"S": "a"}})
    except _Stop as stop:
        url, authorization = stop.args
        scope = _CREDENTIAL_SCOPE.search(authorization)
        assert scope is not None
        return (_normal(url), scope.group(1))
    except Exception as exc:  # refused, at creation or before sending
        return (f"refused: {type(exc).__name__}",)
    raise AssertionError("the request was neither stopped nor refused")


async def _fast_choice(session: AioSession, case: Case) -> Choice:
    try:
        transport = await open_fast_transport(
            session=session, endpoint_url=case.endpoint_url(), table=case.table_name()
        )
    except ValueError:
        return ("refused",)
    try:
        return (_normal(transport.endpoint_url), transport.region_name)
    finally:
        await transport.aclose()


def _agree(botocore: Choice, ours: Choice) -> bool:
    if len(botocore) == 1:
        return ours == ("refused",)
    return botocore == ours


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> dict[bool, AioSession]:
    """A session whose credentials carry an account ID (``AWS_ACCOUNT_ID``), and one without."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    found = {}
    loader = create_loader()
    for account in (False, True):
        if account:
            monkeypatch.setenv("AWS_ACCOUNT_ID", ACCOUNT)
        session = get_session()
        session.register_component("data_loader", loader)  # botocore's files read once
        found[account] = session
    return found


@pytest.fixture
def _shared_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """One TLS context for all the transports opened here (each would read the CA bundle)."""
    context = ssl.create_default_context()
    monkeypatch.setattr(fast, "_verifying", lambda _bundle: context)


@pytest.mark.usefixtures("_shared_tls")
async def test_the_fast_transport_chooses_the_endpoint_botocore_chooses(
    monkeypatch: pytest.MonkeyPatch, sessions: dict[bool, AioSession]
) -> None:
    for session in sessions.values():  # resolved now: each carries its account ID from here on
        await session.get_credentials()
    counts: Counter[tuple[str, str, str]] = Counter()
    disagreements = []
    variables = (
        "AWS_DEFAULT_REGION",
        "AWS_USE_FIPS_ENDPOINT",
        "AWS_USE_DUALSTACK_ENDPOINT",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE",
    )
    for case in _cases():
        for name in variables:
            monkeypatch.delenv(name, raising=False)
        for name, value in case.environment().items():
            monkeypatch.setenv(name, value)
        session = sessions[case.account]
        botocore = await _botocore_choice(session, case)
        ours = await _fast_choice(session, case)
        agreed = _agree(botocore, ours)
        kind = "refused" if len(botocore) == 1 else "same URL"
        mode = "(unset)" if case.mode is None else repr(case.mode)
        counts[(case.partition, mode, kind if agreed else "DISAGREE")] += 1
        if not agreed:
            disagreements.append((case, botocore, ours))
    _print_counts(counts)
    assert not disagreements, "\n".join(map(str, disagreements[:20]))
    assert sum(counts.values()) > 500  # the grid was generated, not empty


def _print_counts(counts: Counter[tuple[str, str, str]]) -> None:
    """A markdown table: agreeing cases / cases, by partition and mode (refusals in brackets)."""
    modes = sorted({mode for _, mode, _ in counts})
    partitions = sorted({partition for partition, _, _ in counts})

    def total(kind: str, partition: str, mode: str) -> int:
        return sum(
            n
            for (p, m, k), n in counts.items()
            if k == kind and partition in (p, "all") and mode in (m, "all")
        )

    print("\n| partition | " + " | ".join(f"mode {m}" for m in modes) + " | all |")  # noqa: T201
    print("|---|" + "---:|" * (len(modes) + 1))  # noqa: T201
    for partition in [*partitions, "all"]:
        cells = []
        for mode in [*modes, "all"]:
            same, refused = total("same URL", partition, mode), total("refused", partition, mode)
            cases = same + refused + total("DISAGREE", partition, mode)
            cells.append(f"{same + refused}/{cases} ({refused} refused)" if cases else "-")
        print(f"| {partition} | " + " | ".join(cells) + " |")  # noqa: T201


@pytest.mark.parametrize(
    ("profile", "url", "signing_region"),
    [
        (
            "region = eu-west-1\naws_account_id = 111122223333\n",
            "https://111122223333.ddb.eu-west-1.amazonaws.com/",
            "eu-west-1",
        ),
        (
            "region = eu-west-1\naws_account_id = 111122223333\n"
            "account_id_endpoint_mode = disabled\n",
            "https://dynamodb.eu-west-1.amazonaws.com/",
            "eu-west-1",
        ),
        (
            "region = eu-west-1\naccount_id_endpoint_mode = required\n",
            None,  # required, and no account ID: refused
            None,
        ),
        (
            "region = us-east-1\naws_account_id = 111122223333\n"
            "account_id_endpoint_mode = required\nuse_fips_endpoint = true\n",
            None,  # FIPS has no account endpoints
            None,
        ),
        (
            "region = us-gov-west-1\nuse_fips_endpoint = true\n",
            "https://dynamodb.us-gov-west-1.amazonaws.com/",
            "us-gov-west-1",
        ),
    ],
    ids=["preferred-by-default", "disabled", "required-without-account", "required-fips", "gov"],
)
async def test_the_config_file_settings_are_read_as_botocore_reads_them(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    profile: str,
    url: str | None,
    signing_region: str | None,
) -> None:
    config = tmp_path / "config"
    credentials = "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n"
    config.write_text("[default]\n" + profile + credentials.split("\n", 1)[1])
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    case = Case("unused", False, False, "none", None, False)
    botocore = await _botocore_choice(get_session(), case)
    ours = await _fast_choice(get_session(), case)
    expected: Choice = ("refused",) if url is None else (url, str(signing_region))
    assert ours == expected
    assert _agree(botocore, ours), (botocore, ours)
