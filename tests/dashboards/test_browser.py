"""The built-in page in headless Chromium: every panel renders data, filters and live
updates work. Screenshot: test-artifacts/dashboard.png."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, chromium, needs_chromium
from tests.helpers import InProcessServer, generation
from tests.synthetic import load

pytestmark = needs_chromium


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    with chromium(tmp_path / "chromium", "1440,1800") as driver:
        yield driver


def _wait(check: Callable[[], object], timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _states(driver: object) -> dict[str, str]:
    script = (
        "return Object.fromEntries([...document.querySelectorAll('.panel')]"
        ".map(p => [p.id, p.dataset.state + ':' + (p.dataset.rows || '')]))"
    )
    return driver.execute_script(script)  # type: ignore[attr-defined,no-any-return]


def _text(driver: object, selector: str) -> str:
    script = "const n = document.querySelector(arguments[0]); return n ? n.innerText : '';"
    return str(driver.execute_script(script, selector))  # type: ignore[attr-defined]


def test_page_renders_filters_and_updates_live(server: InProcessServer, browser: object) -> None:
    now = datetime.now(timezone.utc)
    load(server.runtime.store, 30_000, now - timedelta(hours=20), now, project="demo")
    server.runtime.analytics.run_now()
    assert server.post([generation() for _ in range(5)]).status == 202  # metrics have data

    driver = browser
    driver.get(server.url + "/")  # type: ignore[attr-defined]
    loaded = _wait(lambda: all(s.startswith("ok") for s in _states(driver).values()) or None)
    states = _states(driver)
    assert loaded, states
    assert len(states) >= 16
    ARTIFACTS.mkdir(exist_ok=True)
    time.sleep(2)  # a second refresh: health panels show rates
    driver.save_screenshot(str(ARTIFACTS / "dashboard.png"))  # type: ignore[attr-defined]

    # Filtering by one model: the latency panel shows that model only.
    refreshes = int(driver.execute_script("return window.kept.refreshes"))  # type: ignore[attr-defined]
    driver.execute_script(  # type: ignore[attr-defined]
        "const s = document.querySelector('select[name=model]');"
        "s.value = 'llama-3.1-8b'; s.dispatchEvent(new Event('change', {bubbles: true}));"
    )
    assert _wait(lambda: _states(driver)["panel-latency_by_model"] == "ok:1")
    assert _wait(lambda: driver.execute_script("return window.kept.refreshes") > refreshes)  # type: ignore[attr-defined]
    assert all(s.startswith("ok") for s in _states(driver).values()), _states(driver)
    text = _text(driver, "#panel-latency_by_model")
    assert "llama-3.1-8b" in text and "gpt-4o-mini" not in text

    # New events appear without a reload: the total counts them on the next refresh.
    def total() -> str:
        return _text(driver, "#panel-generations_total .value")

    driver.execute_script(  # type: ignore[attr-defined]
        "const s = document.querySelector('select[name=model]');"
        "s.value = ''; s.dispatchEvent(new Event('change', {bubbles: true}));"
    )
    before = _wait(lambda: total() if total() not in ("", "–") else None)
    events = [generation(model="llama-3.1-8b") for _ in range(40)]
    # The synthetic project is "demo": post with the demo key.
    assert server.post(events).status == 202
    assert _wait(lambda: total() != before, timeout=20), (before, total())
