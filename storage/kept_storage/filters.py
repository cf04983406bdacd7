"""WHERE clauses over the columns that events and outcomes share: a time column, project,
model, prompt version and metadata.

Every value travels as a typed query parameter (`{name:Type}`), never as SQL text; only
column names and types, which come from code, are written into the clause. Reports and
exports select through this one builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Protocol


class Scope(Protocol):
    """Which generations a query is about (ReportSpec and ExportSpec are scopes)."""

    @property
    def project(self) -> str | None: ...

    @property
    def models(self) -> tuple[str, ...]: ...

    @property
    def prompt_versions(self) -> tuple[str, ...]: ...

    @property
    def metadata(self) -> Mapping[str, str]: ...


class Filters:
    """Conditions and their parameters, built side by side.

    The parameter names are fixed (`since`, `until`, `project`, `models`, `pvs`,
    `fk0`/`fv0`, ...), so two builders over the same scope give equal parameters and their
    clauses can share one query.
    """

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, condition: str, **params: Any) -> Filters:
        """One more condition, with the parameters it refers to."""
        self.conditions.append(condition)
        self.params.update(params)
        return self

    def window(
        self,
        column: str,
        since: date | None,
        until: date | None,
        sql_type: str = "DateTime64(3, 'UTC')",
        prefix: str = "",
    ) -> Filters:
        """`since <= column < until`; an open end when a bound is None. `prefix` names the
        parameters apart, for several windows in one query."""
        if since is not None:
            self.add(f"{column} >= {{{prefix}since:{sql_type}}}", **{f"{prefix}since": since})
        if until is not None:
            self.add(f"{column} < {{{prefix}until:{sql_type}}}", **{f"{prefix}until": until})
        return self

    def scope(self, scope: Scope) -> Filters:
        """The project, any of the models and prompt versions, all of the metadata."""
        if scope.project is not None:
            self.add("project = {project:String}", project=scope.project)
        if scope.models:
            self.add("model IN {models:Array(String)}", models=list(scope.models))
        if scope.prompt_versions:
            self.add("prompt_version IN {pvs:Array(String)}", pvs=list(scope.prompt_versions))
        for i, (key, value) in enumerate(sorted(scope.metadata.items())):
            self.add(
                f"metadata[{{fk{i}:String}}] = {{fv{i}:String}}", **{f"fk{i}": key, f"fv{i}": value}
            )
        return self

    def where(self, *extra: str) -> str:
        """The conditions and `extra` joined by AND; `1` when there are none."""
        return " AND ".join([*self.conditions, *extra]) or "1"
