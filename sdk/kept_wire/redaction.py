"""Default PII redaction: e-mail addresses, phone numbers and API keys become placeholders.

One definition for the two places text leaves kept's hands: the SDK (``Client(redact=
kept.redact_pii)``, before events leave the app) and the fine-tuning export.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Redactor = Callable[[str], str]
"""A redaction hook: takes a text, returns it with what must not leave replaced."""

# Order matters: keys first (they may contain digit runs that look like phone numbers).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"\b(?:sk|pk|rk|kept|ghp|gho|ghs|xox[abprs]|AKIA|AIza)[-_A-Za-z0-9]{12,}\b"
            r"|\bBearer\s+[-._~+/A-Za-z0-9]{16,}=*"
        ),
        "[API_KEY]",
    ),
    (
        re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        "[EMAIL]",
    ),
)
# International or national numbers of 8 to 15 digits, separators allowed; ISO dates
# (2026-11-21) and shorter numbers are left alone.
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d(?:[ .()-]{0,2}\d){7,14}(?![\w-])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone(match: re.Match[str]) -> str:
    return match[0] if _DATE.fullmatch(match[0]) else "[PHONE]"


def redact_pii(text: str) -> str:
    """Replace e-mail addresses, phone numbers and API keys with placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return _PHONE.sub(_phone, text)
