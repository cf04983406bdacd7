"""Reports over days read whole UTC days from the rollup's daily projection (migration
0008) and the hours at the window's edges from its rows: the same numbers as the hours
alone give, and as the outcome rows give."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from kept_analytics.report import ReportSpec, report, rollup_bounds
from kept_analytics.rollup_sql import SETTINGS, rollup_sql, windows
from tests.helpers import InProcessServer
from tests.synthetic import load

_HOUR = "DateTime('UTC')"
_PLUS_2 = timezone(timedelta(hours=2))
_KEYS = [("model", "model"), ("prompt_version", "prompt_version"), ("day", "toDate(hour)")]


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("since", "until", "parts"),
    [
        (_at(1, 5), _at(4, 3), [
            ("hour", _at(1, 5), _at(2, 0), _HOUR),
            ("toDate(hour)", date(2026, 11, 2), date(2026, 11, 4), "Date"),
            ("hour", _at(4, 0), _at(4, 3), _HOUR),
        ]),
        (_at(1, 0), _at(3, 0), [("toDate(hour)", date(2026, 11, 1), date(2026, 11, 3), "Date")]),
        (_at(1, 0), _at(2, 7), [
            ("toDate(hour)", date(2026, 11, 1), date(2026, 11, 2), "Date"),
            ("hour", _at(2, 0), _at(2, 7), _HOUR),
        ]),
        # Bounds in another zone: the days are UTC days (those of the rollup's hours).
        (_at(1, 5).astimezone(_PLUS_2), _at(4, 3).astimezone(_PLUS_2), [
            ("hour", _at(1, 5), _at(2, 0), _HOUR),
            ("toDate(hour)", date(2026, 11, 2), date(2026, 11, 4), "Date"),
            ("hour", _at(4, 0), _at(4, 3), _HOUR),
        ]),
        # Across a midnight with no whole day between: hours only.
        (_at(1, 20), _at(2, 3), [("hour", _at(1, 20), _at(2, 3), _HOUR)]),
        (_at(1, 5), _at(1, 9), [("hour", _at(1, 5), _at(1, 9), _HOUR)]),
    ],
)  # fmt: skip
def test_a_window_splits_into_whole_days_and_the_hours_around_them(
    since: datetime, until: datetime, parts: list[tuple[str, date, date, str]]
) -> None:
    assert windows(since, until) == parts


def test_whole_days_come_from_the_projection_with_the_numbers_of_the_hours(
    server: InProcessServer,
) -> None:
    store = server.runtime.store
    now = datetime.now(timezone.utc)
    # Whole hours, so that the exact path (cut to the millisecond) counts the same rows.
    hour = now.replace(minute=0, second=0, microsecond=0)
    spec = ReportSpec(since=hour - timedelta(days=4), until=hour + timedelta(hours=1),
                      by=("model", "prompt_version", "day"))  # fmt: skip
    load(store, 3_000, spec.since + timedelta(minutes=1), now, project="a")
    assert server.runtime.analytics.run_now() is not None
    since, until = rollup_bounds(spec)
    sql, params = rollup_sql(_KEYS, spec, since, until)

    plan = "\n".join(row[0] for row in store.rows(f"EXPLAIN {sql}", params, settings=SETTINGS))
    assert "ReadFromMergeTree (by_day)" in plan, plan
    from_days = store.rows(sql, params, settings=SETTINGS)
    from_hours = store.rows(sql, params, settings={**SETTINGS, "optimize_use_projections": 0})
    assert len(from_days) > 4
    assert from_days == from_hours

    rollup, exact = (report(store, spec.model_copy(update={"exact": e})) for e in (False, True))
    assert sum(g["generations"] for g in rollup) == 3_000
    counted = ("day", "model", "prompt_version", "generations", "accepted", "votes_up",
               "votes_down", "corrected", "action_counts", "survival_measured")  # fmt: skip
    assert [{k: g[k] for k in counted} for g in rollup] == [
        {k: g[k] for k in counted} for g in exact
    ]
