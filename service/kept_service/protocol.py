"""uvicorn's httptools protocol with the limits it lacks, for `kept serve`.

httptools buffers a header of any size and uvicorn waits for a request for ever, so an
unauthenticated client could grow memory with one huge header, or hold connections
open with a request sent a byte at a time. Here, per connection:

- the request line and headers may take `max_header_bytes` and `max_headers` (431);
- a request, headers and body, must arrive within `request_timeout_s` of its first
  byte (or of the connection; 408, or the connection closes when the app already
  reads the body); long responses are unaffected;
- a client that takes nothing of a response for `write_timeout_s` is disconnected;
- past `max_connections` open connections, new ones get 503 and are closed.

Refusals carry the one error body of the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger("kept.http")


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    request_timeout_s: float
    write_timeout_s: float
    max_connections: int


class _TooLarge(Exception):
    """Raised in a parser callback; the parser turns it into its own error."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._deadline: asyncio.TimerHandle | None = None
        self._write_stall: asyncio.TimerHandle | None = None
        self._in_head = True
        self._head_left = self.limits.max_header_bytes
        self._header_count = 0
        self._too_large = False
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d are open", len(self.connections) - 1)
            self._refuse(503, "overloaded", "too many open connections; retry later", retry=True)
            return
        self._arm_deadline()  # waiting for the first request counts as reading it

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        self._disarm_write_stall()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            if len(data) > self._head_left:
                # Feed what the budget allows: headers that end within it go on as usual.
                head, data = data[: self._head_left], data[self._head_left :]
                self._head_left = 0
                if head:
                    super().data_received(head)
                if self._in_head and not self._refused:
                    self._too_large = True
                    self._refuse_too_large()
                    return
                if self._refused or not data:
                    return
            else:
                self._head_left -= len(data)
        super().data_received(data)

    # Parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._deadline is None:
            self._arm_deadline()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._too_large = True
            raise _TooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm_deadline()
        self._in_head = True
        self._head_left = self.limits.max_header_bytes
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse_too_large()
        else:
            super().send_400_response(msg)

    # Flow control: the transport's buffer is full while the client takes nothing.

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_stall is None:
            self._write_stall = self.loop.call_later(
                self.limits.write_timeout_s, self._on_write_stall
            )

    def resume_writing(self) -> None:
        self._disarm_write_stall()
        super().resume_writing()

    def _on_write_stall(self) -> None:
        self._write_stall = None
        log.warning(
            "closed a connection whose client took nothing for %gs", self.limits.write_timeout_s
        )
        self.transport.abort()  # close() would wait for the buffer to drain

    def _disarm_write_stall(self) -> None:
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None

    # The request deadline

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        self._deadline = self.loop.call_later(self.limits.request_timeout_s, self._on_deadline)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        timeout = self.limits.request_timeout_s
        if self._in_head:
            self._refuse(408, "request_timeout", f"the request did not arrive within {timeout:g}s")
        else:
            log.info("closed a connection whose request body did not arrive within %gs", timeout)
            self.transport.close()

    # Refusals

    def _refuse_too_large(self) -> None:
        limits = self.limits
        message = (
            f"the request line and headers exceed {limits.max_header_bytes} bytes "
            f"or {limits.max_headers} headers"
        )
        self._refuse(431, "headers_too_large", message)

    def _refuse(self, status: int, error: str, message: str, retry: bool = False) -> None:
        self._refused = True
        self._disarm_deadline()
        body = json.dumps({"error": error, "message": message}).encode()
        lines = [STATUS_LINE[status]]
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if retry:
            headers.append((b"retry-after", b"5"))
        for name, value in headers:
            lines += [name, b": ", value, b"\r\n"]
        lines += [b"\r\n", body]
        self.transport.write(b"".join(lines))
        self.transport.close()


def http_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """The protocol class for `uvicorn.Config(http=...)`, bound to `limits`."""
    return type("KeptHttpProtocol", (LimitedHttpToolsProtocol,), {"limits": limits})
