"""`GET /sdk.js`: the browser snippet that sends feedback with a feedback token."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

router = APIRouter()


@lru_cache(maxsize=1)
def _snippet() -> tuple[str, str]:
    text = (resources.files("kept_service") / "static" / "sdk.js").read_text("utf-8")
    return text, '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


@router.get("/sdk.js", include_in_schema=False)
async def sdk_js(request: Request) -> Response:
    """The browser snippet; `<script src="https://kept.example/sdk.js">` defines `kept`."""
    text, etag = _snippet()
    # Public code: any page may load it, also with `crossorigin` and integrity checks.
    headers = {
        "Cache-Control": "public, max-age=3600",
        "ETag": etag,
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(text, media_type="application/javascript", headers=headers)
