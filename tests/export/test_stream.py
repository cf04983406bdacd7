"""The pieces that keep an export's memory flat and its files whole: block streaming from
the store, the writer's all-or-nothing files, the terminal-only progress line."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kept_analytics.export import validation_path, write
from kept_analytics.export.writer import Progress
from tests.helpers import InProcessServer


def test_stream_rows_in_blocks_and_stop_early(server: InProcessServer) -> None:
    store = server.runtime.store
    sql = "SELECT number, toString(number) FROM numbers({n:UInt64})"
    rows = store.stream_rows(sql, {"n": 250_000}, block_rows=1000)
    assert sum(1 for _ in rows) == 250_000
    first = store.stream_rows(sql, {"n": 10_000_000}, block_rows=1000)
    assert [next(first) for _ in range(3)] == [(0, "0"), (1, "1"), (2, "2")]
    first.close()  # ends the query; the thread's client is free again
    assert store.scalar("SELECT 41 + 1") == 42


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(tmp_path: Path) -> None:
    records = (("train", {"n": i}) for i in range(5000))
    tty = _Tty()
    progress = Progress(tty)
    progress._last = 0.0  # draw at the first update
    write(records, tmp_path / "a.jsonl", split=False, progress=progress)
    assert "exported" in tty.getvalue() and tty.getvalue().endswith("\r\033[K")
    pipe = io.StringIO()
    write((("train", {"n": 1}),), tmp_path / "b.jsonl", split=False, progress=Progress(pipe))
    assert pipe.getvalue() == ""


def test_split_files_and_nothing_left_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "sft.jsonl"
    files = write([("train", {"a": 1}), ("validation", {"b": "é"})], out, split=True)
    assert files == [out, tmp_path / "sft.validation.jsonl"] == [out, validation_path(out)]
    assert out.read_text() == '{"a":1}\n'
    assert validation_path(out).read_text(encoding="utf-8") == '{"b":"é"}\n'

    def broken() -> Iterator[tuple[str, dict[str, Any]]]:
        yield "train", {"a": 2}
        raise RuntimeError("the store went away")

    other = tmp_path / "other.jsonl"
    with pytest.raises(RuntimeError):
        write(broken(), other, split=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft.jsonl", "sft.validation.jsonl"]
    assert out.read_text() == '{"a":1}\n'  # an earlier export is untouched
