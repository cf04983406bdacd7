"""The live page's time range takes the one time grammar of kept_wire.timespec, with the
same errors as the report and export parameters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from kept_analytics.params import InvalidQuery, spec_from_params
from kept_dashboards import live
from kept_wire.timespec import parse_instant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("now-6h", NOW - timedelta(hours=6)),
        ("6h", NOW - timedelta(hours=6)),
        ("now-2w", NOW - timedelta(weeks=2)),
        ("1.5d", NOW - timedelta(hours=36)),
        ("1772366400000", NOW),
        ("2026-03-01T13:00:00+01:00", NOW),
        ("2026-03-01T12:00:00Z", NOW),
        ("2026-03-01", NOW - timedelta(hours=12)),
    ],
)
def test_one_grammar(text: str, expected: datetime) -> None:
    assert parse_instant(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "now-", "now-6", "-6h", "99999999999d", "9" * 30])
def test_the_same_error_on_every_path(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time") as direct:
        parse_instant(text, NOW)
    with pytest.raises(live.BadWindow) as page:
        live.window({"from": text})
    with pytest.raises(InvalidQuery) as report:
        spec_from_params({"since": [text]}, threshold=0.5, checkpoints=(30,), now=NOW)
    assert str(page.value) == str(report.value) == str(direct.value)
