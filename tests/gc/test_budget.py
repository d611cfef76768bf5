"""``--time-budget`` parsing and the backlog line, derived by hand."""

from __future__ import annotations

import pytest

from inspector.errors import UsageError
from inspector.gc.budget import TimeBudget, estimate_backlog, parse_time_budget


@pytest.mark.parametrize(
    ("text", "seconds", "shown"), [("25m", 1500, "25m"), ("90s", 90, "1m30s"), ("1h", 3600, "1h")]
)
def test_a_budget_is_a_duration_as_max_age_spells_it(text: str, seconds: float, shown: str) -> None:
    budget = parse_time_budget(text)
    assert (budget.seconds, budget.text) == (seconds, shown)
    assert budget.reason == f"time budget of {shown} reached"


@pytest.mark.parametrize("text", ["0s", "0m", "", "soon", "-5m", "25 minutes"])
def test_zero_and_garbage_are_refused_with_exit_2(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time_budget(text)
    assert caught.value.exit_code == 2


def test_the_budget_is_reached_at_its_end_not_before() -> None:
    now = [100.0]
    budget = TimeBudget(30.0, "30s", clock=lambda: now[0])
    now[0] = 129.5
    assert not budget.reached() and budget.remaining() == 0.5
    now[0] = 130.0
    assert budget.reached() and budget.remaining() == 0.0


def test_a_budget_spent_early_stays_spent() -> None:
    # 0.5 s left but the next deletion must wait 1 s (GitHub's pace): the run spends the budget.
    now = [100.0]
    budget = TimeBudget(30.0, "30s", clock=lambda: now[0])
    now[0] = 129.5
    budget.spend()
    assert budget.reached() and budget.remaining() == 0.0
    now[0] = 200.0
    budget.spend()  # spending again changes nothing
    assert budget.reached() and budget.started == 99.5


def test_the_backlog_line_of_the_issue() -> None:
    # 35 deletions in 60 s is 35/min; 312 left at that rate: 312 / 35 min = 8.9 min -> "about 9 min".
    assert (
        estimate_backlog(312, 35, 60.0).describe() == "312 deletions left: about 9 min at the observed 35/min"
    )
    # 10 in 2 s = 5/s = 300/min, shown per second; 1 left: 0.2 s -> at least "1 s".
    assert estimate_backlog(1, 10, 2.0).describe() == "1 deletion left: about 1 s at the observed 5/s"
    # Nothing finished: no rate, and it says so.
    assert estimate_backlog(4, 0, 3.0).per_minute is None
    assert "no rate was observed" in estimate_backlog(4, 0, 3.0).describe()
    # 3 in 10 min = 0.3/min; 100 left = 333.3 min = 5 h 34 min (rounded up to the minute).
    assert (
        estimate_backlog(100, 3, 600.0).describe()
        == "100 deletions left: about 5 h 34 min at the observed 0.3/min"
    )
