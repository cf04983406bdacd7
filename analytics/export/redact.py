"""PII redaction applied to every text an export emits, before it leaves the store.

The default replaces e-mail addresses, phone numbers and API keys/tokens with
placeholders. A custom hook is any `str -> str` callable named `package.module:function`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

Redactor = Callable[[str], str]

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


def default_redact(text: str) -> str:
    """Replace e-mail addresses, phone numbers and API keys with placeholders."""
    for pattern, placeholder in _PATTERNS:
        text = pattern.sub(placeholder, text)
    return _PHONE.sub(_phone, text)


def no_redact(text: str) -> str:
    """Leave the text as it is (`--no-redact`)."""
    return text


def load_redactor(path: str) -> Redactor:
    """The callable at `package.module:function`; a clear ValueError otherwise."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"a redaction hook is given as package.module:function, not {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"cannot import the redaction hook's module {module_name!r}: {exc}"
        ) from None
    hook = getattr(module, attr, None)
    if not callable(hook):
        raise ValueError(f"{path!r} is not a callable")

    def redact(text: str) -> str:
        result = hook(text)
        if not isinstance(result, str):
            raise TypeError(f"the redaction hook {path} returned {type(result).__name__}, not str")
        return result

    return redact
