"""The HTTP transport: ``POST {endpoint}/v1/events`` with a JSON array body.

One keep-alive connection; a request that meets a connection the server closed while
idle is sent once more on a new one. The status gives the outcome: 2xx sent, 401/403
unauthorized, 413 too large, 422 rejected (with the indices of the bad events),
408/425/429/5xx retry (after ``Retry-After`` when given), anything else fatal.

While the client's spool holds events, each request says how many bytes wait there
(``Kept-Spool-Bytes``), so that the intake can show clients that cannot deliver.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from kept_wire.contract import SPOOL_BYTES_HEADER

from .base import Outcome, Rejection, SendResult

MAX_RETRY_AFTER = 300.0
"""The request header with the client's spool backlog in bytes (README, "HTTP intake")."""
_USER_AGENT = "kept-python"
# Errors that mean "the server closed the idle keep-alive connection": worth one
# immediate retry on a fresh connection. A timeout is not one of them.
_STALE_CONNECTION = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


class HttpTransport:
    """``POST {endpoint}/v1/events`` with a JSON array body over one keep-alive connection."""

    def __init__(self, endpoint: str, api_key: str | None, timeout: float = 10.0) -> None:
        parts = urlsplit(endpoint.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the endpoint must look like http(s)://host[:port][/path]")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port  # raises ValueError for a malformed port
        self._path = parts.path.rstrip("/") + "/v1/events"
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT}
        if api_key:
            if not api_key.isprintable() or not api_key.isascii():
                raise ValueError("the API key has characters that cannot go in a header")
            self._headers["Authorization"] = f"Bearer {api_key}"
        try:  # checks the host now (no I/O) instead of failing on every send
            http.client.HTTPConnection(self._host, self._port)
        except http.client.InvalidURL:
            raise ValueError("the endpoint's host is not valid") from None
        self._conn: http.client.HTTPConnection | None = None
        self._backlog: Callable[[], int] | None = None

    def report_backlog(self, spool_bytes: Callable[[], int]) -> None:
        """Send ``spool_bytes()`` (bytes waiting in the client's spool) with each request
        while it is not 0."""
        self._backlog = spool_bytes

    def send(self, events: Sequence[bytes]) -> SendResult:
        """Send ``events`` as one request and interpret the answer."""
        body = json_array(events)
        reused = self._conn is not None
        try:
            try:
                status, retry_after, data = self._post(body)
            except _STALE_CONNECTION:
                if not reused:
                    raise
                self._disconnect()
                status, retry_after, data = self._post(body)
        except (OSError, http.client.HTTPException) as exc:
            self._disconnect()
            return SendResult(Outcome.RETRY, detail=f"connection error: {type(exc).__name__}")
        return _interpret(status, retry_after, data, len(events))

    def reset(self) -> None:
        """Drop the inherited connection; the next send reconnects."""
        self._disconnect()

    def close(self) -> None:
        """Close the connection."""
        self._disconnect()

    def _post(self, body: bytes) -> tuple[int, str | None, bytes]:
        conn = self._conn
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._conn = cls(self._host, self._port, timeout=self._timeout)
        conn.request("POST", self._path, body=body, headers=self._request_headers())
        response = conn.getresponse()
        data = response.read()  # read fully, or the connection cannot be reused
        if response.will_close:
            self._disconnect()
        return response.status, response.getheader("Retry-After"), data

    def _request_headers(self) -> dict[str, str]:
        backlog = self._backlog
        if backlog is None:
            return self._headers
        try:
            spool_bytes = int(backlog())
        except Exception:  # a report is a courtesy: it must never cost a send
            return self._headers
        if spool_bytes <= 0:
            return self._headers
        return {**self._headers, SPOOL_BYTES_HEADER: str(spool_bytes)}

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                conn.close()


def json_array(events: Sequence[bytes]) -> bytes:
    """``[e1,e2,...]`` in one copy of the events: a batch is about half a megabyte, and
    ``b"[" + b",".join(events) + b"]"`` copies it three times on the sender thread."""
    if len(events) < 2:
        return b"[" + b"".join(events) + b"]"
    return b",".join([b"[" + events[0], *events[1:-1], events[-1] + b"]"])


def _interpret(status: int, retry_after: str | None, data: bytes, count: int) -> SendResult:
    if 200 <= status < 300:
        return SendResult(Outcome.SENT)
    detail = f"HTTP {status}"
    if status in (401, 403):
        return SendResult(Outcome.UNAUTHORIZED, detail=detail)
    if status == 413:
        return SendResult(Outcome.TOO_LARGE, detail=detail)
    if status == 422:
        return SendResult(Outcome.REJECTED, rejections=_rejections(data, count), detail=detail)
    if status in (408, 425, 429) or status >= 500:
        return SendResult(Outcome.RETRY, retry_after=_retry_after(retry_after), detail=detail)
    return SendResult(Outcome.FATAL, detail=detail)


def _rejections(data: bytes, count: int) -> tuple[Rejection, ...]:
    """Parse ``{"errors": [{"index", "field", "message"}]}``; unreadable means all are bad."""
    found: list[Rejection] = []
    try:
        errors = json.loads(data)["errors"]
        for error in errors:
            index = error["index"]
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count:
                field, message = str(error.get("field", "")), str(error.get("message", ""))
                found.append(Rejection(index, field, message))
    except (ValueError, KeyError, TypeError, AttributeError):
        found = []
    if not found:
        unreadable = "the sink answered 422 without usable error indices"
        return tuple(Rejection(i, "", unreadable) for i in range(count))
    return tuple(found)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), clamped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
