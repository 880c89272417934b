"""The example web app's ``/metrics``, scraped over HTTP from a real uvicorn on 127.0.0.1: the
pool's OpenTelemetry metrics in Prometheus' text format, with the values of what was done."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

pytest.importorskip("opentelemetry.exporter.prometheus")
pytest.importorskip("uvicorn")

import httpx
from prometheus_client.parser import text_string_to_metric_families

from async_counters import CounterPool
from async_counters.examples.webapp import create_app
from async_counters.local import LocalDynamo
from tests.integration.uvicorn_serving import serving

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalDynamo]:
    with LocalDynamo(backend="memory") as server:
        yield server


@pytest.fixture
async def app_url(server: LocalDynamo, table_name: str) -> AsyncIterator[str]:
    async with serving(create_app(table_name, endpoint_url=server.endpoint_url)) as url:
        yield url


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_a_scrape_shows_what_the_requests_did(
    app_url: str, server: LocalDynamo, table_name: str
) -> None:
    async with httpx.AsyncClient(base_url=app_url, timeout=30) as http:
        answers = await asyncio.gather(*(http.post("/views/home") for _ in range(5)))
        assert sorted(r.json()["views"] for r in answers) == [1, 2, 3, 4, 5]
        assert (await http.post("/views/about")).status_code == 200
        async with CounterPool(table_name, endpoint_url=server.endpoint_url) as stocker:
            await stocker.increment("stock:sku-1")  # not the app's pool: not in its metrics
        sales = [(await http.post("/buy/sku-1")).status_code for _ in range(2)]
        assert sales == [200, 409]
        assert (await http.get("/views/home")).json() == {"views": 5}
        scrape = await http.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    assert server.ledger(table_name)["views:/home"].sum == 5

    samples = parse(scrape.text)
    increments = "async_counters_increments_total"
    # 6 views and a sale acknowledged, a sale refused by the floor.
    assert value(samples, increments, async_counters_outcome="acknowledged") == 7
    assert value(samples, increments, async_counters_outcome="condition_failed") == 1
    duration = "db_client_operation_duration_seconds_count"
    common = {"db_system_name": "aws.dynamodb", "db_collection_name": table_name}
    updates = {
        dict(ls).get("error_type"): v
        for (n, ls), v in samples.items()
        if n == duration and dict(ls).get("db_operation_name") == "UpdateItem"
    }
    assert updates == {"": 7, "condition_failed": 1}  # a family's series share its labels
    assert value(samples, duration, db_operation_name="GetItem", **common) == 1
    # What DynamoDB charged: every write a unit, the refused one too; the read a unit.
    assert value(samples, "async_counters_write_units_total", db_operation_name="UpdateItem") == 8
    assert value(samples, "async_counters_read_units_total", db_operation_name="GetItem") == 1
    assert not any(n.startswith("async_counters_retries") for n, _ in samples)
    # No counter's key in a scrape: keys can be user ids.
    assert "views:/home" not in scrape.text and "stock:sku-1" not in scrape.text
    print()
    for line in scrape.text.splitlines():
        shown = ("async_counters_increments", "async_counters_write_units", "db_client_operation")
        if line.startswith(shown) and "_bucket" not in line:
            print(line)


async def test_without_metrics_there_is_no_scrape(server: LocalDynamo, table_name: str) -> None:
    app = create_app(table_name, endpoint_url=server.endpoint_url, metrics=False)
    assert "/metrics" not in {getattr(route, "path", None) for route in app.routes}


def test_without_the_extra_the_app_serves_without_metrics() -> None:
    # sys.modules[name] = None makes `import name` fail, as if it were not installed.
    script = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from async_counters.examples import webapp\n"
        "print(webapp.PROMETHEUS)\n"
        "try:\n"
        "    webapp.create_app('t', metrics=True)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "False",
        "/metrics needs the [prometheus] extra: pip install 'async-counters[web,prometheus]'",
    ]
