"""``gc --time-budget``: when no new deletion may start, and how long the rest would take.

A CI job has a time limit, and GHCR deletes at about 1,700 versions per 30 minutes: an organisation's
backlog may not fit in one job. With a budget the run starts no new deletion once the budget is spent
(the ones in flight finish, a manifest begun is finished: a tag re-pointed to a placeholder is never
left half-done by the budget), reports the rest ``not-attempted`` and exits 7; planning again is
idempotent (what was deleted is no longer planned), so a rerun continues where the run stopped.

The clock starts with the command: planning counts, as it does for the job's own limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inspector.errors import UsageError
from inspector.gc.policy import format_duration, parse_duration

__all__ = ["Backlog", "TimeBudget", "estimate_backlog", "parse_time_budget"]


@dataclass(slots=True)
class TimeBudget:
    """``seconds`` from ``started`` (a ``clock`` reading) during which deletions may start."""

    seconds: float
    text: str
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def remaining(self) -> float:
        """Seconds left (0 once spent)."""
        return max(0.0, self.seconds - (self.clock() - self.started))

    def reached(self) -> bool:
        return self.clock() - self.started >= self.seconds

    def spend(self) -> None:
        """Count the budget as spent from now on: the next deletion cannot start within what is left."""
        self.started = min(self.started, self.clock() - self.seconds)

    @property
    def reason(self) -> str:
        """Why the rest was not attempted: ``time budget of 25m reached``."""
        return f"time budget of {self.text} reached"


def parse_time_budget(text: str, clock: Callable[[], float] = time.monotonic) -> TimeBudget:
    """``--time-budget 25m`` (units s m h d w, as ``--max-age``); zero is refused: it would delete nothing."""
    value = parse_duration(text)
    if value.total_seconds() <= 0:
        raise UsageError(f"--time-budget {text}: must be longer than 0 s (a budget of 0 deletes nothing)")
    return TimeBudget(value.total_seconds(), format_duration(value), clock)


@dataclass(frozen=True, slots=True)
class Backlog:
    """Deletions left after a stop, and how long they take at the rate this run observed."""

    left: int
    per_minute: float | None  # None: nothing was deleted, no rate observed
    seconds: float | None

    def describe(self) -> str:
        """``312 deletions left: about 9 min at the observed 35/min``."""
        noun = "deletion" if self.left == 1 else "deletions"
        if self.per_minute is None or self.seconds is None:
            return f"{self.left} {noun} left (no deletion finished yet, so no rate was observed)"
        return (
            f"{self.left} {noun} left: about {_about(self.seconds)} at the observed {_rate(self.per_minute)}"
        )


def estimate_backlog(left: int, done: int, seconds: float) -> Backlog:
    """``left`` deletions at the rate of ``done`` deletions in ``seconds`` (the time spent deleting)."""
    if done <= 0 or seconds <= 0:
        return Backlog(left, None, None)
    per_second = done / seconds
    return Backlog(left, per_second * 60.0, left / per_second)


def _about(seconds: float) -> str:
    """Rounded up to what a person plans with: ``40 s``, ``9 min``, ``2 h 5 min``."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = -(-int(seconds) // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _rate(per_minute: float) -> str:
    if per_minute >= 120:
        return f"{per_minute / 60:.0f}/s"
    if per_minute >= 10:
        return f"{per_minute:.0f}/min"
    return f"{per_minute:.1f}/min"
