"""kept's schema on a ClickHouse cluster: every plain migration statement, rendered for it.

With `KEPT_CLICKHOUSE_CLUSTER` (a cluster of the servers' `<remote_servers>`):
- a MergeTree-family table `t` becomes `t_local` on every node, plus `t`, a Distributed
  table over them, so every query kept runs keeps its table names. A table with `project`
  and `generation_id` columns is sharded by them: all rows of a generation share a shard,
  so its outcome folds shard-locally. Any other table (keys, job state, leases) is small
  and lives whole on the first shard, so an insert deduplication token still acts on one
  table there ("first insert wins" stays atomic across the cluster).
- a materialized view reads and writes the local tables of its own shard.
- replicated (`KEPT_CLICKHOUSE_REPLICATED`, the default; needs ClickHouse Keeper): DDL runs
  `ON CLUSTER`, engines become `Replicated*MergeTree` with one replica path per shard.
- not replicated (shards without replicas, no Keeper): the same statements without
  `ON CLUSTER`, so `kept migrate` runs against every node in turn.
Without the setting the plain statements run unchanged (one server, embedded, Cloud).
Migrations are rendered in order, so an ALTER knows whether its table was sharded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LOCAL_SUFFIX = "_local"
GENERATION_KEY = "cityHash64(project, generation_id)"
FIRST_SHARD_KEY = "0"
"""A constant sharding key sends every row to the first shard."""
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"

QUERY_SETTINGS: dict[str, int | str] = {
    # An INSERT into a Distributed table returns once every shard has stored its rows
    # (the intake answers 202 only when events are durable; the default queues them).
    "distributed_foreground_insert": 1,
    # A subquery on a Distributed table inside a distributed query (the outcomes job's
    # `IN (SELECT ... FROM analytics_run_generations)`) is computed once on the initiator
    # and sent to the shards: exact whatever the sharding (the default refuses it).
    "distributed_product_mode": "global",
    # INSERT INTO a Distributed table SELECT FROM another: route every row by the target's
    # sharding key. ClickHouse's default (2) inserts on the shard the row was read from,
    # whatever the target's key, which breaks a small table's "whole on the first shard".
    "parallel_distributed_insert_select": 0,
}
"""Settings of every query in cluster mode (clickhouse.py sends them)."""


@dataclass(frozen=True)
class Cluster:
    """A ClickHouse cluster kept's schema is spread over."""

    name: str
    replicated: bool = True
    """Replicated*MergeTree engines and ON CLUSTER DDL, both of which need Keeper."""

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.name}`" if self.replicated else ""


class ClusterRenderError(ValueError):
    """A migration statement has a shape the cluster rendering does not know."""


_IDENT = r"`?(\w+)`?"
_IF_NOT_EXISTS = r"(IF\s+NOT\s+EXISTS\s+)?"
_CREATE_TABLE = re.compile(rf"CREATE\s+TABLE\s+{_IF_NOT_EXISTS}{_IDENT}\s*(\(.*)", re.S | re.I)
_CREATE_MV = re.compile(
    rf"CREATE\s+MATERIALIZED\s+VIEW\s+{_IF_NOT_EXISTS}{_IDENT}\s+TO\s+{_IDENT}\s+(.*)", re.S | re.I
)
_CREATE_VIEW = re.compile(
    rf"CREATE\s+(OR\s+REPLACE\s+)?VIEW\s+{_IF_NOT_EXISTS}{_IDENT}\s+(.*)", re.S | re.I
)
_ALTER = re.compile(rf"ALTER\s+TABLE\s+{_IDENT}\s+(.*)", re.S | re.I)
_DROP = re.compile(rf"DROP\s+(TABLE|VIEW)\s+(IF\s+EXISTS\s+)?{_IDENT}(\s+SYNC)?\s*$", re.S | re.I)
_ON_LOCAL = re.compile(
    rf"(TRUNCATE\s+TABLE|OPTIMIZE\s+TABLE)\s+(IF\s+EXISTS\s+)?{_IDENT}(.*)", re.S | re.I
)
_PASS = re.compile(r"(INSERT|SELECT|WITH)\b", re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*)MergeTree\b", re.I)
_COLUMN_COMMAND = re.compile(r"(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
_SOURCE = re.compile(r"\b(FROM|JOIN)\s+`?(\w+)`?(\s+AS\s+\w+|\s+(\w+))?", re.I)
_NOT_ALIASES = frozenset(
    ("where", "prewhere", "group", "order", "limit", "having", "settings", "union", "final",
     "sample", "array", "left", "right", "inner", "outer", "full", "cross", "any", "all",
     "semi", "anti", "asof", "global", "join", "on", "using", "window", "qualify", "format",
     "paste", "except", "intersect")
)  # fmt: skip
"""Words after `FROM t` that are not an alias of t."""


def _closing(text: str, start: int) -> int:
    """The index of the parenthesis closing the one at `start` (quotes respected)."""
    depth, quote, i = 0, "", start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ClusterRenderError(f"unbalanced parentheses in: {text[:80]}")


def _split_top(text: str) -> list[str]:
    """`text` split at the commas outside parentheses and quotes."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'`\"":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


@dataclass
class ClusterSchema:
    """Renders migration statements in order for `cluster`; remembers what is sharded."""

    cluster: Cluster
    database: str
    sharded: set[str] = field(default_factory=set)

    def render(self, statement: str) -> list[str]:
        """The statements that do on the cluster what `statement` does on one server."""
        sql = statement.strip().rstrip(";").strip()
        on = self.cluster.on_cluster
        if match := _CREATE_TABLE.fullmatch(sql):
            return self._create_table(match[1] or "", match[2], match[3])
        if match := _CREATE_MV.fullmatch(sql):
            target, body = self._local(match[3]), _SOURCE.sub(self._local_source, match[4])
            return [f"CREATE MATERIALIZED VIEW {match[1] or ''}{match[2]}{on} TO {target} {body}"]
        if match := _CREATE_VIEW.fullmatch(sql):
            replace = match[1] or ""
            return [f"CREATE {replace}VIEW {match[2] or ''}{match[3]}{on} {match[4]}"]
        if match := _ALTER.fullmatch(sql):
            return self._alter(match[1], match[2])
        if match := _DROP.fullmatch(sql):
            kind, exists, name = match[1].upper(), match[2] or "", match[3]
            sync = " SYNC" if self.cluster.replicated else ""
            names = [name, name + LOCAL_SUFFIX] if name in self.sharded else [name]
            self.sharded.discard(name)
            return [f"DROP {kind} {exists}{n}{on}{sync}" for n in names]
        if match := _ON_LOCAL.fullmatch(sql):
            verb, exists, name, rest = match[1], match[2] or "", match[3], match[4]
            return [f"{verb} {exists}{self._local(name)}{on}{rest}"]
        if _PASS.match(sql):
            return [sql]  # data statements go through the Distributed tables as they are
        raise ClusterRenderError(f"no cluster rendering for: {sql[:120]}")

    def _local(self, name: str) -> str:
        return name + LOCAL_SUFFIX if name in self.sharded else name

    def _local_source(self, match: re.Match[str]) -> str:
        """`FROM t` in a view's query → `FROM t_local AS t` (aliases and keywords kept)."""
        keyword, name, alias, bare = match[1], match[2], match[3] or "", match[4]
        if name not in self.sharded:
            return match[0]
        if alias and (bare is None or bare.lower() not in _NOT_ALIASES):
            return f"{keyword} {name}{LOCAL_SUFFIX}{alias}"
        return f"{keyword} {name}{LOCAL_SUFFIX} AS {name}{alias}"

    def _create_table(self, exists: str, name: str, rest: str) -> list[str]:
        on = self.cluster.on_cluster
        engine = _ENGINE.search(rest, _closing(rest, 0))
        if engine is None:
            return [f"CREATE TABLE {exists}{name}{on} {rest}"]  # not MergeTree: one per node
        local = name + LOCAL_SUFFIX
        columns = {c.split()[0].strip("`") for c in _split_top(rest[1 : _closing(rest, 0)])}
        key = GENERATION_KEY if {"project", "generation_id"} <= columns else FIRST_SHARD_KEY
        self.sharded.add(name)
        distributed = f"Distributed(`{self.cluster.name}`, `{self.database}`, `{local}`, {key})"
        return [
            f"CREATE TABLE {exists}{local}{on} {self._engine(rest, engine)}",
            f"CREATE TABLE {exists}{name}{on} AS {local} ENGINE = {distributed}",
        ]

    def _engine(self, rest: str, engine: re.Match[str]) -> str:
        family = engine[1]
        if not self.cluster.replicated:
            return rest
        if family.lower().startswith(("replicated", "shared")):
            raise ClusterRenderError(f"write plain MergeTree engines in migrations, not {family}")
        args, end = "", engine.end()
        opening = len(rest) - len(rest[end:].lstrip())
        if rest[opening : opening + 1] == "(":
            close = _closing(rest, opening)
            args, end = rest[opening + 1 : close].strip(), close + 1
        replica = [f"'{REPLICA_PATH}'", f"'{REPLICA_NAME}'", *([args] if args else [])]
        rendered = f"ENGINE = Replicated{family}MergeTree({', '.join(replica)})"
        return rest[: engine.start()] + rendered + rest[end:]

    def _alter(self, name: str, commands: str) -> list[str]:
        on = self.cluster.on_cluster
        if name not in self.sharded:
            return [f"ALTER TABLE {name}{on} {commands}"]
        every = _split_top(commands)
        # Indexes, mutations and settings exist only on the MergeTree tables; a column
        # change applies to the Distributed table too, or its inserts would lack it.
        columns = [c for c in every if _COLUMN_COMMAND.match(c)]
        rendered = [f"ALTER TABLE {name}{LOCAL_SUFFIX}{on} {', '.join(every)}"]
        if columns:
            rendered.append(f"ALTER TABLE {name}{on} {', '.join(columns)}")
        return rendered


def render_migrations(
    migrations: list[list[str]], cluster: Cluster, database: str
) -> list[list[str]]:
    """Each migration's statements (in order) rendered for `cluster`."""
    schema = ClusterSchema(cluster, database)
    return [[out for statement in m for out in schema.render(statement)] for m in migrations]


def create_database(database: str, cluster: Cluster | None) -> str:
    on = cluster.on_cluster if cluster is not None else ""
    return f"CREATE DATABASE IF NOT EXISTS `{database}`{on}"
