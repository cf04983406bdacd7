"""Admin API: what the CLI does through a running server that owns the data directory.

Authorised by the data directory's admin token: whoever can read the directory may
administer the store in it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kept_ingest.keys import create_key
from kept_service.api.deps import RuntimeDep, is_admin
from kept_service.runtime import Runtime
from kept_service.status import StoreStatus, store_status
from kept_storage import migrate
from kept_wire.contract import PROJECT_PATTERN


def _require_admin(request: Request, runtime: RuntimeDep) -> Runtime:
    if not is_admin(request, runtime):
        raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})
    return runtime


AdminDep = Annotated[Runtime, Depends(_require_admin)]
router = APIRouter(prefix="/v1/admin")


class KeyRequest(BaseModel):
    project: str = Field(pattern=PROJECT_PATTERN)


class KeyCreated(BaseModel):
    project: str
    key: str


class Migrated(BaseModel):
    applied: list[str]
    version: int


@router.post("/keys", status_code=201)
async def create_project_key(body: KeyRequest, runtime: AdminDep) -> KeyCreated:
    """Create a project key; the key is returned once and only its hash is stored."""
    key = await run_in_threadpool(create_key, runtime.store, body.project)
    runtime.keys.add(key, body.project)
    return KeyCreated(project=body.project, key=key)


@router.post("/migrate")
async def run_migrations(runtime: AdminDep) -> Migrated:
    applied = await run_in_threadpool(migrate, runtime.store)
    status = await run_in_threadpool(store_status, runtime.store)
    return Migrated(
        applied=[f"{m.version:04d}_{m.name}" for m in applied], version=status.schema_version
    )


@router.get("/status")
async def status(runtime: AdminDep) -> StoreStatus:
    """What the store holds: rows per table and project, schema version, keys."""
    return await run_in_threadpool(store_status, runtime.store)
