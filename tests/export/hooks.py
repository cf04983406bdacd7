"""A custom redaction hook for the tests (`--redact tests.export.hooks:shout`)."""


def shout(text: str) -> str:
    return text.upper()
