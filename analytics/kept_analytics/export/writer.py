"""Writing an export: NDJSON files (train and a sibling validation file when split),
written under a temporary name and renamed at the end, with a progress line on a
terminal."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def line(record: dict[str, Any]) -> str:
    """One NDJSON line (UTF-8 text, no ASCII escaping)."""
    return _ENCODE(record) + "\n"


def validation_path(out: Path) -> Path:
    """The validation file next to `out`: `sft.jsonl` → `sft.validation.jsonl`."""
    return out.with_name(f"{out.stem}.validation{out.suffix or '.jsonl'}")


class Progress:
    """`exported N examples (R/s)` on stderr, redrawn at most 4 times a second, only when
    stderr is a terminal."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._started = self._last = time.monotonic()
        self._shown = False

    def update(self, count: int) -> None:
        now = time.monotonic()
        if self._enabled and now - self._last >= 0.25:
            self._last = now
            rate = count / max(now - self._started, 1e-9)
            self._stream.write(f"\rexported {count:,} examples ({rate:,.0f}/s)")
            self._stream.flush()
            self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()


def write(
    records: Iterable[tuple[str, dict[str, Any]]],
    out: Path,
    split: bool,
    progress: Progress | None = None,
) -> list[Path]:
    """Write train records to `out` and, with `split`, validation records to the sibling
    file; returns the files written. Nothing is left under the final names on failure."""
    paths = {"train": out}
    if split:
        paths["validation"] = validation_path(out)
    temps = {part: p.with_name(f".{p.name}.partial") for part, p in paths.items()}
    files = {part: t.open("w", encoding="utf-8") for part, t in temps.items()}
    try:
        for count, (part, record) in enumerate(records, 1):
            files[part].write(line(record))
            if progress is not None and count % 1024 == 0:
                progress.update(count)
        for f in files.values():
            f.close()
        for part, temp in temps.items():
            os.replace(temp, paths[part])
    finally:
        for f in files.values():
            f.close()
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        if progress is not None:
            progress.close()
    return list(paths.values())
