"""How OTLP records become events (`KEPT_OTLP_*`): `kept serve` takes these settings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OtlpSettings(BaseSettings):
    """The attribute mapping of the OTLP receiver (README, "OpenTelemetry")."""

    model_config = SettingsConfigDict(env_prefix="KEPT_", extra="ignore")

    otlp_capture_content: bool = Field(
        True,
        description="Keep the messages of OTLP spans and events; false drops input and "
        "output text at the door (only metrics are stored).",
    )
    otlp_prompt_version_attributes: Annotated[tuple[str, ...], NoDecode] = Field(
        ("kept.prompt_version",),
        description="Span or resource attributes that carry the prompt version, first set "
        "wins (comma-separated).",
    )
    otlp_metadata_attributes: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Span or resource attributes stored as the generation's metadata, "
        "under their own names (comma-separated, e.g. service.name,deployment.environment).",
    )

    @field_validator("otlp_prompt_version_attributes", "otlp_metadata_attributes", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value
