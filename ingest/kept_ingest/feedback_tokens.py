"""Feedback tokens: short-lived, stateless credentials for one generation's feedback.

An app's server mints a token for a generation it has just shown (`POST
/v1/feedback-tokens` with its project key) and hands it to the web page, which sends
votes, actions and corrections for that generation only (`POST /v1/feedback`) without
ever holding the project key.

Format: `kft_` + base64url(JSON `{"p": project, "g": generation_id, "e": expiry}`) + `.`
+ base64url(HMAC-SHA256 of everything before the dot). Nothing is stored: any server
holding the same secret verifies a token, so replicas must share `KEPT_FEEDBACK_SECRET`.
Tokens are bearer tokens; revoking a project key does not revoke tokens already minted
(they expire); changing the secret revokes them all.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from kept_wire.contract import MAX_ID_CHARS

PREFIX = "kft_"
_MAX_PAYLOAD_CHARS = 12 * MAX_ID_CHARS + 200
"""The payload of the longest id, every character escaped as a UTF-16 surrogate pair
(12 ASCII characters; the page's snippet reads the payload with `atob`, so it stays
ASCII), plus far more than a project name, an expiry and the JSON around them need."""
MAX_TOKEN_CHARS = len(PREFIX) + 4 * math.ceil(_MAX_PAYLOAD_CHARS / 3) + 1 + 43
"""Above any token that `mint_token` issues (it refuses to issue a longer one); longer
input is refused before any decoding work."""
_MAC_CONTEXT = b"kept feedback token v1\n"
"""Mixed into the MAC so that a signature made with the same secret for anything else
can never pass as a token."""


class FeedbackTokenError(Exception):
    """A token that does not authorise anything; `reason` is a short machine code."""

    reason = "invalid_token"


class MalformedToken(FeedbackTokenError):
    reason = "malformed_token"


class BadSignature(FeedbackTokenError):
    reason = "bad_signature"


class ExpiredToken(FeedbackTokenError):
    reason = "expired_token"


class TokenTooLong(ValueError):
    """The token for this id and lifetime would be longer than verification accepts."""


@dataclass(frozen=True)
class FeedbackGrant:
    """What a valid token allows: feedback on one generation of one project, until then."""

    project: str
    generation_id: str
    expires_at: int
    """Unix seconds."""

    @property
    def expires_at_rfc3339(self) -> str:
        return datetime.fromtimestamp(self.expires_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # Strict alphabet: the lenient default would skip stray characters, so that many
    # spellings of one token verified.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(secret: bytes, signed: str) -> bytes:
    return hmac.new(secret, _MAC_CONTEXT + signed.encode("ascii"), hashlib.sha256).digest()


def mint_token(
    secret: bytes, project: str, generation_id: str, ttl_s: int, now: float | None = None
) -> tuple[str, FeedbackGrant]:
    """A token for feedback on `generation_id` of `project`, valid for `ttl_s` seconds."""
    if not secret:
        raise ValueError("the feedback secret is empty")
    issued = int(time.time() if now is None else now)
    grant = FeedbackGrant(project, generation_id, issued + ttl_s)
    payload = json.dumps(
        {"p": project, "g": generation_id, "e": grant.expires_at},
        separators=(",", ":"),
        ensure_ascii=True,
    )
    signed = PREFIX + _b64encode(payload.encode("ascii"))
    token = signed + "." + _b64encode(_mac(secret, signed))
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenTooLong(f"a token for this id would be over {MAX_TOKEN_CHARS} characters")
    return token, grant


def verify_token(secret: bytes, token: str, now: float | None = None) -> FeedbackGrant:
    """The grant a token carries; raises MalformedToken, BadSignature or ExpiredToken."""
    if not token.startswith(PREFIX) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise MalformedToken("not a feedback token (expected kft_...)")
    signed, dot, signature = token.rpartition(".")
    if not dot or not signed:
        raise MalformedToken("malformed feedback token")
    try:
        given = _b64decode(signature)
    except (binascii.Error, ValueError):
        given = b""
    # One spelling per token: padding or stray low bits would make others verify too.
    if not given or _b64encode(given) != signature:
        raise MalformedToken("malformed feedback token signature")
    # The signature is checked before the payload is parsed: nothing an attacker wrote
    # is interpreted unless the server itself signed it.
    if not hmac.compare_digest(given, _mac(secret, signed)):
        raise BadSignature(
            "the feedback token's signature is wrong (tampered, or minted with another secret)"
        )
    try:
        payload = json.loads(_b64decode(signed[len(PREFIX) :]))
        grant = FeedbackGrant(str(payload["p"]), str(payload["g"]), int(payload["e"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise MalformedToken("malformed feedback token payload") from None
    if grant.expires_at <= (time.time() if now is None else now):
        raise ExpiredToken(f"the feedback token expired at {grant.expires_at_rfc3339}")
    return grant
