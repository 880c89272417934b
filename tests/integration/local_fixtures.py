"""Fixtures for tests of the embedded DynamoDB; test modules import the ones they use.

dynalite comes from npm: `.ci/run` installs it into `.ci/node`; on a machine where node is
present but dynalite is not, the fixture installs it the same way. Only a machine without node
skips the dynalite tests.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from async_counters.local.dynalite import Dynalite, find_dynalite, find_node

ROOT = Path(__file__).resolve().parents[2]
NPM_INSTALL_TIMEOUT = 300
PREFIX = ("--prefix", str(ROOT / ".ci" / "node"))


@pytest.fixture(scope="session")
def dynalite_package() -> Path:
    if find_node() is None:
        pytest.skip("node is not installed: the dynalite tests need node and npm")
    package = find_dynalite(ROOT)
    if package is None:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install dynalite")
        subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", *PREFIX, "dynalite@4"],
            check=True,
            timeout=NPM_INSTALL_TIMEOUT,
            capture_output=True,
        )
        package = find_dynalite(ROOT)
        assert package is not None, "npm installed dynalite, but it is not where expected"
    return package


@pytest.fixture(scope="session")
def dynalite_url(dynalite_package: Path) -> Iterator[str]:
    """A dynalite of its own, on 127.0.0.1 at a port the OS picked."""
    with Dynalite(package=dynalite_package) as dynalite:
        yield dynalite.endpoint_url
