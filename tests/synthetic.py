"""Synthetic generations and feedback made inside the engine (INSERT ... SELECT), fast
enough for millions of rows: for incrementality tests and the analytics benchmark.

About 3.4 feedback events per generation: accept (quality by prompt version), copy,
regenerate, votes, survival scores at five checkpoints for accepted output, corrections.
"""

from __future__ import annotations

from datetime import datetime

from kept_storage import Store

# Generation n's time: spread evenly over the window.
_TS = (
    "{start:DateTime64(3)} + toIntervalMillisecond("
    "intDiv((n - {offset:UInt64}) * {span_ms:UInt64}, {count:UInt64}))"
)

_GENERATIONS = f"""
INSERT INTO generations (project, ts, generation_id, event_id, received_at, user_id, session_id,
    model, prompt_version, input_format, input, output_captured, output, latency_ms,
    input_tokens, output_tokens, cost_usd, metadata)
SELECT {{project:String}}, {_TS} AS ts, concat({{prefix:String}}, toString(n)),
    generateUUIDv4(n), ts,
    concat('user-', toString(n % 1000)), concat('s-', toString(intDiv(n, 4))),
    ['gpt-4o-mini', 'claude-3-5-haiku', 'llama-3.1-8b'][n % 3 + 1],
    ['summarize@1', 'summarize@2', 'reply@3', 'reply@4', 'extract@1'][intDiv(n, 3) % 5 + 1],
    'text', 'Summarise this support ticket.', true,
    concat('The customer reports that export ', toString(n % 997), ' fails on large files.'),
    toUInt32(100 + cityHash64(n, 1) % 2000), 400, toUInt32(50 + cityHash64(n, 2) % 200),
    0.0001 + (cityHash64(n, 3) % 100) / 1e6, map('app', ['bot', 'editor'][n % 2 + 1])
FROM (SELECT number + {{offset:UInt64}} AS n FROM numbers({{count:UInt64}}))
"""

_FEEDBACK = f"""
INSERT INTO feedback (project, ts, generation_id, type, event_id, received_at, user_id,
    session_id, name, value, text, comment, source, checkpoint_s)
SELECT {{project:String}}, gts + toIntervalSecond(e.4 + 1) AS ts, gid, e.1,
    generateUUIDv4(n), ts, '', '', e.2, e.3, e.5, '', '', e.4
FROM (
    SELECT n, concat({{prefix:String}}, toString(n)) AS gid, {_TS} AS gts,
        cityHash64(n, 10) % 100 < 40 + (intDiv(n, 3) % 5) * 5 AS accepted,
        arrayConcat(
            if(accepted, [('action', 'accept', CAST(NULL, 'Nullable(Float64)'), 0, '')], []),
            if(cityHash64(n, 11) % 100 < 10, [('action', 'copy', NULL, 0, '')], []),
            if(cityHash64(n, 12) % 100 < 10, [('action', 'regenerate', NULL, 0, '')], []),
            if(cityHash64(n, 13) % 100 < 20,
               [('vote', '', toNullable(if(cityHash64(n, 14) % 100 < 60, 1., -1.)), 0, '')], []),
            if(cityHash64(n, 15) % 100 < 5,
               [('correction', '', NULL, 0,
                 concat('The customer says export ', toString(n % 997), ' fails.'))], []),
            if(accepted, arrayMap(c -> ('survival', '', toNullable(
                greatest(0., 1 - c / 1200 - (cityHash64(n, c) % 30) / 100)), c, ''),
                [30, 120, 300, 600, 900]), [])
        ) AS events
    FROM (SELECT number + {{offset:UInt64}} AS n FROM numbers({{count:UInt64}}))
)
ARRAY JOIN events AS e
"""


def load(
    store: Store,
    count: int,
    start: datetime,
    end: datetime,
    *,
    project: str = "bench",
    prefix: str = "g",
    offset: int = 0,
) -> None:
    """`count` generations spread evenly over [start, end), with their feedback."""
    params = {
        "project": project,
        "prefix": prefix,
        "start": start,
        "span_ms": int((end - start).total_seconds() * 1000),
        "count": count,
        "offset": offset,
    }
    store.command(_GENERATIONS, params)
    store.command(_FEEDBACK, params)
