"""The outcomes job: fold feedback into one outcome row per generation, incrementally.

Each run reads only rows inserted since the last run (`inserted_at`, set by the server),
finds the generations they touch, recomputes those generations' outcomes from all of
their events, and writes the new version together with a cancel row for every live
previous version (VersionedCollapsingMergeTree). Sums weighted by `sign` are therefore
exact at any time, and the hourly rollup fed by a materialized view stays exact too.

A run that dies half-way is repaired by the next one: the watermark moves only after
success, and the next run cancels whatever versions are live, however many.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from kept_analytics.lease import Fence
from kept_storage import Store, utc
from kept_wire.contract import ACCEPT_ACTIONS_DEFAULT

log = logging.getLogger("kept.analytics")

JOB = "outcomes"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
FOLD_MAX_GENERATIONS = 20_000
"""Most generations one fold statement takes. Consecutive cohort days are folded together
up to it (100 late votes over a month: one statement, not thirty), and a day is never
split. Small: measured at 1M generations over 30 days, spans of 300,000 made the rebuild
slower (60 s against 47 s a day at a time) as well as bigger in memory."""

_OUTCOME_COLUMNS = (
    "project, gen_ts, generation_id, version, sign, is_first, model, prompt_version, metadata, "
    "latency_ms, output_tokens, cost_usd, accepted, vote, corrected, correction_similarity, "
    "survival, actions, scores"
)

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

# Latest event per (generation, type, name, checkpoint), then one row per generation.
# Feedback happens after its generation; a day of slack covers client clock skew.
_FEEDBACK = f"""
SELECT project, generation_id,
    max(type = 'action' AND name IN {{accept:Array(String)}}) AS accepted,
    toInt8(anyIf(value, type = 'vote')) AS vote,
    countIf(type = 'correction') > 0 AS corrected,
    anyIf(text, type = 'correction') AS correction,
    mapFromArrays(groupArrayIf(checkpoint_s, type = 'survival'),
                  groupArrayIf(assumeNotNull(value), type = 'survival')) AS survival,
    groupArrayIf(name, type = 'action') AS actions,
    mapFromArrays(groupArrayIf(name, type = 'score'),
                  groupArrayIf(assumeNotNull(value), type = 'score')) AS scores
FROM (
    SELECT project, generation_id, type, name, checkpoint_s,
        argMax(value, (ts, event_id)) AS value, argMax(text, (ts, event_id)) AS text
    FROM feedback
    -- feedback is keyed by its own day; the bloom filter on generation_id prunes instead
    WHERE toDate(ts) >= {{first:Date}} - 1 AND generation_id IN {_AFFECTED_IDS}
        AND (project, generation_id) IN {_AFFECTED_PAIRS}
    GROUP BY project, generation_id, type, name, checkpoint_s
)
GROUP BY project, generation_id
"""

# A generation's rows (a retry past the dedup window, an OTel span and its supplement)
# merge field by field: the first stored value that is set wins (argMin skips NULLs; the
# -If forms skip empty strings and maps). Only supplements: not a generation (yet).
_GENERATIONS = f"""
SELECT project, generation_id, min(ts) AS gen_ts,
    argMin(model, inserted_at) AS model,
    argMinIf(prompt_version, inserted_at, prompt_version != '') AS prompt_version,
    argMinIf(metadata, inserted_at, notEmpty(metadata)) AS metadata,
    argMin(latency_ms, inserted_at) AS latency_ms,
    argMin(output_tokens, inserted_at) AS output_tokens, argMin(cost_usd, inserted_at) AS cost_usd,
    argMinIf(output, inserted_at, output_captured) AS output,
    max(output_captured) AS captured
FROM generations
WHERE (project, toDate(ts), generation_id) IN {_AFFECTED_KEYS}
GROUP BY project, generation_id
HAVING countIf(NOT supplement) > 0
"""

_OUTCOME_KEY = "(project, toDate(gen_ts), generation_id) IN " + _AFFECTED_KEYS

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


def _fold(rebuild: bool) -> str:
    """The statement that writes a day's new outcome versions. A rebuild starts from
    empty tables: every generation is new and nothing is live to cancel, which spares
    the two lookups in `outcomes` (a third of an incremental fold's time)."""
    is_first = "toUInt8(1)" if rebuild else (
        "toUInt8((g.project, g.generation_id) NOT IN ("
        f"SELECT project, generation_id FROM outcomes WHERE {_OUTCOME_KEY} AND is_first = 1))"
    )  # fmt: skip
    cancels = (
        ""
        if rebuild
        else f"""
    UNION ALL
    SELECT project, l_gen_ts, generation_id, version, toInt8(-1), toUInt8(0), l_model,
        l_prompt_version, l_metadata, l_latency_ms, l_output_tokens, l_cost_usd, l_accepted,
        l_vote, l_corrected, l_correction_similarity, l_survival, l_actions, l_scores
    FROM ({_LIVE})"""
    )
    return f"""
INSERT INTO outcomes ({_OUTCOME_COLUMNS})
SELECT {_OUTCOME_COLUMNS} FROM (
    SELECT g.project AS project, g.gen_ts AS gen_ts, g.generation_id AS generation_id,
        {{version:UInt64}} AS version, toInt8(1) AS sign, {is_first} AS is_first,
        g.model AS model, g.prompt_version AS prompt_version, g.metadata AS metadata,
        g.latency_ms AS latency_ms, g.output_tokens AS output_tokens, g.cost_usd AS cost_usd,
        toUInt8(f.accepted) AS accepted, f.vote AS vote, toUInt8(f.corrected) AS corrected,
        if(f.corrected AND g.captured,
           1 - editDistanceUTF8(g.output, f.correction)
               / greatest(lengthUTF8(g.output), lengthUTF8(f.correction), 1),
           NULL) AS correction_similarity,
        f.survival AS survival, f.actions AS actions, f.scores AS scores
    FROM ({_GENERATIONS}) AS g
    LEFT JOIN ({_FEEDBACK}) AS f
        ON g.project = f.project AND g.generation_id = f.generation_id{cancels}
)
WHERE {Fence.condition}
"""


_FOLD = _fold(rebuild=False)
_REBUILD_FOLD = _fold(rebuild=True)

_WINDOW = (
    "inserted_at > {since:DateTime64(3, 'UTC')} AND inserted_at <= {until:DateTime64(3, 'UTC')}"
)


@dataclass(frozen=True)
class RunResult:
    """What one run did."""

    since: datetime
    until: datetime
    generations: int
    """Generations whose outcome was recomputed."""
    days: int
    """Cohort days they belong to (one fold query each)."""
    seconds: float


class Deposed(Exception):
    """The run's lease term is no longer the newest: another runner took over."""


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
        started = time.perf_counter()
        store = self._store
        if full and store.cluster is None:
            # TRUNCATE cannot carry the fence: check just before (a new holder also
            # kills what still runs of an older term when it takes over).
            if not fence.holds(store):
                raise Deposed(f"lease term {fence.term} was superseded")
            for table in ("outcomes", "outcomes_hourly", "analytics_state"):
                store.command(f"TRUNCATE TABLE {table}", settings=fence.settings())
        # On a cluster, TRUNCATE through a Distributed table empties nothing on the shards:
        # the rebuild refolds every generation from the epoch instead, cancelling the
        # outcomes they had (exact, as every refold is).
        since = EPOCH if full else self.watermark()
        until = utc(
            store.scalar(
                "SELECT now64(3, 'UTC') - toIntervalMillisecond({lag:UInt32})",
                {"lag": int(self.lag_s * 1000)},
            )
        )
        # The run's staging partition, and the version of the outcomes it writes.
        run = time.time_ns()
        self._drop_staging()  # what crashed or deposed runs left
        try:
            days = self._collect({"since": since, "until": until, "run": run}, fence)
            fenced = {"run": run, "version": run, "accept": self._accept, **fence.params}
            # A rebuild on one server starts from the truncated tables above; on a cluster
            # nothing was truncated, so what is live must be cancelled as usual.
            fold = _REBUILD_FOLD if full and store.cluster is None else _FOLD
            for first, last in spans(days, FOLD_MAX_GENERATIONS):
                span = {"first": first, "last": last}
                store.command(fold, {**fenced, **span}, settings=fence.settings())
            touched = int(
                store.scalar(
                    "SELECT count() FROM analytics_run_generations WHERE run = {run:UInt64}",
                    {"run": run},
                )
                or 0
            )
            store.command(
                "INSERT INTO analytics_state (job, until) "
                f"SELECT {{j:String}}, {{u:DateTime64(3, 'UTC')}} WHERE {Fence.condition}",
                {"j": JOB, "u": until, **fence.params},
                settings=fence.settings(),
            )
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


def spans(days: list[tuple[date, int]], limit: int) -> list[tuple[date, date]]:
    """Consecutive `(day, generations)` grouped into `(first, last)` spans of at most
    `limit` generations each (a bigger day is a span of its own)."""
    grouped: list[tuple[date, date]] = []
    total = 0
    for day, count in days:
        if grouped and total + count <= limit:
            grouped[-1] = (grouped[-1][0], day)
            total += count
        else:
            grouped.append((day, day))
            total = count
    return grouped
