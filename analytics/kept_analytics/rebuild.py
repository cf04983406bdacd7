"""The full rebuild on one server (`kept analytics run --full`): every outcome from scratch.

Everything is affected, so nothing is staged: the tables are truncated, then the
generations are folded by spans of consecutive cohort days, one statement each. A span's
generations are a range of the primary key; its feedback is read from the span's first day
on (feedback is keyed by its own day, and comes after its generation), filtered by the
span's generation ids: only that column is read for the rows of later days, and the other
columns only of the granules with a late event. Few big spans keep those repeated reads of
later days small; the span size bounds the memory of a fold.

The fold is the incremental run's (folding.py), so a rebuild and a series of incremental
runs write the same outcomes. On a cluster TRUNCATE cannot go through Distributed tables:
outcomes.py refolds and cancels there instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kept_analytics.folding import EPOCH, Deposed, RunResult, fold, record_watermark, run_until
from kept_analytics.folding import spans as day_spans
from kept_analytics.lease import Fence
from kept_storage import Store

log = logging.getLogger("kept.analytics")

SPAN_GENERATIONS = 250_000
"""Most generation rows one rebuild fold takes: consecutive cohort days up to it, and a
bigger day in parts. It bounds the memory of a fold (measured: 740 MiB peak at 1M
generations; 1,150 MiB at 10M when a day of 333,000 was one fold)."""

# A day bigger than SPAN_GENERATIONS is folded in parts, by the hash of the generation id.
# A generation belongs to the span of its first row's day: rows of the day before are read
# too, so that one whose first row is there (a retry past midnight) is left to the span
# before, which reads this day's rows as well (`_COHORT`). Else it would be folded twice.
_SPAN = (
    "toDate(ts) BETWEEN {first:Date} - 1 AND {last:Date} "
    "AND cityHash64(generation_id) % {parts:UInt64} = {part:UInt64}"
)
_COHORT = "AND toDate(min(ts)) >= {first:Date}"
# Feedback happens after its generation; a day of slack covers client clock skew.
_SPAN_FEEDBACK = (
    "toDate(ts) >= {first:Date} - 1 "
    f"AND generation_id IN (SELECT generation_id FROM generations WHERE {_SPAN})"
)
# The tables start empty: every generation is new and nothing is live to cancel.
_REBUILD_FOLD = fold(_SPAN, _SPAN_FEEDBACK, is_first="toUInt8(1)", cancels="", having=_COHORT)

_TRUNCATED = ("outcomes", "outcomes_hourly", "analytics_state")


def rebuild(store: Store, fence: Fence, accept: list[str], lag_s: float) -> RunResult:
    """Rebuild every outcome, fenced by `fence`. Raises Deposed when its term is
    superseded. Not for a cluster (TRUNCATE)."""
    started = time.perf_counter()
    # TRUNCATE cannot carry the fence: check just before (a new holder also kills what
    # still runs of an older term when it takes over).
    if not fence.holds(store):
        raise Deposed(f"lease term {fence.term} was superseded")
    for table in _TRUNCATED:
        store.command(f"TRUNCATE TABLE {table}", settings=fence.settings())
    until = run_until(store, lag_s)
    # Rows per cohort day: a scan of `ts` only. Rows inserted after `until` may be folded
    # now as well; the next run folds them again, which is exact like every refold.
    days = [
        (day, int(count))
        for day, count in store.rows(
            "SELECT toDate(ts) AS d, count() FROM generations GROUP BY d ORDER BY d"
        )
    ]
    params: dict[str, Any] = {"version": time.time_ns(), "accept": accept, **fence.params}
    for first, last in day_spans(days, SPAN_GENERATIONS):
        rows = sum(count for day, count in days if first <= day <= last)
        parts = -(-rows // SPAN_GENERATIONS)
        for part in range(parts):
            span = {"first": first, "last": last, "parts": parts, "part": part}
            store.command(_REBUILD_FOLD, {**params, **span}, settings=fence.settings())
    # Only new versions were written, one per generation.
    touched = int(store.scalar("SELECT count() FROM outcomes") or 0)
    record_watermark(store, fence, until)
    if not fence.holds(store):
        raise Deposed(f"lease term {fence.term} was superseded during the run")
    result = RunResult(EPOCH, until, touched, len(days), time.perf_counter() - started)
    log.info(
        "outcomes rebuilt: %d generations over %d days in %.2fs",
        touched, len(days), result.seconds,
    )  # fmt: skip
    return result
