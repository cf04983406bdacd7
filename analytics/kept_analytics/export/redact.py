"""PII redaction applied to every text an export emits, before it leaves the store.

The default replaces e-mail addresses, phone numbers and API keys/tokens with
placeholders. A custom hook is any `str -> str` callable named `package.module:function`.
"""

from __future__ import annotations

import importlib

from kept_wire.redaction import Redactor
from kept_wire.redaction import redact_pii as default_redact

__all__ = ["Redactor", "default_redact", "load_redactor", "no_redact"]


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
