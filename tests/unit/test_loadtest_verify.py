"""The bench's verdict: exact, bounded by ambiguity, or a mismatch, as plain tables of cases."""

from __future__ import annotations

import pytest

from async_counters.loadtest.metrics import KeyTally
from async_counters.loadtest.verify import KeyCheck, verify


def tally(acknowledged: int, down: int = 0, up: int = 0) -> KeyTally:
    return KeyTally(acknowledged=acknowledged, ambiguous_down=down, ambiguous_up=up)


@pytest.mark.parametrize(
    ("before", "acknowledged", "down", "up", "after", "status"),
    [
        (0, 10, 0, 0, 10, "exact"),
        (5, 10, 0, 0, 15, "exact"),
        (5, 10, 0, 0, 16, "mismatch"),  # a write counted twice, or another writer
        (5, 10, 0, 0, 14, "mismatch"),  # a write lost
        (0, 10, 0, 3, 10, "bounded"),  # none of the ambiguous +3 applied
        (0, 10, 0, 3, 13, "bounded"),  # all of it applied
        (0, 10, 0, 3, 14, "mismatch"),
        (0, 10, -2, 0, 8, "bounded"),  # an ambiguous decrement applied
        (0, 10, -2, 0, 7, "mismatch"),
        (0, -4, 0, 0, -4, "exact"),
    ],
)
def test_key_status(
    before: int, acknowledged: int, down: int, up: int, after: int, status: str
) -> None:
    check = KeyCheck("k", before, acknowledged, up, down, after)
    assert check.status == status


def test_exit_statuses() -> None:
    exact = verify(["a", "b"], {"a": 1}, {"a": tally(2)}, {"a": 3, "b": 0})
    assert (exact.status, exact.exit_status) == ("exact", 0)

    bounded = verify(["a"], {}, {"a": tally(2, up=1)}, {"a": 3})
    assert (bounded.status, bounded.exit_status) == ("bounded", 3)

    mismatch = verify(["a", "b"], {}, {"a": tally(2, up=1)}, {"a": 3, "b": 7})
    assert (mismatch.status, mismatch.exit_status) == ("mismatch", 1)
    assert [check.key for check in mismatch.mismatches] == ["b"]
    assert "b: expected 0, actual 7" in mismatch.mismatches[0].describe()

    incomplete = verify(["a"], {}, {"a": tally(2)}, {"a": 2}, incomplete=["worker w running"])
    assert (incomplete.status, incomplete.exit_status) == ("incomplete", 3)
    # A worker still writing makes counters run ahead of its records: no verdict yet.
    ahead = verify(["a"], {}, {"a": tally(2)}, {"a": 9}, incomplete=["worker w running"])
    assert (ahead.status, ahead.exit_status) == ("incomplete", 3)
    assert "1 of 1 keys are not (yet) what the records say" in ahead.headline()


def test_keys_outside_the_list_are_checked_too() -> None:
    verification = verify(["a"], {}, {"stray": tally(4)}, {"a": 0, "stray": 4})
    assert [check.key for check in verification.checks] == ["a", "stray"]
    assert verification.status == "exact"


def test_untouched_key_changed_behind_the_run_is_a_mismatch() -> None:
    verification = verify(["a", "b"], {"a": 0, "b": 0}, {"a": tally(3)}, {"a": 3, "b": 1})
    assert verification.status == "mismatch"
    data = verification.to_dict()
    assert data["mismatches"] == [
        {
            "key": "b",
            "before": 0,
            "acknowledged": 0,
            "expected": 0,
            "actual": 1,
            "status": "mismatch",
        }
    ]
    assert data["expected_total"] == 3 and data["actual_total"] == 4


def test_exact_arithmetic_beyond_floats() -> None:
    big = 10**37
    verification = verify(["a"], {"a": big}, {"a": tally(big - 1)}, {"a": 2 * big - 1})
    assert verification.status == "exact"
