"""Asking a kept server for a feedback token: what a web page needs to send feedback.

The app's server calls this while it renders the page that shows a generation; the
page's script (``/sdk.js``) then sends votes, actions and corrections for that one
generation without holding the project key. Unlike events, this is a synchronous
request: the page cannot render without its token.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

_USER_AGENT = "kept-python"


class FeedbackTokenError(Exception):
    """The server did not mint a token; the message says why (never the key)."""


def token_url(server_url: str) -> str:
    """``{server_url}/v1/feedback-tokens``; ValueError when it is not http(s)."""
    parts = urlsplit(server_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the kept server's URL must look like http(s)://host[:port]")
    return server_url.strip().rstrip("/") + "/v1/feedback-tokens"


def mint_feedback_token(
    url: str, api_key: str, generation_id: str, ttl_s: int | None, timeout: float
) -> str:
    """POST to ``url`` (from :func:`token_url`) and return the token; raises
    FeedbackTokenError for any failure."""
    body: dict[str, object] = {"generation_id": generation_id}
    if ttl_s is not None:
        body["ttl_s"] = ttl_s
    # token_url checked the scheme: http(s) only, never file: or others.
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise FeedbackTokenError(f"the server answered {exc.code}: {_message(exc)}") from None
    except (OSError, ValueError) as exc:
        raise FeedbackTokenError(f"cannot reach the server ({type(exc).__name__})") from None
    token = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(token, str):
        raise FeedbackTokenError("the server's answer has no token")
    return token


def _message(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
    except (OSError, ValueError):
        return error.reason if isinstance(error.reason, str) else "no details"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:200] if message else "no details"
