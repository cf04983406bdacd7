"""Exported files load with Hugging Face `datasets` and pass TRL's SFT and DPO trainers.

Needs the `test-export` extra (datasets, trl, torch CPU); `make test` installs it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kept_analytics.export import ExportSpec, Summary, default_redact, run, write
from tests.export.scenario import load
from tests.helpers import InProcessServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("trl") is None or importlib.util.find_spec("datasets") is None,
        reason="needs the test-export extra: pip install -e '.[test-export]'",
    ),
]
CHECK = Path(__file__).with_name("trainer_check.py")


def _export(server: InProcessServer, path: Path, **spec: object) -> list[Path]:
    records = run(server.runtime.store, ExportSpec(**spec), default_redact, Summary())
    return write(records, path, split="split" in spec)


def _check(jobs: dict[str, list[Path]], tmp_path: Path) -> None:
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    args = [f"{kind.split('#')[0]}={','.join(map(str, files))}" for kind, files in jobs.items()]
    done = subprocess.run(
        [sys.executable, str(CHECK), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ok = [line for line in done.stdout.splitlines() if line.startswith("ok ")]
    assert len(ok) == len(jobs), done.stdout


def test_files_load_and_train(server: InProcessServer, tmp_path: Path) -> None:
    load(server)
    # one process for all four (torch's import dominates)
    _check(
        {
            "sft": _export(server, tmp_path / "sft.jsonl", split=0.5),
            "dpo": _export(server, tmp_path / "dpo.jsonl", format="dpo"),
            "dpo#standard": _export(
                server, tmp_path / "dpo-standard.jsonl", format="dpo", dpo_form="standard"
            ),
            "prompt-completion": _export(server, tmp_path / "all.jsonl", format="jsonl"),
        },
        tmp_path,
    )
