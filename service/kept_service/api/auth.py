"""Who may call a route: typed dependencies over the bearer credentials.

Three bearer credentials, declared as security schemes so that the OpenAPI document
says which route takes which: a project key (writes and reads its own project), the
admin token (everything), and a feedback token (one generation's feedback, see
feedback.py). A dependency answers with what the credential grants or raises
`ApiError`; reading routes take a key or the token (`ReaderDep`).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from kept_service.api.deps import RuntimeDep
from kept_service.api.errors import ApiError
from kept_service.api.origin import loopback_request, same_origin
from kept_service.runtime import Runtime

# auto_error=False: a missing credential is refused by the dependencies below, in the
# error body every route uses, not by FastAPI's own 403.
project_key = HTTPBearer(
    scheme_name="projectKey",
    description="A project key (`kept keys create`): writes and reads its project only.",
    auto_error=False,
)
admin_token = HTTPBearer(
    scheme_name="adminToken",
    description="The admin token (`KEPT_ADMIN_TOKEN`, else `DIR/admin-token`): any project.",
    auto_error=False,
)
feedback_token = HTTPBearer(
    scheme_name="feedbackToken",
    description="A feedback token (`POST /v1/feedback-tokens`): one generation's feedback.",
    auto_error=False,
)

KeyCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(project_key)]
AdminCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(admin_token)]
FeedbackCredentials = Annotated[HTTPAuthorizationCredentials | None, Security(feedback_token)]

BEARER = {"WWW-Authenticate": "Bearer"}
KEY_REQUIRED = "missing or invalid project key (Authorization: Bearer <key>)"
READER_REQUIRED = "a project key or the admin token is required"


# Stands for a presented but malformed credential: it matches nothing, and it is not
# "no credential" (which the page's loopback access allows).
_INVALID = "\x00"


def _token(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The bearer value; one that is not printable ASCII is no credential (every kept
    credential is, and `hmac.compare_digest` refuses non-ASCII text)."""
    if credentials is None:
        return None
    token = credentials.credentials
    return token if token.isascii() and token.isprintable() else _INVALID


def _is_admin(runtime: Runtime, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token.encode(), runtime.admin_token.encode())


async def _project_of(runtime: Runtime, token: str | None) -> str | None:
    """The project of a key; a lookup that must read the store runs off the event loop."""
    if not token:
        return None
    if runtime.keys.may_reload(token):
        return await asyncio.to_thread(runtime.keys.project_for, token)
    return runtime.keys.project_for(token)


async def _key_project(runtime: RuntimeDep, credentials: KeyCredentials) -> str:
    project = await _project_of(runtime, _token(credentials))
    if project is None:
        raise ApiError(401, "unauthorized", KEY_REQUIRED, headers=BEARER)
    return project


async def _intake_project(runtime: RuntimeDep, credentials: KeyCredentials) -> AsyncIterator[str]:
    try:
        project = await _key_project(runtime, credentials)
    except ApiError:
        runtime.metrics.events_rejected.labels("unknown", "unauthorized").inc()
        raise
    # From here the request is on its way to the writer: inserts wait for it while it
    # reads and decodes its body, so that concurrent clients share an insert.
    with runtime.writer.arriving():
        yield project


KeyProject = Annotated[str, Depends(_key_project)]
"""The project of the caller's project key; 401 without a valid key."""
IntakeProject = Annotated[str, Depends(_intake_project)]
"""As KeyProject, and a refusal counts as a rejected event (`reason="unauthorized"`);
while the request runs, the writer expects its rows (`BatchWriter.arriving`)."""


async def _admin(runtime: RuntimeDep, credentials: AdminCredentials) -> Runtime:
    if not _is_admin(runtime, _token(credentials)):
        raise ApiError(401, "unauthorized", "admin token required", headers=BEARER)
    return runtime


AdminDep = Annotated[Runtime, Depends(_admin)]
"""The runtime, for a caller with the admin token; 401 otherwise."""


@dataclass(frozen=True)
class Reader:
    """Who reads data: the admin token (any project) or a project key (`project` only)."""

    project: str | None


async def _as_reader(runtime: Runtime, token: str | None) -> Reader | None:
    if _is_admin(runtime, token):
        return Reader(project=None)
    own = await _project_of(runtime, token)
    return Reader(project=own) if own is not None else None


async def _reader(runtime: RuntimeDep, key: KeyCredentials, admin: AdminCredentials) -> Reader:
    # Both schemes read the same header; declaring both tells clients either will do.
    who = await _as_reader(runtime, _token(key) or _token(admin))
    if who is None:
        raise ApiError(401, "unauthorized", READER_REQUIRED, headers=BEARER)
    return who


ReaderDep = Annotated[Reader, Depends(_reader)]
"""A caller with a project key or the admin token; 401 otherwise."""

_PAGE_REQUIRED = f"{READER_REQUIRED} (or open the page on localhost)"


async def _page_reader(
    request: Request, runtime: RuntimeDep, key: KeyCredentials, admin: AdminCredentials
) -> Reader:
    token = _token(key) or _token(admin)
    who = await _as_reader(runtime, token)
    if who is not None:
        return who
    # Without a token, a client on the loopback interface reads everything: `kept serve`
    # on a laptop shows its dashboard with no set-up. Only when the browser addressed
    # the server by a loopback name and the request comes from its own page: a web page
    # elsewhere (or a DNS name rebound to 127.0.0.1) must not read the data.
    if token is None and loopback_request(request) and same_origin(request):
        return Reader(project=None)
    raise ApiError(401, "unauthorized", _PAGE_REQUIRED, headers=BEARER)


PageReaderDep = Annotated[Reader, Depends(_page_reader)]
"""As ReaderDep, and a keyless client on the loopback interface reads everything."""

Scoped = TypeVar("Scoped", bound=BaseModel)


def scope(spec: Scoped, who: Reader) -> Scoped:
    """`spec` limited to the reader's project (a project key asking for another: 403)."""
    if who.project is None:
        return spec
    if getattr(spec, "project", None) not in (None, who.project):
        raise ApiError(403, "forbidden", f"this key reads project {who.project!r} only")
    return spec.model_copy(update={"project": who.project})
