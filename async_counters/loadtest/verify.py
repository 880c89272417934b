"""The point of the bench: did every acknowledged operation land exactly once?

Per key, the value read back (strongly consistent) must equal the value before the run plus the
deltas acknowledged. Operations whose outcome is unknown (ambiguous) cannot be counted either way,
so they widen the expectation into a bound ``[low, high]`` instead of being hidden:

- ``exact``: no ambiguity on the key, and the value is what was acknowledged;
- ``bounded``: the key had ambiguous operations and its value lies within the bound;
- ``mismatch``: the value is outside what the run can explain (lost or doubled writes, or another
  writer);
- ``incomplete``: some worker of the run has not finished, so no verdict is possible yet.

Exit status: 0 when every key is exact, 1 on any mismatch, 3 when the result is not exact yet
nothing proves a mismatch (ambiguous operations, or a run whose workers have not all finished).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from .metrics import KeyTally

__all__ = [
    "EXIT_INCONCLUSIVE",
    "EXIT_MISMATCH",
    "EXIT_OK",
    "EXIT_USAGE",
    "SHOWN_MISMATCHES",
    "KeyCheck",
    "LimitCheck",
    "Verification",
    "verify",
]

EXIT_OK: Final = 0
EXIT_MISMATCH: Final = 1
EXIT_USAGE: Final = 2
EXIT_INCONCLUSIVE: Final = 3
#: At most this many differing keys are listed on the terminal (all are in the JSON).
SHOWN_MISMATCHES: Final = 50

KeyStatus = Literal["exact", "bounded", "mismatch"]
Status = Literal["exact", "bounded", "mismatch", "incomplete", "not verified"]


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """One key: what it was, what the run acknowledged (and left ambiguous), what it is."""

    key: str
    before: int
    acknowledged: int
    ambiguous_up: int
    ambiguous_down: int
    after: int

    @property
    def expected(self) -> int:
        return self.before + self.acknowledged

    @property
    def low(self) -> int:
        return self.expected + self.ambiguous_down

    @property
    def high(self) -> int:
        return self.expected + self.ambiguous_up

    @property
    def ambiguous(self) -> bool:
        return bool(self.ambiguous_up or self.ambiguous_down)

    @property
    def status(self) -> KeyStatus:
        if not self.ambiguous:
            return "exact" if self.after == self.expected else "mismatch"
        return "bounded" if self.low <= self.after <= self.high else "mismatch"

    def describe(self) -> str:
        if self.ambiguous:
            wanted = f"expected {self.expected} (ambiguous bound {self.low}..{self.high})"
        else:
            wanted = f"expected {self.expected}"
        difference = self.after - self.expected
        return f"{self.key}: {wanted}, actual {self.after} (difference {difference:+d})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "before": self.before,
            "acknowledged": self.acknowledged,
            "expected": self.expected,
            "actual": self.after,
            "status": self.status,
        }
        if self.ambiguous:
            data["low"] = self.low
            data["high"] = self.high
        return data


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """--limit: one key's window, as read back from the server, against the limit.

    Exact admission means ``admitted <= limit``, and, where a hit of this run was denied
    (demand exceeded the limit), that the window was full: no room was left for that hit,
    ``admitted > limit - largest_cost`` (``== limit`` when every hit costs 1)."""

    key: str
    limit: int
    admitted: int
    denied: int
    largest_cost: int

    @property
    def ok(self) -> bool:
        if self.admitted > self.limit:
            return False
        return not self.denied or self.admitted > self.limit - self.largest_cost

    def describe(self) -> str:
        if self.admitted > self.limit:
            return f"{self.key}: {self.admitted:,} admitted, over the limit of {self.limit:,}"
        return (
            f"{self.key}: {self.denied:,} hit(s) denied with only {self.admitted:,} of "
            f"{self.limit:,} admitted"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "limit": self.limit,
            "admitted": self.admitted,
            "denied": self.denied,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Verification:
    """The verdict over all keys of a run."""

    checks: tuple[KeyCheck, ...]
    #: Why the verdict is incomplete (e.g. workers of a run still running), if it is.
    incomplete: tuple[str, ...] = field(default=())
    #: What each key is expected to equal, in words.
    basis: str = "their value before plus what was acknowledged"
    #: --limit: every window against the limit.
    limits: tuple[LimitCheck, ...] = field(default=())

    @property
    def mismatches(self) -> list[KeyCheck]:
        return [check for check in self.checks if check.status == "mismatch"]

    @property
    def limits_broken(self) -> list[LimitCheck]:
        return [check for check in self.limits if not check.ok]

    @property
    def bounded(self) -> list[KeyCheck]:
        return [check for check in self.checks if check.status == "bounded"]

    @property
    def status(self) -> Status:
        # While a worker may still be writing, a counter ahead of the records proves nothing.
        if self.incomplete:
            return "incomplete"
        if self.mismatches or self.limits_broken:
            return "mismatch"
        if self.bounded:
            return "bounded"
        return "exact"

    @property
    def exit_status(self) -> int:
        status = self.status
        if status == "exact":
            return EXIT_OK
        if status == "mismatch":
            return EXIT_MISMATCH
        return EXIT_INCONCLUSIVE

    @property
    def ambiguous_bound(self) -> tuple[int, int]:
        """Over all keys, how far the total may be from what was acknowledged: (down, up)."""
        return (
            sum(check.ambiguous_down for check in self.checks),
            sum(check.ambiguous_up for check in self.checks),
        )

    def headline(self) -> str:
        text = self._keys_headline()
        if not self.limits:
            return text
        broken = self.limits_broken
        windows = len(self.limits)
        limit = self.limits[0].limit
        if broken:
            return f"{text}; LIMIT NOT EXACT in {len(broken)} of {windows} windows"
        full = sum(check.denied > 0 for check in self.limits)
        return (
            f"{text}; admitted <= {limit:,} in all {windows} windows, and the window full in "
            f"each of the {full} where hits were denied"
        )

    def _keys_headline(self) -> str:
        keys = len(self.checks)
        status = self.status
        if status == "mismatch" and not self.mismatches:
            return f"all {keys} keys equal {self.basis}"
        if status == "exact":
            return f"EXACT: all {keys} keys equal {self.basis}"
        if status == "mismatch":
            differing = len(self.mismatches)
            return f"MISMATCH: {differing} of {keys} keys differ from {self.basis}"
        if status == "incomplete":
            ahead = len(self.mismatches)
            moving = f"; {ahead} of {keys} keys are not (yet) what the records say" if ahead else ""
            return "INCOMPLETE: " + "; ".join(self.incomplete) + moving
        down, up = self.ambiguous_bound
        return (
            f"BOUNDED: {len(self.bounded)} of {keys} keys had ambiguous operations; every value "
            f"lies within its bound (total ambiguous {down:+d}..{up:+d}); not provably exact"
        )

    def to_dict(self, *, keys: bool = True) -> dict[str, Any]:
        down, up = self.ambiguous_bound
        data: dict[str, Any] = {
            "status": self.status,
            "exact": self.status == "exact",
            "exit_status": self.exit_status,
            "headline": self.headline(),
            "keys_checked": len(self.checks),
            "keys_exact": sum(check.status == "exact" for check in self.checks),
            "keys_bounded": len(self.bounded),
            "keys_mismatched": len(self.mismatches),
            "expected_total": sum(check.expected for check in self.checks),
            "actual_total": sum(check.after for check in self.checks),
            "ambiguous_down": down,
            "ambiguous_up": up,
            "incomplete": list(self.incomplete),
            "mismatches": [check.to_dict() for check in self.mismatches],
        }
        if self.limits:
            data["limits"] = {
                "windows": len(self.limits),
                "broken": [check.to_dict() for check in self.limits_broken],
                "windows_denied": sum(check.denied > 0 for check in self.limits),
            }
            if keys:
                data["limits"]["checks"] = [check.to_dict() for check in self.limits]
        if keys:
            data["keys"] = [check.to_dict() for check in self.checks]
        return data


def verify(
    keys: Iterable[str],
    before: Mapping[str, int],
    tallies: Mapping[str, KeyTally],
    after: Mapping[str, int],
    *,
    incomplete: Iterable[str] = (),
    basis: str | None = None,
    limits: Iterable[LimitCheck] = (),
) -> Verification:
    """Check every key in ``keys`` and every key with a tally (0 where nothing is known)."""
    names = list(dict.fromkeys([*keys, *tallies]))
    checks = []
    for key in names:
        tally = tallies.get(key)
        checks.append(
            KeyCheck(
                key=key,
                before=before.get(key, 0),
                acknowledged=tally["acknowledged"] if tally else 0,
                ambiguous_up=tally["ambiguous_up"] if tally else 0,
                ambiguous_down=tally["ambiguous_down"] if tally else 0,
                after=after.get(key, 0),
            )
        )
    if basis is None:
        return Verification(tuple(checks), tuple(incomplete), limits=tuple(limits))
    return Verification(tuple(checks), tuple(incomplete), basis, tuple(limits))
