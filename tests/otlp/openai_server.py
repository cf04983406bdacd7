"""A small OpenAI-compatible chat-completions server for the instrumentation tests.

The real `openai` client calls it over HTTP, so the instrumentations see real responses
(ids, model, usage) and time a real round trip. Each answer waits `DELAY_S`, so the
latency kept stores from the span has a known floor. Token counts are words, so the
test can work out what the instrumentations report without asking the server.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini-2024-07-18"
"""The model every answer names (requests ask for `gpt-4o-mini`, as real apps do)."""
DELAY_S = 0.08


def reply_to(messages: list[dict[str, Any]]) -> str:
    """The assistant's text: derived from the last user message, so each call differs."""
    last: dict[str, Any] = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    return f"You said: {last.get('content', '')}"


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


def completion_tokens(text: str) -> int:
    return len(text.split())


def completion(request: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` object answering `request` (its `messages`)."""
    messages = request.get("messages", [])
    text = reply_to(messages)
    usage = {
        "prompt_tokens": prompt_tokens(messages),
        "completion_tokens": completion_tokens(text),
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "system_fingerprint": "fp_kept_test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def stream_chunks(answer: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """`answer` as `chat.completion.chunk` objects: the role, the text word by word, the
    finish reason, then (when asked for) a last chunk with the usage and no choices."""
    text = answer["choices"][0]["message"]["content"]
    words = text.split(" ")
    pieces = [word if i == 0 else " " + word for i, word in enumerate(words)]
    deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""}, None)]
    deltas += [({"content": piece}, None) for piece in pieces]
    deltas.append(({}, "stop"))
    base = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint")}
    chunks = [
        {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}],
        }
        for delta, reason in deltas
    ]
    if include_usage:
        chunks.append(
            {**base, "object": "chat.completion.chunk", "choices": [], "usage": answer["usage"]}
        )
    return chunks


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid"}})
            return
        try:
            request = json.loads(body)
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON", "type": "invalid"}})
            return
        time.sleep(DELAY_S)
        answer = completion(request)
        if request.get("stream"):
            include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
            self._stream(stream_chunks(answer, include_usage))
        else:
            self._send(200, answer)

    def _stream(self, chunks: list[dict[str, Any]]) -> None:
        """Server-sent events, one per chunk, then `[DONE]`; the connection closes at the
        end (no Content-Length), as a streamed answer's does."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.close_connection = True

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows the test's own output, not one line per request."""


@contextmanager
def openai_server() -> Iterator[str]:
    """The server on a free loopback port; yields its base URL (`.../v1`, as the
    client's `base_url` takes it)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
