"""`async-counters bench` reports what the run cost, from the pool's own ConsumedCapacity."""

from __future__ import annotations

import json
from pathlib import Path

from .test_bench_cli import bench


def test_plain_increments_cost_one_write_unit_each_and_the_json_prices_them(
    tmp_path: Path,
) -> None:
    results = tmp_path / "cost.json"
    run = bench(
        "-n", "200", "--keys", "5", "--concurrency", "1", "--provisioned-wcu", "10",
        "--price-per-million-writes", "1.25", "--json", str(results),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "per million increments" in run.stdout
    cost = json.loads(results.read_text())["results"]["cost"]
    assert cost["write_units"] == 200.0
    assert cost["write_units_per_increment"] == 1.0
    assert cost["price_per_million_writes"] == 1.25
    assert cost["price_per_million_reads"] == 0.125
    assert cost["run_usd"] == 200 * 1.25 / 1e6 + cost["read_units"] * 0.125 / 1e6
    assert cost["per_million_increments_usd"] >= 1.25
    assert cost["provisioned_wcu"] == 10 and cost["provisioned_usd"] > 0


def test_a_negative_price_exits_2() -> None:
    run = bench("--price-per-million-writes", "-1")
    assert run.returncode == 2
    assert "must be >= 0" in run.stderr


def test_the_bench_s_own_reads_are_charged_apart_from_the_workload(tmp_path: Path) -> None:
    results = tmp_path / "cost.json"
    run = bench("-n", "100", "--keys", "5", "--concurrency", "2", "--json", str(results))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "bench's own" in run.stdout
    cost = json.loads(results.read_text())["results"]["cost"]
    assert cost["write_units"] == 100.0  # the workload's alone
    # The 5 counters read before and after the run (two BatchGetItems of small items).
    assert cost["bench_write_units"] == 0.0
    assert cost["bench_read_units"] > 0
    assert cost["bench_usd"] == cost["bench_read_units"] * 0.125 / 1e6


def test_the_run_ledger_s_writes_and_reads_are_the_bench_s_own(
    endpoint_url: str, table_name: str, tmp_path: Path
) -> None:
    results = tmp_path / "cost.json"
    run = bench(
        "--endpoint-url", endpoint_url, "--table", table_name, "--run-id", "c1",
        "-n", "100", "--keys", "5", "--concurrency", "2", "--json", str(results),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    cost = json.loads(results.read_text())["results"]["cost"]
    assert cost["write_units"] == 100.0
    # At least the worker's registration and its final record (one small item each), and the
    # reads of the run's item, the record and the 5 counters to verify.
    assert cost["bench_write_units"] >= 2.0
    assert cost["bench_read_units"] >= 3.0
