"""Configuration of the kept server (`kept serve`), from `KEPT_*` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from kept_ingest.kafka_settings import KafkaSettings
from kept_ingest.otlp.settings import OtlpSettings
from kept_storage.datadir import DataDir
from kept_storage.settings import StoreSettings, with_overrides
from kept_wire.contract import (
    ACCEPT_ACTIONS_DEFAULT,
    KEPT_THRESHOLD_DEFAULT,
    SURVIVAL_CHECKPOINTS_DEFAULT,
)

REPLICA_SECRETS = {
    "admin_token": "the admin API must take the same token on every replica",
    "feedback_secret": "a feedback token minted by one replica must verify on the others",
}
"""The settings that replicas behind one address must share, and why: each made in the
data directory when unset, and refused unset in Kafka mode (the intake's replica mode)."""


class ServerSettings(KafkaSettings, OtlpSettings, StoreSettings):
    """Every setting has a default that runs on one machine with no configuration.

    The `KEPT_KAFKA*` fields come from KafkaSettings and the store's (`KEPT_DATA`,
    `KEPT_DSN`, ...) from StoreSettings, both shared with `kept consume`; the OTLP
    receiver's (`KEPT_OTLP_*`) from OtlpSettings.
    """

    host: str = "127.0.0.1"
    port: int = Field(8787, ge=1, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Larger bodies get 413.")
    max_events_per_request: int = Field(10_000, ge=1, description="More events get 413.")
    max_inflated_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="A gzip body stops inflating here and gets 413 (/v1/events).",
    )
    max_errors: int = Field(
        100, ge=1, description="Contract errors listed in a 422; the rest are only counted."
    )
    max_json_depth: int = Field(
        32, ge=4, le=200, description="Bodies nested deeper (arrays, objects) get 422."
    )
    decode_threads: int = Field(
        2, ge=1, description="Threads that inflate and validate bodies, off the event loop."
    )
    batch_max_rows: int = Field(50_000, ge=1, description="Most rows one insert carries.")
    pending_max_rows: int = Field(
        200_000, ge=1, description="Rows waiting for insert before intake answers 429."
    )
    batch_linger_ms: float = Field(
        200.0,
        ge=0,
        description="Longest a request waits for others to share its insert (each insert "
        "costs the store a part to write and merge): the writer waits only while fewer "
        "requests are queued than recent inserts carried, so a lone client never waits.",
    )
    create_demo_key: bool = Field(True, description="Create a `demo` project key on first start.")
    keys_reload_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often each server reloads project keys from the store: a key "
        "revoked or created elsewhere takes effect within it.",
    )
    accept_actions: Annotated[tuple[str, ...], NoDecode] = Field(
        ACCEPT_ACTIONS_DEFAULT,
        description="Action names that count as acceptance (comma-separated). "
        "Changing them needs `kept analytics run --full`.",
    )
    kept_threshold: float = Field(
        KEPT_THRESHOLD_DEFAULT,
        ge=0,
        le=1,
        description="Survival score from which output counts as kept.",
    )
    survival_checkpoints: Annotated[tuple[int, ...], NoDecode] = Field(
        SURVIVAL_CHECKPOINTS_DEFAULT, description="Checkpoints (seconds) that reports show."
    )
    analytics_interval_s: float = Field(
        10.0,
        ge=0,
        description="How often the outcomes job runs (kept serve, kept analytics run --every); "
        "0: kept serve runs no analytics runner.",
    )
    analytics_lag_s: float = Field(
        5.0,
        ge=0,
        description="The job leaves out rows inserted in the last seconds (inserts in flight).",
    )
    alert_rules: Path | None = Field(
        None,
        description="Alert rules (YAML): evaluated by the analytics lease holder after each "
        "outcomes run, and notified to the file's receivers. Read at start.",
    )
    analytics_lease_s: float = Field(
        20.0,
        ge=2,
        le=600,
        description="One process runs the analytics jobs at a time (a lease in the store); "
        "when it dies, another takes over within about 1.25 times this.",
    )
    admin_token: SecretStr | None = Field(
        None,
        validate_default=True,  # so that KEPT_KAFKA without it is refused
        description="Token of /v1/admin (at least 16 characters); default: generated in "
        "<data>/admin-token. Required with KEPT_KAFKA: replicas behind one address share it.",
    )
    feedback_secret: SecretStr | None = Field(
        None,
        validate_default=True,
        description="Secret that signs feedback tokens (at least 16 characters); default: "
        "generated in <data>/feedback-secret. Required with KEPT_KAFKA: replicas behind one "
        "address share it.",
    )
    feedback_token_ttl_s: int = Field(
        3600, ge=1, description="Lifetime of a feedback token when the request names none."
    )
    feedback_token_max_ttl_s: int = Field(
        7 * 86_400, ge=1, description="Longest lifetime a feedback token may be minted for."
    )
    feedback_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        ("*",),
        description="Web origins allowed to send feedback from a browser (comma-separated, "
        "e.g. https://app.example.com), or * for any.",
    )
    feedback_max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Larger /v1/feedback bodies get 413."
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Longer request lines and headers get 431."
    )
    max_headers: int = Field(100, ge=10, description="Requests with more headers get 431.")
    request_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A request's headers and body must arrive within this time (else 408).",
    )
    write_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A client that takes nothing of a response for this long is disconnected "
        "(an export it was reading is stopped).",
    )
    max_connections: int = Field(
        1000, ge=1, description="Open connections beyond this get 503 and are closed."
    )
    export_max_concurrent: int = Field(
        2, ge=1, description="Exports that run at once; more get 429 with Retry-After."
    )

    @field_validator("accept_actions", "survival_checkpoints", "feedback_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator(*REPLICA_SECRETS)
    @classmethod
    def _shared_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -base64 32`)")
        # `kafka` is validated before these fields (KafkaSettings' come first). In Kafka
        # mode the intake is meant to run as replicas behind one address: a secret that
        # each made for itself would make them refuse each other's tokens.
        if value is None and info.data.get("kafka"):
            raise ValueError(
                f"required with KEPT_KAFKA: {REPLICA_SECRETS[str(info.field_name)]}; set the "
                "same value on every kept serve (16+ characters, e.g. `openssl rand -base64 32`)"
            )
        return value

    @field_validator("feedback_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        origins = tuple(origin.rstrip("/") for origin in value)
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins

    @field_validator("feedback_token_max_ttl_s")
    @classmethod
    def _max_covers_default(cls, value: int, info: ValidationInfo) -> int:
        if value < info.data.get("feedback_token_ttl_s", 0):
            raise ValueError("must not be below KEPT_FEEDBACK_TOKEN_TTL_S")
        return value

    def feedback_key(self, data_dir: DataDir) -> bytes:
        """The secret that signs feedback tokens: the setting, or the data directory's."""
        if self.feedback_secret is not None:
            return self.feedback_secret.get_secret_value().strip().encode()
        return data_dir.feedback_secret()

    def admin_key(self, data_dir: DataDir) -> str:
        """The admin API's token: the setting, or the data directory's."""
        if self.admin_token is not None:
            return self.admin_token.get_secret_value().strip()
        return data_dir.admin_token()

    def unshared_secrets(self) -> list[str]:
        """The variables of REPLICA_SECRETS left unset: each then comes from the data
        directory, so it differs between replicas."""
        return [f"KEPT_{name.upper()}" for name in REPLICA_SECRETS if getattr(self, name) is None]


@lru_cache(maxsize=1)
def get_settings() -> ServerSettings:
    """The process's settings, read once from the environment."""
    return ServerSettings()


def settings_with(**overrides: object) -> ServerSettings:
    """The environment's settings with command-line values (those not None) on top."""
    return with_overrides(get_settings(), **overrides)
