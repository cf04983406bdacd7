"""`kept export` as a user runs it: through a running server, then on the store directly
once the server is gone; both give the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.export.scenario import DAY, events, sft_lines
from tests.helpers import run_kept, serve_process

pytestmark = pytest.mark.slow


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


RUNS: dict[str, list[str]] = {
    "sft": ["--split", "0.5"],
    "vote_up": ["--vote", "up", "--model", "A"],
    "dpo": ["--format", "dpo", "--redact", "tests.export.hooks:shout"],
    "jsonl": ["--format", "jsonl", "--no-redact", "--limit", "3", "--since", DAY.isoformat()],
}


def export_all(data: Path, out: Path) -> dict[str, str]:
    """Every run's files (name → text) and the summaries on stderr."""
    out.mkdir()
    files: dict[str, str] = {}
    for name, args in RUNS.items():
        done = run_kept("export", "--data", str(data), "--out", str(out / f"{name}.jsonl"), *args)
        assert done.returncode == 0, done.stderr
        assert "exported" in done.stderr and "skipped" in done.stderr
        files[name + ".summary"] = done.stderr.strip().splitlines()[-1].replace(str(out), "")
    for path in sorted(out.iterdir()):
        files[path.name] = path.read_text(encoding="utf-8")
    return files


def test_export_through_the_server_and_directly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve_process(data, KEPT_ANALYTICS_LAG_S="0.1") as server:
        body = [{k: v for k, v in e.items() if v is not None} for e in events()]
        assert server.post(body).status == 202
        remote = export_all(data, tmp_path / "remote")
        server.stop()
    local = export_all(data, tmp_path / "local")
    assert remote == local

    out = tmp_path / "local"
    train, validation = read(out / "sft.jsonl"), read(out / "sft.validation.jsonl")
    assert train and validation
    expected = sft_lines("e12", "e1", "e2", "e4", "e9", "e10")
    assert sorted(map(json.dumps, train + validation)) == sorted(map(json.dumps, expected))
    assert read(out / "vote_up.jsonl") == sft_lines("e1", "e10")
    dpo = read(out / "dpo.jsonl")
    assert dpo[0]["chosen"] == [{"role": "assistant", "content": "A2 FIXED"}]
    assert [r["generation_id"] for r in read(out / "jsonl.jsonl")] == ["e1", "e2", "e3"]
    assert "exported 6 example(s)" in local["sft.summary"]
    assert "duplicate 1, no_output 1" in local["sft.summary"]


def test_clear_errors(tmp_path: Path) -> None:
    out = str(tmp_path / "x.jsonl")
    data = str(tmp_path / "data")
    for args, message in [
        (["--vote", "up", "--split", "2"], "split"),
        (["--redact", "no_such_module:f"], "cannot import"),
        (["--metadata", "novalue"], "KEY=VALUE"),
        (["--min-score", "helpfulness"], "NAME=VALUE"),
    ]:
        done = run_kept("export", "--data", data, "--out", out, *args)
        assert done.returncode == 1, args
        assert message in done.stderr, done.stderr
    assert not Path(out).exists()
