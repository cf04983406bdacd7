"""The wheel: the base install is the SDK alone; the server extra adds the service."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from kept_storage.migrate import available

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent

LATEST = available()[-1].version


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, ROOT)
    (built,) = out.glob("kept-*.whl")
    return built


def _venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin" / "python"


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    python = _venv(tmp_path_factory.mktemp("bare") / "venv")
    # From the index: the base install's one dependency, msgspec (nothing of the server).
    _run(python, "-m", "pip", "install", "--quiet", "--only-binary", ":all:", wheel)
    return python


@pytest.fixture(scope="module")
def without_deps(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """The SDK installed without its dependency, as on an interpreter msgspec lacks."""
    python = _venv(tmp_path_factory.mktemp("without-deps") / "venv")
    _run(python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", wheel)
    return python


def test_wheel_holds_every_package_and_the_migrations(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "kept/__init__.py",
        "kept/py.typed",
        "kept/client.py",
        "kept_wire/contract.py",
        "kept_wire/kafka.py",
        "kept_storage/clickhouse.py",
        "kept_storage/migrations/0001_events.sql",
        "kept_ingest/contract.py",
        "kept_ingest/consumer/pipeline.py",
        "kept_analytics/__init__.py",
        "kept_dashboards/__init__.py",
        "kept_dashboards/static/index.html",
        "kept_service/app.py",
        "kept_service/api/events.py",
        "kept_service/static/sdk.js",
        "kept_cli/main.py",
        "kept/spool.py",
    ):
        assert expected in names
    source_roots = ("tests/", "sdk/", "storage/", "ingest/", "analytics/", "dashboards/")
    assert not [n for n in names if n.startswith((*source_roots, "service/"))]
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    requires = [line for line in metadata.decode().splitlines() if line.startswith("Requires-Dist")]
    assert requires, "the server extra lists its dependencies"
    # Every requirement but msgspec belongs to an extra (the marker's quotes depend on
    # the backend); the base install needs msgspec alone, and only on CPython.
    base = [line for line in requires if not re.search("extra == [\"']", line)]
    assert len(base) == 1, base
    assert base[0].startswith("Requires-Dist: msgspec")
    assert "platform_python_implementation" in base[0]


def test_sdk_imports_without_server_dependencies(bare: Path) -> None:
    code = (
        "import importlib.util, kept\n"
        "assert importlib.util.find_spec('fastapi') is None\n"
        "assert importlib.util.find_spec('chdb') is None\n"
        "assert importlib.util.find_spec('pydantic') is None\n"
        "assert importlib.util.find_spec('msgspec') is not None\n"
        "c = kept.Client(endpoint='http://127.0.0.1:9', api_key='k')\n"
        "gid = c.log_generation(model='m', output='o')\n"
        "assert c.accept(gid) in (True, False)\n"
        "c.close(timeout=0.2)\n"
        "print('sdk ok', gid)\n"
    )
    assert "sdk ok" in _run(bare, "-c", code)


def test_sdk_without_msgspec_encodes_with_the_standard_library(without_deps: Path) -> None:
    code = (
        "import importlib.util, json\n"
        "assert importlib.util.find_spec('msgspec') is None\n"
        "from kept_wire.encoding import encode_event\n"
        "fields = {'model': 'm', 'input': [{'role': 'user', 'content': 'é'}], 'cost_usd': 1e-300}\n"
        "event = encode_event(('generation', 'g', 1.0, 'u', None, fields))\n"
        "value = json.loads(event)\n"
        "assert value['input'] == fields['input'] and value['cost_usd'] == 1e-300\n"
        "assert event == json.dumps(value, ensure_ascii=False, separators=(',', ':')).encode()\n"
        "try:\n"
        "    encode_event(('generation', 'g', 1.0, None, None, {'x': float('nan')}))\n"
        "except ValueError:\n"
        "    print('stdlib ok')\n"
    )
    assert "stdlib ok" in _run(without_deps, "-c", code)


def test_kafka_endpoint_without_kafka_python_says_what_to_install(bare: Path) -> None:
    code = (
        "import importlib.util, kept\n"
        "assert importlib.util.find_spec('kafka') is None\n"
        "c = kept.Client(endpoint='kafka://127.0.0.1:9', project='p')\n"
        "assert c.vote('g', 1) is False\n"
        "assert c.stats()['dropped_no_transport'] == 1\n"
        "c.close()\n"
        "print('dropped ok')\n"
    )
    result = subprocess.run(
        [bare, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "dropped ok" in result.stdout
    assert "pip install 'kept[kafka]'" in result.stderr


def test_cli_in_the_base_install_points_to_the_extra(bare: Path) -> None:
    kept = bare.parent / "kept"
    assert "demo" in _run(kept, "--help")
    result = subprocess.run(
        [kept, "serve"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "pip install 'kept[server]'" in result.stderr


def test_server_side_runs_from_the_wheel(tmp_path: Path, wheel: Path) -> None:
    # The server's dependencies come from the test environment (a .pth to its
    # site-packages, which runs none of its .pth files, so the editable kept stays out);
    # kept itself comes from the wheel.
    python = _venv(tmp_path / "venv")
    _run(python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", wheel)
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    (site / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run(python, "-c", "import kept_service.app as a; print(a.__file__)")
    assert where.startswith(str(site))
    out = _run(python, "-m", "kept_cli", "migrate", "--data", tmp_path / "data")
    assert f"schema version {LATEST}" in out
