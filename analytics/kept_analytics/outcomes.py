"""The outcomes job: fold feedback into one outcome row per generation, incrementally.

Each run reads only rows inserted since the last run (`inserted_at`, set by the server),
finds the generations they touch, recomputes those generations' outcomes from all of
their events, and writes the new version together with a cancel row for every live
previous version (VersionedCollapsingMergeTree). Sums weighted by `sign` are therefore
exact at any time, and the hourly rollup fed by a materialized view stays exact too.

A run that dies half-way is repaired by the next one: the watermark moves only after
success, and the next run cancels whatever versions are live, however many.

The fold statement is folding.py's; `full` on one server is rebuild.py's (truncate, then
fold every generation without staging); on a cluster `full` refolds from the epoch here.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from typing import Any

from kept_analytics.folding import (
    EPOCH,
    INTO_VIEWS,
    JOB,
    Deposed,
    RunResult,
    fold,
    generations,
    record_watermark,
    run_until,
    spans,
)
from kept_analytics.lease import Fence
from kept_analytics.rebuild import rebuild
from kept_storage import Store, utc
from kept_wire.contract import ACCEPT_ACTIONS_DEFAULT

__all__ = ["EPOCH", "JOB", "Deposed", "OutcomesJob", "RunResult", "spans"]

log = logging.getLogger("kept.analytics")

FOLD_MAX_GENERATIONS = 20_000
"""Most touched generations one incremental fold statement takes. Consecutive cohort days
are folded together up to it (100 late votes over a month: one statement, not thirty),
and a day is never split. Small: measured at 1M generations over 30 days, spans of
300,000 staged generations made a refold of everything slower (60 s against 47 s a day at
a time) as well as bigger in memory (the IN sets over staging)."""

# The generations of a span of cohort days that this run touches, as a prefix of the
# tables' sort keys (project, day, generation_id), so the primary index skips other
# granules.
_RUN = "run = {run:UInt64}"
_STAGING = ("analytics_run_generations", "analytics_run_feedback_only")
_STAGED = f"(SELECT project, generation_id FROM analytics_run_generations WHERE {_RUN})"
_AFFECTED_KEYS = (
    "(SELECT project, toDate(gen_ts), generation_id FROM analytics_run_generations "
    f"WHERE {_RUN} AND toDate(gen_ts) BETWEEN {{first:Date}} AND {{last:Date}})"
)
_AFFECTED_PAIRS = (
    "(SELECT project, generation_id FROM analytics_run_generations "
    f"WHERE {_RUN} AND toDate(gen_ts) BETWEEN {{first:Date}} AND {{last:Date}})"
)
_AFFECTED_IDS = (
    f"(SELECT generation_id FROM analytics_run_generations WHERE {_RUN} "
    "AND toDate(gen_ts) BETWEEN {first:Date} AND {last:Date})"
)
# Feedback happens after its generation; a day of slack covers client clock skew. Feedback
# is keyed by its own day; the bloom filter on generation_id prunes instead.
_AFFECTED_FEEDBACK = (
    f"toDate(ts) >= {{first:Date}} - 1 AND generation_id IN {_AFFECTED_IDS} "
    f"AND (project, generation_id) IN {_AFFECTED_PAIRS}"
)
# Each lookup tests the id alone first: a granule is 8,192 rows around each touched
# generation, and a string set is cheaper per row than the key tuple (measured at 10M
# generations, 100 old ones touched: 55 against 95 ms per table read).
_OUTCOME_KEY = (
    f"generation_id IN {_AFFECTED_IDS} "
    f"AND (project, toDate(gen_ts), generation_id) IN {_AFFECTED_KEYS}"
)

# Live versions: a version whose +1 row has no matching cancel yet. (Aliases differ from
# the column names: ClickHouse would resolve the WHERE's gen_ts to the aggregate.)
_LIVE = f"""
SELECT project, generation_id, version, any(gen_ts) AS l_gen_ts, any(model) AS l_model,
    any(prompt_version) AS l_prompt_version, any(metadata) AS l_metadata,
    any(latency_ms) AS l_latency_ms, any(output_tokens) AS l_output_tokens,
    any(cost_usd) AS l_cost_usd, any(accepted) AS l_accepted, any(vote) AS l_vote,
    any(corrected) AS l_corrected, any(correction_similarity) AS l_correction_similarity,
    any(survival) AS l_survival, any(actions) AS l_actions, any(scores) AS l_scores
FROM outcomes WHERE {_OUTCOME_KEY}
GROUP BY project, generation_id, version HAVING sum(sign) > 0
"""

# New versions of the touched generations of a span of days, and a cancel row for every
# live version they had. A new row is a generation's first when the generation has no row
# at all: not "no is_first row", since a merge collapses the first version with its cancel
# (and the rollup would then count the latency of the next version a second time).
_FOLD = fold(
    generations_sql=generations(
        f"generation_id IN {_AFFECTED_IDS} "
        f"AND (project, toDate(ts), generation_id) IN {_AFFECTED_KEYS}"
    ),
    feedback_where=_AFFECTED_FEEDBACK,
    is_first=(
        "toUInt8((g.project, g.generation_id) NOT IN ("
        f"SELECT project, generation_id FROM outcomes WHERE {_OUTCOME_KEY}))"
    ),
    cancels=f"""
    UNION ALL
    SELECT project, l_gen_ts, generation_id, version, toInt8(-1), toUInt8(0), l_model,
        l_prompt_version, l_metadata, l_latency_ms, l_output_tokens, l_cost_usd, l_accepted,
        l_vote, l_corrected, l_correction_similarity, l_survival, l_actions, l_scores
    FROM ({_LIVE})""",
)

_WINDOW = (
    "inserted_at > {since:DateTime64(3, 'UTC')} AND inserted_at <= {until:DateTime64(3, 'UTC')}"
)


class OutcomesJob:
    """Folds new events into `outcomes`. Runs only under a lease term (`Fence`): a run
    whose term is superseded writes nothing that counts."""

    def __init__(
        self,
        store: Store,
        accept_actions: tuple[str, ...] = ACCEPT_ACTIONS_DEFAULT,
        lag_s: float = 5.0,
        recent_days: int = 2,
    ) -> None:
        self._store = store
        self._accept = list(accept_actions)
        self.lag_s = lag_s
        self._recent_days = recent_days

    def watermark(self) -> datetime:
        """Rows inserted up to this moment are folded in."""
        value = self._store.scalar(
            "SELECT argMax(until, updated_at) FROM analytics_state WHERE job = {j:String}",
            {"j": JOB},
        )
        if not isinstance(value, datetime) or utc(value) <= EPOCH:
            return EPOCH
        return utc(value)

    def run(self, fence: Fence, full: bool = False) -> RunResult:
        """Fold everything inserted since the last run; `full` rebuilds from scratch.
        Raises Deposed when `fence`'s term is superseded before the run could start."""
        store = self._store
        if full and store.cluster is None:
            return rebuild(store, fence, self._accept, self.lag_s)
        # On a cluster, TRUNCATE through a Distributed table empties nothing on the shards:
        # the rebuild refolds every generation from the epoch instead, cancelling the
        # outcomes they had (exact, as every refold is).
        started = time.perf_counter()
        since = EPOCH if full else self.watermark()
        until = run_until(store, self.lag_s)
        # The run's staging partition, and the version of the outcomes it writes.
        run = time.time_ns()
        self._drop_staging()  # what crashed or deposed runs left
        try:
            days = self._collect({"since": since, "until": until, "run": run}, fence)
            fenced = {"run": run, "version": run, "accept": self._accept, **fence.params}
            for first, last in spans(days, FOLD_MAX_GENERATIONS):
                span = {"first": first, "last": last}
                store.command(
                    _FOLD, {**fenced, **span}, settings={**fence.settings(), **INTO_VIEWS}
                )
            touched = sum(count for _, count in days)
            record_watermark(store, fence, until)
        finally:
            self._drop_staging(run)
        if not fence.holds(store):
            raise Deposed(f"lease term {fence.term} was superseded during the run")
        result = RunResult(since, until, touched, len(days), time.perf_counter() - started)
        if touched:
            log.info(
                "outcomes: %d generations over %d days in %.2fs",
                touched, len(days), result.seconds,
            )  # fmt: skip
        return result

    def _drop_staging(self, only: int | None = None) -> None:
        """Drop the staging of run `only`, or of every run. Not on a cluster: Distributed
        tables drop no partitions, and every query reads its own run only (the staging
        tables' TTL removes old runs there)."""
        if self._store.cluster is not None:
            return
        for table in _STAGING:
            if only is not None:
                runs = [only]
            else:
                runs = [int(r) for (r,) in self._store.rows(f"SELECT DISTINCT run FROM {table}")]
            for run in runs:
                # A partition id is the run number itself (an int: nothing to escape).
                self._store.command(f"ALTER TABLE {table} DROP PARTITION ID '{int(run)}'")

    def _collect(self, window: dict[str, Any], fence: Fence) -> list[tuple[date, int]]:
        """Stage the touched generations with their cohort time; returns their days, each
        with its number of generations."""
        store = self._store
        settings = fence.settings
        store.command(
            "INSERT INTO analytics_run_generations "
            "SELECT {run:UInt64}, project, generation_id, min(ts) "
            f"FROM generations WHERE {_WINDOW} GROUP BY project, generation_id",
            window,
            settings=settings(),
        )
        # Generations touched only by feedback: their rows are older. Look in recent
        # cohorts first (the date prunes), then, only for any still missing, everywhere.
        store.command(
            "INSERT INTO analytics_run_feedback_only "
            "SELECT DISTINCT {run:UInt64}, project, generation_id "
            f"FROM feedback WHERE {_WINDOW} AND (project, generation_id) NOT IN {_STAGED}",
            window,
            settings=settings(),
        )
        run = {"run": window["run"]}
        only = f"(SELECT project, generation_id FROM analytics_run_feedback_only WHERE {_RUN})"
        missing = (
            "generation_id IN (SELECT generation_id FROM analytics_run_feedback_only "
            f"WHERE {_RUN}) AND (project, generation_id) IN {only} "
            f"AND (project, generation_id) NOT IN {_STAGED}"
        )
        if store.scalar(f"SELECT count() FROM analytics_run_feedback_only WHERE {_RUN}", run):
            store.command(
                "INSERT INTO analytics_run_generations "
                "SELECT {run:UInt64}, project, generation_id, min(ts) "
                "FROM generations WHERE ts >= now() - toIntervalDay({recent:UInt32}) "
                f"AND {missing} GROUP BY project, generation_id",
                {**run, "recent": self._recent_days},
                settings=settings(),
            )
            still_missing = store.scalar(
                f"SELECT count() FROM analytics_run_feedback_only WHERE {_RUN} "
                f"AND (project, generation_id) NOT IN {_STAGED}",
                run,
            )
            if still_missing:
                store.command(
                    "INSERT INTO analytics_run_generations "
                    "SELECT {run:UInt64}, project, generation_id, min(ts) "
                    f"FROM generations WHERE {missing} GROUP BY project, generation_id",
                    run,
                    settings=settings(),
                )
        rows = store.rows(
            "SELECT toDate(gen_ts) AS d, count() FROM analytics_run_generations "
            f"WHERE {_RUN} GROUP BY d ORDER BY d",
            run,
        )
        return [(r[0], int(r[1])) for r in rows]
