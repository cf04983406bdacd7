"""A summary of what a store holds, for `kept status` and the admin API; whether inserts
work, for readiness."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from kept_ingest.keys import count_keys
from kept_storage import Store
from kept_storage.migrate import current_version


class ProjectCounts(BaseModel):
    project: str
    generations: int
    feedback: int


class StoreStatus(BaseModel):
    schema_version: int
    keys: int
    generations: int
    feedback: int
    projects: list[ProjectCounts]


def _counts(store: Store, table: str) -> dict[str, int]:
    # uniqExact(event_id): rows not yet collapsed by a merge must not count twice.
    rows = store.rows(f"SELECT project, uniqExact(event_id) FROM {table} GROUP BY project")
    return {str(p): int(n) for p, n in rows}


def store_status(store: Store) -> StoreStatus:
    generations = _counts(store, "generations")
    feedback = _counts(store, "feedback")
    projects = sorted(set(generations) | set(feedback))
    return StoreStatus(
        schema_version=current_version(store),
        keys=count_keys(store),
        generations=sum(generations.values()),
        feedback=sum(feedback.values()),
        projects=[
            ProjectCounts(project=p, generations=generations.get(p, 0), feedback=feedback.get(p, 0))
            for p in projects
        ],
    )


class InsertHealth:
    """Whether inserts into the store work, from the latest insert batches: a store that
    answers `SELECT 1` may still refuse every insert (disk full, read-only, broken
    table). Reads the outcomes counted in `kept_insert_batches_total`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._seen = (0.0, 0.0)
        self._healthy = True

    def _count(self, outcome: str) -> float:
        value = self._registry.get_sample_value("kept_insert_batches_total", {"outcome": outcome})
        return value or 0.0

    def healthy(self) -> bool:
        """False once a batch failed and none succeeded since; True again after one does."""
        ok, error = self._count("ok"), self._count("error")
        seen_ok, seen_error = self._seen
        if ok > seen_ok:
            self._healthy = True
        elif error > seen_error:
            self._healthy = False
        self._seen = (ok, error)
        return self._healthy
