"""Bench flags -> RunConfig: defaults, pass-through of pool and server options, bad usage."""

from __future__ import annotations

import argparse
import json

import pytest

from async_counters.cli import main
from async_counters.loadtest import cli
from async_counters.loadtest.config import RunConfig, pool_kwargs
from async_counters.loadtest.embedded import UnsupportedServerOption, local_arguments


def parse(*argv: str) -> RunConfig:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.config_from_args(parser.parse_args(list(argv)))


def test_defaults_make_a_short_verified_run_on_the_embedded_server() -> None:
    config = parse()
    assert config.target.kind == "embedded"
    assert config.server.backend == "memory"
    assert config.workload.increments is None and config.workload.duration == 10.0
    assert config.workload.key_prefix.startswith("bench:")
    assert config.loop == "uvloop"
    assert config.pool_options == {"max_in_flight": 64}
    assert parse().workload.key_prefix != config.workload.key_prefix  # fresh counters each run


def test_round_trip_through_json() -> None:
    config = parse(
        "--endpoint-url",
        "http://127.0.0.1:8000",
        "--table",
        "bench-t",
        "--rate",
        "500",
        "--duration",
        "3",
        "--keys",
        "7",
        "--distribution",
        "hot",
        "--amount",
        "2:9",
        "--decrements",
        "10%",
        "--processes",
        "2",
        "--loop",
        "asyncio",
        "--retry-deadline",
        "5",
        "--pool-option",
        "adaptive=false",
        "--run-id",
        "r-1",
    )
    data = json.loads(json.dumps(config.to_dict()))
    assert RunConfig.from_dict({"config": data}) == config
    assert config.workload.key_prefix == "bench:r-1:"
    assert config.workload.operations(config.workload.rate) == 1500
    assert config.pool_options == {"retry": {"deadline": 5.0}, "adaptive": False}
    kwargs = pool_kwargs(config.pool_options)
    assert kwargs["retry"].deadline == 5.0 and kwargs["adaptive"] is False


def test_pool_flags_pass_through_to_the_pool() -> None:
    config = parse("--transport", "fast", "--no-adaptive", "--max-in-flight", "9", "--coalesce")
    assert config.pool_options == {
        "max_in_flight": 9,
        "transport": "fast",
        "adaptive": False,
        "coalesce": True,
    }
    pool_kwargs(config.pool_options)  # every one is a CounterPool option


def test_closed_loop_sizes_each_process_pool_to_its_callers() -> None:
    assert parse("-c", "100", "-p", "3").pool_options == {"max_in_flight": 34}
    assert parse("-c", "100", "--max-in-flight", "8").pool_options == {"max_in_flight": 8}


def test_server_options_are_those_of_async_counters_local() -> None:
    config = parse(
        "--backend",
        "moto",
        "--capacity",
        "--latency-ms",
        "5",
        "--jitter-ms",
        "2",
        "--error-after-apply",
        "0.01",
        "--server-seed",
        "7",
    )
    assert config.server.backend == "moto"
    assert config.server.flags == {
        "capacity": True,
        "latency_ms": 5.0,
        "jitter_ms": 2.0,
        "error_after_apply": 0.01,
        "seed": 7,
    }
    assert local_arguments(config.server) == [
        "--backend",
        "moto",
        "--capacity",
        "--latency-ms",
        "5.0",
        "--jitter-ms",
        "2.0",
        "--error-after-apply",
        "0.01",
        "--seed",
        "7",
    ]
    assert config.workload.seed == 0  # the bench's own --seed is the workload's


def test_every_option_of_the_local_server_is_offered() -> None:
    from async_counters.loadtest.embedded import local_options

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    offered = {action.dest for action in parser._actions}
    for action in local_options():
        assert "server__" + action.dest in offered


def test_server_values_are_checked_by_the_server_itself() -> None:
    with pytest.raises(ValueError, match="jitter"):
        local_arguments(parse("--latency-ms", "1", "--jitter-ms", "5").server)


def test_unknown_server_option_is_refused_not_dropped() -> None:
    from async_counters.loadtest.config import ServerOptions

    with pytest.raises(UnsupportedServerOption, match="frobnicate"):
        local_arguments(ServerOptions(flags={"frobnicate": 1}))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "0"], "--processes must be >= 1"),
        (["--increments", "-5"], "--increments must be >= 1"),
        (["--keys", "0"], "--keys must be >= 1"),
        (["--rate", "10", "--concurrency", "5"], "--rate makes it an open loop"),
        (["--concurrency", "1", "--processes", "2"], "less than --processes"),
        (["--endpoint-url", "http://127.0.0.1:1", "--latency-ms", "5"], "embedded server"),
        (["--endpoint-url", "ftp://x"], "http(s)://host"),
        (["--endpoint-url", "http://user:secret@127.0.0.1:1"], "must not carry credentials"),
        (["--run-id", "bad id"], "--run-id must be"),
        (["--run-id", "r", "--key-prefix", "p:"], "cannot be combined"),
        (["--amount", "5:2"], "LO <= HI"),
        (["--pool-option", "frobnicate=1"], "unknown pool option"),
        (["--table", "x"], "--table must be"),
        (["--latency-ms", "2", "--jitter-ms", "3"], "jitter"),
        (["--error-after-apply", "0.7", "--drop-after-apply", "0.7"], "embedded server"),
    ],
)
def test_bad_usage_exits_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "secret" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--distribution", "pareto"],
        ["bench", "--amount", "x"],
        ["bench", "--decrements", "2"],
        ["bench", "--increments", "many"],
        ["bench", "--aws", "--endpoint-url", "http://127.0.0.1:1"],
        ["verify"],
    ],
)
def test_argparse_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_verify_needs_a_lasting_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--run-id", "r"]) == 2
    assert "--endpoint-url" in capsys.readouterr().err


def test_config_replay_refuses_workload_flags(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "r.json"
    path.write_text(json.dumps({"config": parse("-n", "5").to_dict()}))
    assert main(["bench", "--config", str(path), "-n", "7"]) == 2
    assert "drop --increments" in capsys.readouterr().err
