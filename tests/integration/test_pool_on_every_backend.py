"""The pool's integration suite (test_pool.py) again, on the memory backend and on dynalite.

test_pool.py runs on the default backend, moto. Here the same tests are collected a second time
with `local_server` overridden, so the pool is shown right on each emulator, dynalite included
(which ignores ReturnValuesOnConditionCheckFailure). A machine without node skips dynalite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from async_counters.local import LocalDynamo
from tests.integration.local_fixtures import dynalite_package, dynalite_url
from tests.integration.test_pool import *  # noqa: F403  (the same tests, collected again here)

__all__ = ["dynalite_package", "dynalite_url"]  # fixtures, imported for pytest


@pytest.fixture
def transport_name() -> str:
    # test_pool.py shows the transports interchangeable; here the server is what varies, so
    # the cheaper client keeps this second pass short.
    return "fast"


@pytest.fixture(scope="module", params=["memory", "dynalite"])
def local_server(request: pytest.FixtureRequest) -> Iterator[LocalDynamo]:
    if request.param == "dynalite":
        request.getfixturevalue("dynalite_package")  # skips when node is missing
    with LocalDynamo(backend=request.param) as server:
        yield server
