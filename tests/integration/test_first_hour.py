"""The first hour of a new user: every command they type works, or says why in one line.

Each test runs the real CLI in a subprocess, as typed, and checks the exit status and the one
line on stderr that says what is wrong and what to do (never a traceback, never a page of usage).
A core-only install is what the CLI sees with an extra's modules made unimportable
(``without_extras/sitecustomize.py``: Python's own ``ModuleNotFoundError``, as when the
distribution is not installed).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from async_counters.loadtest.worker import CLOSE_GRACE
from async_counters.local import LocalDynamo

#: Only stops a hung command from hanging the suite; no run here is meant to come near it.
TIMEOUT = 120
WITHOUT_EXTRAS = Path(__file__).with_name("without_extras")
README = Path(__file__).parents[2] / "README.md"
#: What a core-only install lacks: the modules of the local, bench and web extras.
CORE_ONLY = "moto,hdrh,rich,matplotlib,uvloop,starlette,uvicorn"
#: A loopback port nothing listens on (below 1024: no test server binds it).
DEAD_URL = "http://127.0.0.1:1"


def cli(
    *args: str, uninstalled: str = "", module: str = "async_counters.cli"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "400"}  # help text unwrapped: one entry a line
    if uninstalled:
        paths = [str(WITHOUT_EXTRAS), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
        env["ASYNC_COUNTERS_TEST_UNINSTALLED"] = uninstalled
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    """The single line on stderr (the test fails if there are more, or a traceback)."""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- installing ------------------------------------------------------------------------------


def test_readme_web_app_commands_install_the_web_extra_and_use_another_port() -> None:
    section = README.read_text().split("## In a web app", 1)[1].split("\n## ", 1)[0]
    commands = section.split("```sh", 1)[1].split("```", 1)[0]
    assert "pip install -e '.[web]'" in commands
    local_port = re.search(r"async-counters local --port (\d+)", commands)
    assert local_port is not None
    from async_counters.examples.webapp import DEFAULT_PORT

    assert str(DEFAULT_PORT) != local_port.group(1)
    assert f"localhost:{DEFAULT_PORT}/" in commands


@pytest.mark.parametrize("example", ["webapp", "ratelimited"])
def test_web_app_without_the_web_extra_names_it(example: str) -> None:
    run = cli(uninstalled="starlette,uvicorn", module=f"async_counters.examples.{example}")
    assert run.returncode == 2
    assert "pip install 'async-counters[web]'" in one_line(run)


def test_web_app_serves_on_the_port_given(endpoint_url: str, table_name: str) -> None:
    port = free_port()
    env = {**os.environ, "COUNTERS_ENDPOINT_URL": endpoint_url, "COUNTERS_TABLE": table_name}
    with subprocess.Popen(
        [sys.executable, "-m", "async_counters.examples.webapp", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as app:
        try:
            assert app.stderr is not None
            # uvicorn says so once the lifespan (the pool, the table) is up.
            while "Uvicorn running" not in (line := app.stderr.readline()):
                assert line, "the app exited before serving"
            request = urllib.request.Request(f"http://127.0.0.1:{port}/views/home", method="POST")
            for expected in (1, 2):
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert json.loads(response.read()) == {"views": expected}
        finally:
            app.terminate()
            app.wait(30)


def test_help_lists_every_subcommand_with_the_extra_it_needs() -> None:
    run = cli("--help", uninstalled=CORE_ONLY)
    assert run.returncode == 0, run.stderr
    entries = {line.split()[0]: line for line in run.stdout.splitlines() if line.startswith("    ")}
    assert set(entries) == {"bench", "verify", "local"}, run.stdout
    assert entries["bench"].endswith(
        "(needs hdrhistogram and rich, not installed: pip install 'async-counters[bench]')"
    )
    assert "pip install 'async-counters[bench]'" in entries["verify"]
    assert "pip install 'async-counters[local]'" in entries["local"]
    assert "--backend memory" in entries["local"]


@pytest.mark.parametrize(
    "command", [[], ["bench"], ["verify"], ["local"], ["local", "ledger"], ["local", "faults"]]
)
def test_every_help_prints_without_a_traceback(command: list[str]) -> None:
    run = cli(*command, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert "usage:" in run.stdout


@pytest.mark.parametrize("command", ["bench", "verify"])
def test_a_subcommand_without_its_extra_names_the_extra_not_a_module(command: str) -> None:
    run = cli(command, "--run-id", "x", uninstalled=CORE_ONLY)
    assert run.returncode == 2
    line = one_line(run)
    assert line.startswith(f"async-counters {command}: needs hdrhistogram")
    assert line.endswith("pip install 'async-counters[bench]'")
    assert "No module named" not in line


def test_local_without_moto_says_install_local_or_use_memory() -> None:
    run = cli("local", "--port", "0", uninstalled=CORE_ONLY)
    assert run.returncode == 1
    line = one_line(run)
    assert "pip install 'async-counters[local]'" in line and "--backend memory" in line


def test_bench_on_moto_without_moto_says_install_local_or_use_memory() -> None:
    run = cli("bench", "--backend", "moto", "-n", "10", uninstalled="moto")
    assert run.returncode == 3
    line = one_line(run)
    assert line.startswith("async-counters bench: the embedded server did not start: ")
    assert "pip install 'async-counters[local]'" in line and "--backend memory" in line


def test_first_readme_command_pins_boto3_to_what_aiobotocore_allows() -> None:
    """pip backtracked through some twenty boto3 releases when moto's boto3 was left open; the
    [local] extra names the boto3 range of the botocore that aiobotocore pins."""
    import tomllib
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    local = [Requirement(text) for text in project["optional-dependencies"]["local"]]
    boto3 = next(req for req in local if req.name == "boto3")
    botocore = next(
        Requirement(text)
        for text in requires("aiobotocore") or []
        if Requirement(text).name == "botocore" and not Requirement(text).marker
    )
    assert boto3.specifier == botocore.specifier, (
        f"[local] has boto3{boto3.specifier}; the installed aiobotocore needs "
        f"botocore{botocore.specifier}: move the boto3 range with it"
    )


# -- the embedded server ---------------------------------------------------------------------


def test_local_on_a_port_in_use_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = cli("local", "--backend", "memory", "--port", str(port))
    assert run.returncode == 1
    line = one_line(run)
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line


@pytest.mark.parametrize("action", [["ledger"], ["faults"], ["faults", "--throttle", "0.1"]])
def test_local_admin_on_an_unreachable_url_says_so_in_one_line(action: list[str]) -> None:
    run = cli("local", action[0], "--endpoint-url", DEAD_URL, *action[1:])
    assert run.returncode == 1
    line = one_line(run)
    assert f"cannot reach {DEAD_URL} (connection refused)" in line
    assert "async-counters local" in line


@pytest.fixture
def own_server() -> Iterator[LocalDynamo]:
    """A server of this test's own: its faults change, which the suite's server must not."""
    with LocalDynamo(backend="memory") as server:
        yield server


def test_local_faults_changes_only_the_faults_named(own_server: LocalDynamo) -> None:
    url = own_server.endpoint_url

    def faults(*flags: str) -> dict[str, Any]:
        run = cli("local", "faults", "--endpoint-url", url, *flags)
        assert run.returncode == 0, run.stderr
        shown: dict[str, Any] = json.loads(run.stdout)
        return shown

    faults("--throttle", "0.3")
    shown = faults("--error-after-apply", "0.01")
    assert shown["throttle"] == 0.3 and shown["error_after_apply"] == 0.01
    # The server's own state, not only what the command printed.
    assert own_server.faults.throttle == 0.3
    assert own_server.faults.error_after_apply == 0.01
    faults("--clear", "--drop-after-apply", "0.02")
    assert own_server.faults.throttle == 0.0 and own_server.faults.error_after_apply == 0.0
    assert own_server.faults.drop_after_apply == 0.02
    # A change that would make no valid set of faults is refused before anything is sent.
    refused = cli("local", "faults", "--endpoint-url", url, "--error-after-apply", "0.99")
    assert refused.returncode == 2 and "add up to more than 1" in one_line(refused)
    assert own_server.faults.error_after_apply == 0.0


# -- the bench -------------------------------------------------------------------------------


def test_bench_on_an_unreachable_endpoint_fails_before_any_load() -> None:
    run = cli("bench", "--endpoint-url", DEAD_URL, "--duration", "2")
    assert run.returncode == 3
    line = one_line(run)
    assert line.startswith(f"async-counters bench: cannot reach {DEAD_URL}: connection refused")
    assert "--endpoint-url" in line
    assert "[" not in run.stdout  # no progress line: no load was started


def test_verify_on_an_unreachable_endpoint_fails_before_reading() -> None:
    run = cli("verify", "--run-id", "r", "--endpoint-url", DEAD_URL)
    assert run.returncode == 3
    assert f"cannot reach {DEAD_URL}: connection refused" in one_line(run)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--concurrency", "-5"], "--concurrency must be >= 1, got -5"),
        (["--concurrency", "1", "--processes", "2"], "--concurrency 1 is less than --processes 2"),
        (["--rate", "-5"], "--rate must be a positive finite number"),
        (["--duration", "0"], "--duration must be a positive finite number"),
        (["--keys", "0"], "--keys must be >= 1, got 0"),
        (["--processes", "0"], "--processes must be >= 1"),
        (["--drain", "-1"], "--drain must be a positive finite number"),
        (["--max-in-flight", "0"], "max_in_flight must be >= 1"),
        (["--rate", "x"], "argument --rate/-r: invalid float value: 'x'"),
        (["--distribution", "pareto"], "invalid choice: 'pareto'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_bench_flags_are_one_line_with_a_pointer_to_help(flags: list[str], says: str) -> None:
    run = cli("bench", *flags)
    assert run.returncode == 2
    line = one_line(run)
    assert line.startswith("async-counters bench: error: ") and says in line
    assert run.stdout == ""


def test_an_overloaded_open_loop_says_it_missed_its_rate(tmp_path: Path) -> None:
    """A rate far beyond any machine (a million a second; one core sends some tens of
    thousands): the run still ends by its duration plus the drain, counts what it could not
    start, proves its counters, and says, in the table, the JSON and the exit status, that
    the rate was missed."""
    results = tmp_path / "overloaded.json"
    duration, drain = 2.0, 5.0
    run = cli(
        "bench", "--rate", "1000000", "--duration", str(duration), "--drain", str(drain),
        "--max-outstanding", "2000", "--keys", "10", "--json", str(results),
    )  # fmt: skip
    assert run.returncode == 4, run.stdout + run.stderr
    assert "the open loop missed its rate" in one_line(run) and "--rate" in one_line(run)
    assert "RATE MISSED: 1,000,000/s asked" in run.stdout
    assert "open loop at 1,000,000/s" in run.stdout
    data = json.loads(results.read_text())
    target = data["results"]["rate_target"]
    assert target["held"] is False and target["rate"] == 1_000_000
    assert target["due"] == 2_000_000 == target["started"] + target["dropped"]
    assert target["dropped"] > 0 and target["started_per_s"] < target["rate"]
    counts = data["results"]["counts"]
    assert counts["started"] == target["started"] == counts["operations"]
    assert data["verification"]["status"] == "exact"  # what was started was all proved
    assert data["exit_status"] == 4
    # Bounded by the worker's own deadline (plus closing the pool), by construction: the
    # slack only absorbs a loaded machine's late timers.
    assert data["results"]["seconds"] <= duration + drain + CLOSE_GRACE + 5


def test_an_open_loop_that_holds_its_rate_says_held(tmp_path: Path) -> None:
    results = tmp_path / "held.json"
    run = cli("bench", "--rate", "100", "--duration", "2", "--keys", "5", "--json", str(results))
    assert run.returncode == 0, run.stdout + run.stderr
    target = json.loads(results.read_text())["results"]["rate_target"]
    assert target == {**target, "held": True, "due": 200, "started": 200, "dropped": 0}
    assert "held: 200 started on schedule" in run.stdout
    assert run.stderr == ""


def test_the_last_progress_line_shows_the_average_not_a_partial_second(tmp_path: Path) -> None:
    results = tmp_path / "progress.json"
    run = cli("bench", "--rate", "200", "--duration", "2.5", "--keys", "5", "--json", str(results))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("[")]
    rows = json.loads(results.read_text())["timeline"]
    assert len(lines) == len(rows) and rows[-1]["partial"]
    assert not any(row["partial"] for row in rows[:-1])
    acknowledged = sum(row["acknowledged"] for row in rows)
    shown = re.search(r"rate ([\d,]+)/s avg", lines[-1])
    assert shown is not None, lines[-1]
    assert int(shown.group(1).replace(",", "")) == round(acknowledged / rows[-1]["t"])
    for line, row in zip(lines[:-1], rows[:-1], strict=True):
        assert f"rate {row['rate']:,.0f}/s " in line  # full intervals: the rate of each


def test_bench_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    run = cli("bench", "--plot", str(tmp_path / "p.png"), uninstalled="matplotlib")
    assert run.returncode == 2
    assert "pip install 'async-counters[bench]'" in one_line(run)


def test_the_timings_are_measured_not_assumed() -> None:
    """The README says how long its first command takes, measured on a 2-core machine."""
    first = README.read_text().split("## The API", 1)[0]
    assert re.search(r"2-core machine", first) and re.search(r"\d+ s", first)
