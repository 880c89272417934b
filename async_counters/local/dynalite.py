"""dynalite (npm ``dynalite``) as a child process on 127.0.0.1, for upstream mode and tests.

    with Dynalite() as dynalite:
        LocalDynamo(backend=dynalite.endpoint_url)

dynalite is found through ``$ASYNC_COUNTERS_DYNALITE`` (its package directory), else in a
``node_modules`` (or the project's ``.ci/node/node_modules``) in the working directory or above
it. It always listens on 127.0.0.1 (left to itself it would listen on every interface), on a
port the OS picks, and exits when its parent's pipe closes, so it never outlives its owner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from async_counters.local.process import read_line
from async_counters.local.upstream import UpstreamBackend

DYNALITE_ENV: Final = "ASYNC_COUNTERS_DYNALITE"
#: How long tables stay CREATING/DELETING: short, but not zero, so clients must wait for ACTIVE.
TABLE_STATE_MS: Final = 50
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0

# Listens on 127.0.0.1 only, prints its URL, and exits when stdin closes (its owner went away).
_LAUNCHER: Final = """
const dynalite = require(process.argv[1]);
const ms = Number(process.argv[2]);
const server = dynalite({createTableMs: ms, deleteTableMs: ms, updateTableMs: ms});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write("http://127.0.0.1:" + server.address().port + "\\n");
});
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
"""


def find_dynalite(start: Path | None = None) -> Path | None:
    """The dynalite package directory, or None if it is not installed where we look."""
    configured = os.environ.get(DYNALITE_ENV)
    if configured:
        path = Path(configured)
        return path if (path / "package.json").is_file() else None
    here = (start or Path.cwd()).resolve()
    project = Path(__file__).resolve().parents[2]
    for base in (here, *here.parents, project):
        for candidate in (
            base / "node_modules" / "dynalite",
            base / ".ci" / "node" / "node_modules" / "dynalite",
        ):
            if (candidate / "package.json").is_file():
                return candidate
    return None


def find_node() -> str | None:
    return shutil.which("node")


class Dynalite:
    """A dynalite child process. Start once, stop once (idempotent)."""

    def __init__(
        self, *, package: Path | None = None, table_state_ms: int = TABLE_STATE_MS
    ) -> None:
        self._package = package
        self._table_state_ms = table_state_ms
        self._process: subprocess.Popen[str] | None = None
        self.endpoint_url = ""

    def start(self) -> Self:
        node = find_node()
        if node is None:
            raise RuntimeError("dynalite needs node, and node is not on PATH")
        package = self._package or find_dynalite()
        if package is None:
            raise RuntimeError(
                "dynalite is not installed: `npm install --prefix .ci/node dynalite@4`, or set "
                f"${DYNALITE_ENV} to its package directory"
            )
        self._process = subprocess.Popen(
            [node, "-e", _LAUNCHER, str(package), str(self._table_state_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = read_line(self._process.stdout, START_TIMEOUT)
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"dynalite did not start (it said {line!r})")
        self.endpoint_url = line
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class DynaliteBackend(UpstreamBackend):
    """Upstream mode in front of a dynalite this backend starts and stops itself."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:0")
        self._dynalite = Dynalite()

    async def open(self) -> None:
        # Only the server's own loop waits here, before it serves anything.
        self._dynalite.start()
        self.url = self._dynalite.endpoint_url + "/"
        await super().open()

    async def aclose(self) -> None:
        await super().aclose()
        self._dynalite.stop()
