"""Admin API: what the CLI does through a running server that owns the data directory.

Authorised by the data directory's admin token: whoever can read the directory may
administer the store in it.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kept_ingest.keys import create_key
from kept_service.api import openapi
from kept_service.api.auth import AdminDep
from kept_service.runtime.status import StoreStatus, store_status
from kept_storage import migrate
from kept_wire.contract import PROJECT_PATTERN

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=openapi.refusals(401))


class KeyRequest(BaseModel):
    project: str = Field(pattern=PROJECT_PATTERN)


class KeyCreated(BaseModel):
    project: str
    key: str


class Migrated(BaseModel):
    applied: list[str]
    version: int


@router.post("/keys", status_code=201, responses=openapi.refusals(422))
async def create_project_key(body: KeyRequest, runtime: AdminDep) -> KeyCreated:
    """Create a project key; the key is returned once and only its hash is stored."""
    key = await run_in_threadpool(create_key, runtime.store, body.project)
    runtime.keys.add(key, body.project)
    return KeyCreated(project=body.project, key=key)


@router.post("/migrate")
async def run_migrations(runtime: AdminDep) -> Migrated:
    """Apply pending schema migrations."""
    applied = await run_in_threadpool(migrate, runtime.store)
    status = await run_in_threadpool(store_status, runtime.store)
    return Migrated(
        applied=[f"{m.version:04d}_{m.name}" for m in applied], version=status.schema_version
    )


@router.get("/status")
async def status(runtime: AdminDep) -> StoreStatus:
    """What the store holds: rows per table and project, schema version, keys."""
    return await run_in_threadpool(store_status, runtime.store)
