"""A summary of what a store holds, for `kept status` and the admin API."""

from __future__ import annotations

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
