"""The facts of the public event contract that every side shares (README, "Event contract").

Standard library only: the SDK checks the app's arguments against these, the server
validates events against them (`kept_ingest.contract` builds its models from them), and
reports and dashboards take their defaults from them.
"""

from __future__ import annotations

CONTRACT_VERSION = 1

SPOOL_BYTES_HEADER = "Kept-Spool-Bytes"
"""The request header in which the SDK's HTTP transport reports the bytes waiting in its
disk spool; the intake shows it per project (`kept_client_spool_bytes`)."""
EVENT_TYPES = ("generation", "vote", "action", "correction", "survival", "score")
SCORE_SOURCES = ("human", "llm", "code")

PROJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A project name: what a key is for, a Kafka message's `project`, a report filter."""

SURVIVAL_CHECKPOINTS_DEFAULT: tuple[int, ...] = (30, 120, 300, 600, 900)
"""Seconds after an accept at which survival is measured (as GitHub Copilot does)."""

ACCEPT_ACTIONS_DEFAULT: tuple[str, ...] = ("accept", "copy")
"""Action names that count as acceptance unless configured otherwise."""

KEPT_THRESHOLD_DEFAULT = 0.5
"""The survival score from which accepted output counts as kept."""

MAX_TEXT_CHARS = 1_000_000
"""Input, output, correction text: about 250k tokens, more than any context window in use."""
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 200
MAX_COMMENT_CHARS = 10_000
MAX_MESSAGES = 1_000
MAX_METADATA_KEYS = 64
MAX_METADATA_VALUE_CHARS = 2_000
MAX_EVENTS_PER_MESSAGE = 10_000
"""Most events one Kafka message (a JSON array of them) may carry."""
