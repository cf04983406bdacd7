"""Headless Chromium for the browser tests: Debian's chromium and chromium-driver through
selenium, with the flags these machines need (`make test` installs both)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
"""Where browser tests save their screenshots."""

needs_chromium = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (make test installs them)",
)


@contextmanager
def chromium(profile: Path, window: str) -> Iterator[Any]:
    """A headless Chromium WebDriver with its profile in `profile`, `window` = "W,H"."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--window-size={window}",
                 f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_value(check: Callable[[], Any], timeout: float = 30) -> Any:
    """`check()`'s first truthy value, or its last value once `timeout` has passed (the
    page updates on its own clock)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@contextmanager
def app_origin() -> Iterator[Callable[[str], str]]:
    """A stand-in for the app's own web server, another origin than kept's: `publish(html)`
    serves a page and returns its URL."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def publish(html: str) -> str:
        path = f"/page-{len(pages)}.html"
        pages[path] = html.encode()
        return f"http://127.0.0.1:{httpd.server_address[1]}{path}"

    try:
        yield publish
    finally:
        httpd.shutdown()
        httpd.server_close()
