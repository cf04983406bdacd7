"""Request bodies: read within a limit, inflated and decoded off the event loop.

Inflating and validating a body costs CPU in proportion to what it holds, so it runs on
a small executor of its own: not on the event loop, which must keep answering every
other request (`/healthz` included), and not on the thread pool that FastAPI shares
with every synchronous dependency.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from fastapi import Request

from kept_ingest.decode import EventError, InvalidEvents

T = TypeVar("T")

_DRAIN_LIMIT = 8
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class BodyTooLarge(Exception):
    """The request body is over the route's limit (413); the message says which."""


async def read_raw(request: Request, limit: int) -> bytes:
    """The body as sent; BodyTooLarge past `limit` bytes."""
    declared = request.headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            # Read the rest before answering: a client still sending when the connection
            # closes sees a reset instead of the 413, and would retry forever.
            if size > _DRAIN_LIMIT * limit:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise BodyTooLarge(f"the body is larger than {limit} bytes")
    return b"".join(chunks)


def _invalid_gzip(message: str) -> InvalidEvents:
    return InvalidEvents([EventError(None, None, message)])


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body, gunzipped when `encoding` says gzip: one whole gzip member of at most
    `limit` bytes inflated (inflating stops there: BodyTooLarge), else InvalidEvents."""
    if (encoding or "").strip().lower() != "gzip":
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _invalid_gzip(f"invalid gzip body: {exc}") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(f"the body inflates to more than {limit} bytes")
    # A cut stream would otherwise store the events it held so far, and a second member
    # would be dropped unread: take the body whole or not at all.
    if not inflater.eof:
        raise _invalid_gzip("invalid gzip body: the stream ends before its end (truncated)")
    if inflater.unused_data:
        raise _invalid_gzip("invalid gzip body: data after the end of the gzip stream")
    return inflated


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="kept-decode")
        return _pool


async def off_loop(threads: int, fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on the decode executor (made with `threads` threads on first use)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(threads), partial(fn, *args))


async def read_body(request: Request, limit: int, threads: int) -> bytes:
    """The body, gunzipped when it says so (inflated off the loop); BodyTooLarge past
    `limit` bytes either way."""
    raw = await read_raw(request, limit)
    encoding = request.headers.get("content-encoding")
    if (encoding or "").strip().lower() != "gzip":
        return raw
    return await off_loop(threads, inflate, raw, encoding, limit)
