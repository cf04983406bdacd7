"""Admin API: what the CLI does through a running server that owns the data directory.

Authorised by the admin token: `KEPT_ADMIN_TOKEN`, the same on every replica behind one
address (required in Kafka mode), else the data directory's, so that whoever can read the
directory may administer the store in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kept_ingest.keys import (
    KEY_ID_PATTERN,
    KeyRecord,
    UnknownKey,
    create_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from kept_service.api import openapi
from kept_service.api.auth import AdminDep
from kept_service.api.errors import ApiError
from kept_service.runtime.status import StoreStatus, store_status
from kept_storage import migrate
from kept_wire.contract import PROJECT_PATTERN

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=openapi.refusals(401))


class KeyRequest(BaseModel):
    project: str = Field(pattern=PROJECT_PATTERN)


class KeyCreated(BaseModel):
    project: str
    key: str


class KeyInfo(BaseModel):
    """A key as listed: never its secret, nor the secret's hash."""

    key_id: str
    project: str
    created_at: datetime
    revoked: bool

    @classmethod
    def of(cls, record: KeyRecord) -> KeyInfo:
        return cls(
            key_id=record.key_id,
            project=record.project,
            created_at=record.created_at,
            revoked=record.revoked,
        )


class KeyList(BaseModel):
    keys: list[KeyInfo]


class KeyRotated(BaseModel):
    project: str
    key: str
    """The new key, shown once."""
    revoked: KeyInfo


KeyId = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The 12 characters after `kept_`.")]
_NO_KEY = openapi.refusals(404, 422, e404="`not_found`: no key has this id")


class Migrated(BaseModel):
    applied: list[str]
    version: int


@router.post("/keys", status_code=201, responses=openapi.refusals(422))
async def create_project_key(body: KeyRequest, runtime: AdminDep) -> KeyCreated:
    """Create a project key; the key is returned once and only its hash is stored."""
    key = await run_in_threadpool(create_key, runtime.store, body.project)
    runtime.keys.add(key, body.project)
    return KeyCreated(project=body.project, key=key)


@router.get("/keys", responses=openapi.refusals(422))
async def get_keys(
    runtime: AdminDep, project: Annotated[str | None, Query(pattern=PROJECT_PATTERN)] = None
) -> KeyList:
    """Every key (or a project's): id, project, creation time, revoked. Never secrets."""
    records = await run_in_threadpool(list_keys, runtime.store, project)
    return KeyList(keys=[KeyInfo.of(r) for r in records])


@router.post("/keys/{key_id}/revoke", responses=_NO_KEY)
async def revoke_project_key(key_id: KeyId, runtime: AdminDep) -> KeyInfo:
    """Revoke a key: refused here at once, by other servers on the store within
    `KEPT_KEYS_RELOAD_S`."""
    try:
        record = await run_in_threadpool(revoke_key, runtime.store, key_id)
    except UnknownKey as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    runtime.keys.forget(key_id)
    return KeyInfo.of(record)


@router.post("/keys/{key_id}/rotate", responses=_NO_KEY)
async def rotate_project_key(key_id: KeyId, runtime: AdminDep) -> KeyRotated:
    """A new key for the key's project (returned once), and the old key revoked."""
    try:
        key, old = await run_in_threadpool(rotate_key, runtime.store, key_id)
    except UnknownKey as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    runtime.keys.add(key, old.project)
    runtime.keys.forget(key_id)
    return KeyRotated(project=old.project, key=key, revoked=KeyInfo.of(old))


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
