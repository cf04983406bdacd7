"""The fold: one statement that writes new outcome versions for a set of generations.

Both the incremental run (outcomes.py: the generations a run touched, by cohort-day
spans) and the rebuild (rebuild.py: every generation, by buckets of its id's hash) insert
with the statement built here, so the two compute every outcome the same way; only the
filters that choose the generations differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

from kept_analytics.lease import Fence
from kept_storage import Store, utc

JOB = "outcomes"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

INTO_VIEWS = {"parallel_view_processing": 1}
"""Settings of an INSERT into a table that feeds views (`outcomes` feeds the rollup).
Measured at 10M generations, the incremental run's fold (1,100 generations): 1.5-1.75 s
without, 0.9-1.0 s with; the same INSERT into a table without views took 0.7 s. There is
one view, so nothing else changes."""

OUTCOME_COLUMNS = (
    "project, gen_ts, generation_id, version, sign, is_first, model, prompt_version, metadata, "
    "latency_ms, output_tokens, cost_usd, accepted, vote, corrected, correction_similarity, "
    "survival, actions, scores"
)


def feedback(where: str) -> str:
    """One row per generation of the feedback rows `where` selects: of each (type, name,
    checkpoint), the latest event by (ts, event_id) counts.

    One aggregation per generation that collects its events, deduplicated with array
    functions: a generation has a handful, and grouping by (generation, type, name,
    checkpoint) first cost four times as much CPU (measured at 1M generations). Sorted by
    key, so maps and arrays come out the same whoever folds them. The dedup compares each
    event with the one before it in that order, in one pass (an `indexOf` per event cost 5%
    more of a rebuild's fold)."""
    return f"""
SELECT project, generation_id,
    max(type = 'action' AND name IN {{accept:Array(String)}}) AS accepted,
    countIf(type = 'correction') > 0 AS corrected,
    -- (type, name, checkpoint, ts, event_id, value, text): text matters for corrections only
    arrayReverseSort(e -> (e.1, e.2, e.3, e.4, e.5), groupArray((type, name, checkpoint_s, ts,
        event_id, value, if(type = 'correction', text, '')))) AS newest,
    arrayMap(e -> (e.1, e.2, e.3), newest) AS keys,
    -- the first of each key (its newest), compared with the key before it
    arrayReverse(arrayFilter((e, k, before, i) -> i = 1 OR k != before, newest, keys,
        arrayPushFront(arrayPopBack(keys), keys[1]), arrayEnumerate(keys))) AS latest,
    toInt8(arrayFirst(e -> e.1 = 'vote', latest).6) AS vote,
    arrayFirst(e -> e.1 = 'correction', latest).7 AS correction,
    arrayFilter(e -> e.1 = 'survival', latest) AS survived,
    mapFromArrays(arrayMap(e -> e.3, survived), arrayMap(e -> assumeNotNull(e.6), survived))
        AS survival,
    arrayMap(e -> e.2, arrayFilter(e -> e.1 = 'action', latest)) AS actions,
    arrayFilter(e -> e.1 = 'score', latest) AS scored,
    mapFromArrays(arrayMap(e -> e.2, scored), arrayMap(e -> assumeNotNull(e.6), scored))
        AS scores
FROM feedback
WHERE {where}
GROUP BY project, generation_id
"""


def generations(where: str, having: str = "") -> str:
    """One row per generation of the generation rows `where` selects (and `having`, an
    `AND ...` on the group, keeps).

    A generation's rows (a retry past the dedup window, an OTel span and its supplement)
    merge field by field: the first stored value that is set wins (argMin skips NULLs; the
    -If forms skip empty strings and maps). Only supplements: not a generation (yet)."""
    return f"""
SELECT project, generation_id, min(ts) AS gen_ts,
    argMin(model, inserted_at) AS model,
    argMinIf(prompt_version, inserted_at, prompt_version != '') AS prompt_version,
    argMinIf(metadata, inserted_at, notEmpty(metadata)) AS metadata,
    argMin(latency_ms, inserted_at) AS latency_ms,
    argMin(output_tokens, inserted_at) AS output_tokens, argMin(cost_usd, inserted_at) AS cost_usd,
    argMinIf(output, inserted_at, output_captured) AS output,
    max(output_captured) AS captured
FROM generations
WHERE {where}
GROUP BY project, generation_id
HAVING countIf(NOT supplement) > 0 {having}
"""


def generations_by_rows(where: str, first_day: str) -> str:
    """generations() of the rows `where` selects, for generations from `first_day` (an
    SQL date) on, when nearly every generation is a single row (the rebuild's spans): a
    single row is the generation as it is, and only generations of several rows are
    aggregated. Aggregating maps and strings is what costs (measured at 10M generations,
    a span of 167,000: 0.29 s against 0.95 s). A single row's fields are what the
    aggregation would give it: a supplement alone is no generation, an unset field stays
    unset. Generations of several rows are found by id alone (an id in two projects is
    aggregated, which is exact too): grouping by (project, id) cost twice as much."""
    several = (
        f"(SELECT generation_id FROM generations WHERE {where} "
        "GROUP BY generation_id HAVING count() > 1)"
    )
    return f"""
SELECT project, generation_id, ts AS gen_ts, model, prompt_version, metadata, latency_ms,
    output_tokens, cost_usd, output, output_captured AS captured
FROM generations
WHERE {where} AND toDate(ts) >= {first_day} AND NOT supplement
    AND generation_id NOT IN {several}
UNION ALL
{
        generations(
            f"{where} AND generation_id IN {several}",
            f"AND toDate(min(ts)) >= {first_day}",
        )
    }"""


def fold(
    generations_sql: str,
    feedback_where: str,
    is_first: str,
    cancels: str,
    into: str = "outcomes",
) -> str:
    """The INSERT into `into` of the new versions (`version` parameter) of the generations
    that `generations_sql` gives (`generations` or `generations_by_rows`), with their
    feedback (`feedback_where` must select at least all of it), `is_first` the expression
    of a new row's is_first (of `g.project` and `g.generation_id`) and `cancels` a
    `UNION ALL SELECT ...` of cancel rows ('' for none).
    Fenced. (Measured at 1M generations: one aggregation over a UNION ALL of both tables
    instead of the join took as much CPU and half again the memory.)"""
    return f"""
INSERT INTO {into} ({OUTCOME_COLUMNS})
SELECT {OUTCOME_COLUMNS} FROM (
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
    FROM ({generations_sql}) AS g
    LEFT JOIN ({feedback(feedback_where)}) AS f
        ON g.project = f.project AND g.generation_id = f.generation_id{cancels}
)
WHERE {Fence.condition}
"""


@dataclass(frozen=True)
class RunResult:
    """What one run did."""

    since: datetime
    until: datetime
    generations: int
    """Generations whose outcome was recomputed."""
    days: int
    """Cohort days they belong to."""
    seconds: float


class Deposed(Exception):
    """The run's lease term is no longer the newest: another runner took over."""


def run_until(store: Store, lag_s: float) -> datetime:
    """The run's watermark: rows the server stored up to `lag_s` ago."""
    return utc(
        store.scalar(
            "SELECT now64(3, 'UTC') - toIntervalMillisecond({lag:UInt32})",
            {"lag": int(lag_s * 1000)},
        )
    )


def record_watermark(store: Store, fence: Fence, until: datetime) -> None:
    """Rows inserted up to `until` are folded in (fenced)."""
    store.command(
        "INSERT INTO analytics_state (job, until) "
        f"SELECT {{j:String}}, {{u:DateTime64(3, 'UTC')}} WHERE {Fence.condition}",
        {"j": JOB, "u": until, **fence.params},
        settings=fence.settings(),
    )


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
