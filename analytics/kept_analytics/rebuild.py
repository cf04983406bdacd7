"""The full rebuild on one server (`kept analytics run --full`): every outcome from scratch.

Everything is affected, so nothing is staged: the generations are folded by spans of
consecutive cohort days, one statement each, into a shadow of `outcomes` (storage's
shadow.py). A span's generations are a range of the primary key; its feedback is read from
the span's first day on (feedback is keyed by its own day, and comes after its generation),
filtered by the span's generation ids: only that column is read for the rows of later days,
and the other columns only of the granules with a late event. Few big spans keep those
repeated reads of later days small; the span size bounds the memory of a fold.

The shadow fires no materialized view: the hourly rollup is computed once at the end, by
the rollup view's own query over the whole shadow (measured at 1M generations: feeding the
view span by span was more than half of the rebuild; its query over everything at once,
0.2 s). Both shadows then replace the tables partition by partition, so readers see the old
outcomes until the rebuild is complete, and a rebuild that fails or is deposed changes
nothing.

The fold is the incremental run's (folding.py), so a rebuild and a series of incremental
runs write the same outcomes. On a cluster there are no parts to swap through Distributed
tables: outcomes.py refolds and cancels there instead.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from kept_analytics.folding import (
    EPOCH,
    Deposed,
    RunResult,
    fold,
    generations_by_rows,
    record_watermark,
    run_until,
)
from kept_analytics.folding import spans as day_spans
from kept_analytics.lease import Fence
from kept_storage import Store
from kept_storage.shadow import SHADOW_SUFFIX, Shadow, shadows

log = logging.getLogger("kept.analytics")

SPAN_GENERATIONS = 400_000
"""Most generation rows one rebuild fold takes: consecutive cohort days up to it, and a
bigger day in parts. It bounds the memory of a fold: measured at 10M generations (days
of 333,000, a day a fold), the rebuild's peak RSS was 817-875 MiB. Fewer, bigger folds
read the later days' feedback fewer times."""

# A day bigger than SPAN_GENERATIONS is folded in parts, by the hash of the generation id.
_PART = "cityHash64(generation_id) % {parts:UInt64} = {part:UInt64}"
# A generation belongs to the span of its first row's day: rows of the day before are read
# too, so that one whose first row is there (a retry past midnight) is left to the span
# before, which reads this day's rows as well (`first_day`). Else it would be folded twice.
_SPAN = f"toDate(ts) BETWEEN {{first:Date}} - 1 AND {{last:Date}} AND {_PART}"
# The feedback of the span's generations: every row of theirs is on a day from `first` on,
# so ids of the day before are not looked for (measured at 10M generations, a day's fold:
# the feedback aggregation 2.3 s and 922 MiB with them, 0.9 s and 730 MiB without).
# Feedback happens after its generation; a day of slack covers client clock skew.
_SPAN_FEEDBACK = (
    "toDate(ts) >= {first:Date} - 1 AND generation_id IN (SELECT generation_id "
    f"FROM generations WHERE toDate(ts) BETWEEN {{first:Date}} AND {{last:Date}} AND {_PART})"
)
_INTO_SHADOW = {"optimize_on_insert": 0}
"""Settings of the inserts into the shadows. Each fold writes one version of distinct
generations and the rollup one row per key: the engines' merge of an inserted block
(collapsing, aggregating) would find nothing to merge (measured at 10M generations, a
day's fold: 1.4 s without it, 1.7 s with it)."""
# The shadow starts empty: every generation is new and nothing is live to cancel.
_OUTCOMES, _ROLLUP = "outcomes", "outcomes_hourly"
_ROLLUP_VIEW = "outcomes_hourly_mv"
"""The materialized view that feeds the rollup from outcomes (migration 0003)."""
_REBUILD_FOLD = fold(
    generations_by_rows(_SPAN, first_day="{first:Date}"), _SPAN_FEEDBACK,
    is_first="toUInt8(1)", cancels="", into=_OUTCOMES + SHADOW_SUFFIX,
)  # fmt: skip


def rebuild(store: Store, fence: Fence, accept: list[str], lag_s: float) -> RunResult:
    """Rebuild every outcome, fenced by `fence`. Raises Deposed when its term is
    superseded (nothing is then changed). Not for a cluster."""
    started = time.perf_counter()
    if not fence.holds(store):
        raise Deposed(f"lease term {fence.term} was superseded")
    with shadows(store, _OUTCOMES, _ROLLUP) as (outcomes, rollup):
        until = run_until(store, lag_s)
        # Rows per cohort day: a scan of `ts` only. Rows inserted after `until` may be
        # folded now as well; the next run folds them again, which is exact like every
        # refold.
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
                store.command(
                    _REBUILD_FOLD, {**params, **span}, settings={**fence.settings(), **_INTO_SHADOW}
                )
        _fill_rollup(store, fence, outcomes, rollup)
        # Only new versions were written, one per generation.
        touched = int(store.scalar(f"SELECT count() FROM {outcomes.name}") or 0)
        # A swap cannot carry the fence: check just before (a new holder also kills what
        # still runs of an older term when it takes over).
        if not fence.holds(store):
            raise Deposed(f"lease term {fence.term} was superseded during the run")
        outcomes.swap_in()
        rollup.swap_in()
    record_watermark(store, fence, until)
    result = RunResult(EPOCH, until, touched, len(days), time.perf_counter() - started)
    log.info(
        "outcomes rebuilt: %d generations over %d days in %.2fs",
        touched, len(days), result.seconds,
    )  # fmt: skip
    return result


def _fill_rollup(store: Store, fence: Fence, outcomes: Shadow, rollup: Shadow) -> None:
    """The rollup of the whole outcomes shadow, by the rollup view's own query (one
    definition) read from the server and pointed at the shadow, under the table's name as
    an alias (the query qualifies some columns with it). Fenced."""
    select = str(
        store.scalar(
            "SELECT as_select FROM system.tables WHERE database = {d:String} AND name = {v:String}",
            {"d": store.database, "v": _ROLLUP_VIEW},
        )
        or ""
    )
    source = re.compile(rf"\bFROM (?:`?{re.escape(store.database)}`?\.)?`?{_OUTCOMES}`?(?=\s)")
    if len(source.findall(select)) != 1:
        raise RuntimeError(f"{_ROLLUP_VIEW} should read {_OUTCOMES} once: {select!r}")
    over_shadow = source.sub(f"FROM {outcomes.name} AS {_OUTCOMES}", select)
    columns = ", ".join(store.column_types(_ROLLUP))
    store.command(
        f"INSERT INTO {rollup.name} ({columns}) SELECT {columns} "
        f"FROM ({over_shadow}) WHERE {fence.condition}",
        fence.params,
        settings={**fence.settings(), **_INTO_SHADOW},
    )
