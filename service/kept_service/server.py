"""`kept serve`: own the data directory, then run the app under uvicorn."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TextIO

import uvicorn

from kept_ingest.gc_tuning import tune_gc
from kept_service.app import create_app
from kept_service.protocol import HttpLimits, http_protocol
from kept_service.runtime import Runtime
from kept_service.runtime.settings import ServerSettings
from kept_storage.datadir import DataDir, DataDirUnusable


def _kept_command() -> str:
    """How the user can run `kept` again: by name when it is on PATH, else by its path."""
    script = Path(sys.argv[0])
    on_path = shutil.which("kept")
    if script.name != "kept" or (on_path and Path(on_path).resolve() == script.resolve()):
        return "kept"
    return str(script)


def banner(runtime: Runtime, url: str) -> str:
    """What a user needs to start sending events, printed once the server is ready."""
    data_dir = runtime.data_dir
    lines = [f"kept serving on {url}  (data: {data_dir.path})"]
    if runtime.demo_key:
        lines += [
            f"Created project 'demo'; its key (also in {data_dir.demo_key_path}):",
            f"  {runtime.demo_key}",
        ]
    kept = _kept_command()
    key = runtime.demo_key or data_dir.read_demo_key()
    if key:
        same_dir = data_dir.path == DataDir(Path("kept-data")).path
        lines += [
            f"Send demo traffic:  {kept} demo" + ("" if same_dir else f" --data {data_dir.path}"),
            f"From your app:      export KEPT_ENDPOINT={url} KEPT_API_KEY={key}",
        ]
    lines.append(f"New project key:    {kept} keys create --project NAME")
    return "\n".join(lines)


def http_limits(settings: ServerSettings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        request_timeout_s=settings.request_timeout_s,
        write_timeout_s=settings.write_timeout_s,
        max_connections=settings.max_connections,
    )


def serve(settings: ServerSettings, out: TextIO = sys.stdout) -> None:
    """Run the server until SIGINT/SIGTERM; queued events are stored before exit."""
    data_dir = DataDir(settings.data)
    try:
        data_dir.acquire()
    except DataDirUnusable as exc:
        # One line for the user, not a traceback: the cause is theirs to fix.
        raise SystemExit(f"kept: {exc}") from None
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"

    def ready(runtime: Runtime) -> None:
        tune_gc()
        data_dir.announce(url)
        print(banner(runtime, url), file=out, flush=True)

    try:
        config = uvicorn.Config(
            create_app(settings, data_dir, on_ready=ready),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=30,
            http=http_protocol(http_limits(settings)),
        )
        uvicorn.Server(config).run()
    finally:
        data_dir.release()
