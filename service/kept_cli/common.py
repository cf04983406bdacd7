"""What every `kept` command shares: errors, settings, the server or the local store.

Server commands import the server lazily, so the CLI (and `kept demo`) works with the
SDK alone and says which extra to install when a command needs more. Commands that
touch data go through the running server when one owns the data directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"
SERVER_EXTRA_HINT = "this command needs the server: pip install 'kept[server]'"


class CliError(Exception):
    """A failure to report on stderr as one clear line, with exit status 1."""


def data_dir_arg(value: str | None) -> Path:
    return Path(value or os.environ.get("KEPT_DATA") or "kept-data")


def server_imports() -> None:
    try:
        import fastapi  # noqa: F401

        import kept_storage  # noqa: F401
    except ImportError as exc:
        raise CliError(f"{SERVER_EXTRA_HINT} ({exc})") from None


def kafka_imports(command: str) -> None:
    """The server's packages and kafka-python, or a CliError naming what to install."""
    server_imports()
    try:
        import kafka  # noqa: F401
    except ImportError:
        raise CliError(f"{command} needs kafka-python: pip install 'kept[server]'") from None


def server_settings(**overrides: object) -> Any:
    """The server's settings, with a clear error for a bad KEPT_* value or flag."""
    from pydantic import ValidationError

    from kept_service.runtime.settings import settings_with

    try:
        return settings_with(**overrides)
    except ValidationError as exc:
        raise config_error(exc) from None


def setup_logging(level: str) -> None:
    """The log format and level of the long-running commands, `kept serve` and `kept consume`."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:  # kafka-python is chatty at INFO
        logging.getLogger("kafka").setLevel(logging.WARNING)


def config_error(exc: Any) -> CliError:
    """A settings ValidationError as one line naming each KEPT_ variable at fault."""
    problems = "; ".join(
        f"KEPT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
    )
    return CliError(f"invalid configuration: {problems}")


# ---- talking to a running server -------------------------------------------------------


def http(method: str, url: str, token: str | None, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise CliError(f"{method} {url} failed: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(
            f"no kept server answers at {url.split('/v1')[0]} ({exc}). Start one with `kept serve`."
        ) from None


class Remote:
    """The admin API of a server, found via its data directory or --url."""

    def __init__(self, url: str, token: str | None) -> None:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self.token:
            raise CliError(
                "the server needs its admin token: run this on the server's machine with "
                "--data pointing at its data directory, or set KEPT_ADMIN_TOKEN"
            )
        return http(method, self.url + path, self.token, body)


def remote_for(args: argparse.Namespace) -> Remote | None:
    """The server to go through, or None to open the store directly."""
    from kept_storage.datadir import DataDir

    data_dir = DataDir(data_dir_arg(args.data))
    token = os.environ.get("KEPT_ADMIN_TOKEN") or data_dir.read_admin_token()
    explicit = args.url or os.environ.get("KEPT_URL")
    if explicit:
        return Remote(explicit, token)
    info = data_dir.server_info()
    if info is not None:
        return Remote(info.url, token)
    if data_dir.is_held():
        raise CliError(f"{data_dir.path} is held by another kept process that serves no HTTP")
    return None


def with_local_store(
    args: argparse.Namespace, work: Callable[[Any], Any], migrate_first: bool = True
) -> Any:
    """Run `work(store)` on the data directory's store, owning the directory meanwhile
    (migrated first, unless `work` migrates it itself)."""
    server_imports()
    from kept_storage import StorageError, migrate
    from kept_storage.datadir import DataDir, DataDirBusy, DataDirUnusable

    config = server_settings(data=args.data)
    data_dir = DataDir(config.data)
    try:
        data_dir.acquire()
    except (DataDirBusy, DataDirUnusable) as exc:
        raise CliError(str(exc)) from None
    try:
        store = config.open_store(data_dir)
        try:
            if migrate_first:
                migrate(store)
            return work(store)
        finally:
            store.close()
    except StorageError as exc:
        raise CliError(str(exc)) from None
    finally:
        data_dir.release()


def one_shot_runner(store: Any) -> Any:
    """An analytics runner for one command: it runs the job only if it gets the lease
    (and gives it back), so it never races the runners that share the store."""
    from prometheus_client import CollectorRegistry

    from kept_service.runtime import analytics_runner

    settings = server_settings(analytics_interval_s=0, analytics_lag_s=0)
    return analytics_runner(settings, store, CollectorRegistry())


def with_outcomes(args: argparse.Namespace, work: Callable[[Any, Any], Any]) -> Any:
    """Fold new events into outcomes (unless an analytics runner holds the lease: then
    what it folded), then `work(store, settings)`, on the store of --data."""
    settings = server_settings(data=args.data)

    def run(store: Any) -> Any:
        from kept_analytics.runner import AnalyticsBusy

        # When a runner holds the lease, it folds every few seconds: report what it has.
        with contextlib.suppress(AnalyticsBusy):
            one_shot_runner(store).run_now(wait_s=0)
        return work(store, settings)

    return with_local_store(args, run)


def add_filter_args(p: argparse.ArgumentParser) -> None:
    """--model, --prompt-version, --metadata: the filters reports and exports share."""
    p.add_argument("--model", action="append", default=[], help="only these models (repeatable)")
    p.add_argument(
        "--prompt-version", action="append", default=[], help="only these prompt versions"
    )
    p.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                   help="only generations with this metadata (repeatable)")  # fmt: skip


def add_metadata(params: dict[str, list[str]], items: list[str]) -> None:
    """`--metadata KEY=VALUE` options as `metadata.KEY` parameters (as over HTTP)."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--metadata takes KEY=VALUE, not {item!r}")
        params.setdefault(f"metadata.{key}", []).append(value)


def add_data_args(p: argparse.ArgumentParser, url: bool = True) -> None:
    """--data (and --url): where the data is, or which server holds it."""
    p.add_argument("--data", help="data directory (default: $KEPT_DATA or ./kept-data)")
    if url:
        p.add_argument(
            "--url", help="a running kept server (default: $KEPT_URL, or the one owning --data)"
        )
