"""Selecting what to export: typed, parameterised SQL over the live outcome rows, joined
with the generations' text and their latest correction, streamed from the store.

Generations are read one cohort day at a time (the tables' sort keys begin with the
project and the day), so the engine's joins and sorts hold one day, never the history,
and rows reach Python in blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kept_analytics.export.spec import ExportSpec
from kept_storage import Store
from kept_storage.filters import Filters

# The default for SFT exports when no feedback filter is given: a user endorsed the text.
# A correction endorses the corrected text; otherwise acceptance or an up-vote, unless
# the latest vote is down.
ENDORSED = "(o_corrected = 1 OR ((o_accepted = 1 OR o_vote = 1) AND o_vote != -1))"

# DPO pairs from one prompt: a chosen output was up-voted or kept, a rejected one was
# down-voted or regenerated.
_GOOD = (
    "(o_vote = 1 OR (o_accepted = 1 AND {kept})) AND o_vote != -1 "
    "AND NOT has(o_actions, 'regenerate')"
)
_BAD = "(o_vote = -1 OR has(o_actions, 'regenerate'))"
PAIRS_PER_PROMPT = 8
PAIR_ROWS_PER_PASS = 100_000


@dataclass(frozen=True)
class Generation:
    """One generation with its outcome and text, as the formats need it."""

    generation_id: str
    project: str
    ts: datetime
    model: str
    prompt_version: str
    metadata: dict[str, str]
    accepted: bool
    vote: int
    corrected: bool
    survival: dict[int, float]
    scores: dict[str, float]
    actions: tuple[str, ...]
    input_format: str
    input: str
    output_captured: bool
    output: str
    correction: str


@dataclass(frozen=True)
class PromptGroup:
    """Outputs of one prompt that users liked and disliked (distinct, sorted)."""

    project: str
    input_format: str
    input: str
    chosen: tuple[str, ...]
    rejected: tuple[str, ...]


class _Selection:
    """What an export selects: the scope and window (Filters on `time_column`), and the
    feedback conditions on the live outcome rows (`o_*`), with one set of parameters."""

    def __init__(self, spec: ExportSpec, time_column: str) -> None:
        self.spec = spec
        self.base = Filters().window(time_column, spec.since, spec.until).scope(spec)
        self.params = self.base.params
        self.kept = "1"
        if spec.kept_at is not None:
            self.kept = (
                "mapContains(o_survival, {kept_at:UInt32}) "
                "AND o_survival[{kept_at:UInt32}] >= {threshold:Float64}"
            )
            self.params |= {"kept_at": spec.kept_at, "threshold": spec.threshold}
        self.feedback: list[str] = []
        if spec.accepted is not None:
            self.feedback.append("o_accepted = {accepted:UInt8}")
            self.params["accepted"] = int(spec.accepted)
        if spec.vote is not None:
            self.feedback.append("o_vote = {vote:Int8}")
            self.params["vote"] = spec.vote
        if spec.corrected is not None:
            self.feedback.append("o_corrected = {corrected:UInt8}")
            self.params["corrected"] = int(spec.corrected)
        if spec.kept_at is not None:
            self.feedback.append(f"o_accepted = 1 AND {self.kept}")
        for i, (score, minimum) in enumerate(sorted(spec.min_scores.items())):
            self.feedback.append(
                f"mapContains(o_scores, {{sn{i}:String}}) AND o_scores[{{sn{i}:String}}] >= "
                f"{{sv{i}:Float64}}"
            )
            self.params[f"sn{i}"], self.params[f"sv{i}"] = score, minimum

    def where(self, extra: str = "1") -> str:
        return self.base.where(extra)

    def project(self) -> str:
        """The project condition alone, for tables that the selected ids narrow further."""
        return "project = {project:String} AND " if self.spec.project is not None else ""


def _live(filters: _Selection, day: bool, only: str = "1") -> str:
    """The live outcome row of each generation in the window (and day, and `only`)."""
    where = filters.where(("toDate(gen_ts) = {day:Date}" if day else "1") + f" AND {only}")
    return f"""
    SELECT project, generation_id, any(gen_ts) AS o_ts, any(model) AS o_model,
        any(prompt_version) AS o_pv, any(metadata) AS o_metadata, any(accepted) AS o_accepted,
        any(vote) AS o_vote, any(corrected) AS o_corrected, any(survival) AS o_survival,
        any(scores) AS o_scores, any(actions) AS o_actions
    FROM outcomes WHERE {where}
    GROUP BY project, generation_id, version HAVING sum(sign) > 0
    """


def _texts(filters: _Selection, ids: str, day: bool) -> str:
    """The text of each selected generation: its first stored input and output, from
    whichever of its rows carries them (outcomes.py merges rows the same way)."""
    when = "toDate(ts) = {day:Date} AND " if day else ""
    if not day and filters.spec.since is not None:
        # a generation's first row is in the window, so all of its rows are on or after since
        when = "ts >= {since:DateTime64(3, 'UTC')} AND "
    return f"""
    SELECT project, generation_id,
        argMinIf(input_format, inserted_at, input_format != 'none') AS g_format,
        argMinIf(input, inserted_at, input_format != 'none') AS g_input,
        max(output_captured) AS g_captured,
        argMinIf(output, inserted_at, output_captured) AS g_output
    FROM generations WHERE {filters.project()}{when}generation_id IN ({ids})
    GROUP BY project, generation_id
    """


def _corrections(filters: _Selection, ids: str) -> str:
    """The latest correction of each corrected generation (the bloom filter on
    generation_id prunes; corrections come on or after the generation's day)."""
    return f"""
    SELECT project, generation_id, argMax(text, (ts, event_id)) AS c_text
    FROM feedback
    WHERE {filters.project()}type = 'correction' AND toDate(ts) >= {{day:Date}} - 1
        AND generation_id IN ({ids})
    GROUP BY project, generation_id
    """


def selection_sql(spec: ExportSpec, default: str, required: str) -> tuple[str, dict[str, Any]]:
    """One day's selected generations with text and correction, in time order. The
    caller's feedback filters apply, else the `default` condition; `required` always."""
    filters = _Selection(spec, "gen_ts")
    feedback = [*(filters.feedback or [default]), required]
    selected = f"SELECT * FROM ({_live(filters, day=True)}) WHERE {' AND '.join(feedback)}"
    ids = f"SELECT generation_id FROM ({selected})"
    corrected_ids = f"SELECT generation_id FROM ({selected}) WHERE o_corrected = 1"
    sql = f"""
    SELECT o.generation_id, o.project, o.o_ts, o.o_model, o.o_pv, o.o_metadata, o.o_accepted,
        o.o_vote, o.o_corrected, o.o_survival, o.o_scores, o.o_actions,
        g.g_format, g.g_input, g.g_captured, g.g_output, c.c_text
    FROM ({selected}) AS o
    INNER JOIN ({_texts(filters, ids, day=True)}) AS g
        ON g.project = o.project AND g.generation_id = o.generation_id
    LEFT JOIN ({_corrections(filters, corrected_ids)}) AS c
        ON c.project = o.project AND c.generation_id = o.generation_id
    ORDER BY o.o_ts, o.generation_id
    """
    return sql, filters.params


def _days(store: Store, spec: ExportSpec) -> list[date]:
    filters = _Selection(spec, "gen_ts")
    rows = store.rows(
        f"SELECT DISTINCT toDate(gen_ts) AS d FROM outcomes WHERE {filters.where()} ORDER BY d",
        filters.params,
    )
    return [r[0] for r in rows]


def generations(
    store: Store, spec: ExportSpec, default: str = "1", required: str = "1"
) -> Iterator[Generation]:
    """Every selected generation, oldest first, streamed day by day (see selection_sql)."""
    sql, params = selection_sql(spec, default, required)
    for day in _days(store, spec):
        for row in store.stream_rows(sql, params | {"day": day}):
            (gid, project, ts, model, pv, metadata, accepted, vote, corrected, survival,
             scores, actions, fmt, text, captured, output, correction) = row  # fmt: skip
            yield Generation(
                str(gid), str(project), ts, str(model), str(pv), dict(metadata),
                bool(accepted), int(vote), bool(corrected),
                {int(k): float(v) for k, v in survival.items()},
                {str(k): float(v) for k, v in scores.items()}, tuple(map(str, actions)),
                str(fmt), str(text), bool(captured), str(output), str(correction),
            )  # fmt: skip


def pairs_sql(spec: ExportSpec) -> tuple[str, dict[str, Any]]:
    """Prompts with at least one liked and one disliked captured output, and those
    outputs, for the prompts whose hash falls in `bucket` of `buckets`. Only prompts asked
    at least twice are read in full: finding them keeps a hash per prompt in memory, not
    the window's texts and outcomes."""
    filters = _Selection(spec, "gen_ts")
    on_generations = _Selection(spec, "ts")  # the same filters and parameter values
    repeated = f"""
    SELECT cityHash64(project, input_format, input) AS ph FROM generations
    WHERE {on_generations.where("output_captured AND input_format != 'none'")}
    GROUP BY ph HAVING count() >= 2 AND ph % {{buckets:UInt64}} = {{bucket:UInt64}}
    """
    candidates = f"""
    SELECT generation_id FROM generations
    WHERE {on_generations.where()} AND cityHash64(project, input_format, input) IN ({repeated})
    """
    live = _live(filters, day=False, only=f"generation_id IN ({candidates})")
    good = " AND ".join([_GOOD.format(kept=filters.kept), *filters.feedback])
    rows = f"""
    SELECT o.project AS project, g.g_format AS fmt, g.g_input AS input, g.g_output AS output,
        cityHash64(o.project, g.g_format, g.g_input) AS ph,
        ({good}) AS good, {_BAD} AS bad
    FROM ({_texts(filters, candidates, day=False)}) AS g
    INNER JOIN ({live}) AS o ON g.project = o.project AND g.generation_id = o.generation_id
    WHERE g.g_captured AND g.g_output != '' AND g.g_format != 'none'
    """
    sql = f"""
    SELECT any(project), any(fmt), any(input),
        arraySort(groupUniqArrayIf({PAIRS_PER_PROMPT})(output, good)) AS chosen,
        arraySort(groupUniqArrayIf({PAIRS_PER_PROMPT})(output, bad AND NOT good)) AS rejected
    FROM ({rows})
    GROUP BY ph HAVING length(chosen) > 0 AND length(rejected) > 0 ORDER BY ph
    """
    return sql, filters.params | on_generations.params


def repeated_count_sql(spec: ExportSpec) -> tuple[str, dict[str, Any]]:
    """How many generations share their prompt with another one."""
    on_generations = _Selection(spec, "ts")
    sql = f"""
    SELECT sum(n) FROM (
        SELECT count() AS n FROM generations
        WHERE {on_generations.where("output_captured AND input_format != 'none'")}
        GROUP BY cityHash64(project, input_format, input) HAVING n >= 2
    )
    """
    return sql, on_generations.params


def prompt_groups(store: Store, spec: ExportSpec) -> Iterator[PromptGroup]:
    """Prompts with liked and disliked outputs, for preference pairs. Prompts are read
    in buckets of their hash, each covering about PAIR_ROWS_PER_PASS generations, so the
    engine joins one bucket's texts and outcomes at a time."""
    count_sql, count_params = repeated_count_sql(spec)
    buckets = max(1, -(-int(store.scalar(count_sql, count_params) or 0) // PAIR_ROWS_PER_PASS))
    sql, params = pairs_sql(spec)
    for bucket in range(buckets):
        rows = store.stream_rows(sql, params | {"buckets": buckets, "bucket": bucket})
        for project, fmt, text, chosen, rejected in rows:
            yield PromptGroup(
                str(project),
                str(fmt),
                str(text),
                tuple(map(str, chosen)),
                tuple(map(str, rejected)),
            )
