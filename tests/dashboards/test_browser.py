"""The built-in page in headless Chromium: every panel renders data, filters and live
updates work. Screenshot: test-artifacts/dashboard.png."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from kept_analytics.alerts.job import AlertJob
from kept_analytics.alerts.rules import parse_rules
from kept_analytics.lease import Lease
from tests.analytics.test_rollouts import rollout_events
from tests.browser import ARTIFACTS, chromium, needs_chromium, wait_for_value
from tests.helpers import InProcessServer, generation
from tests.synthetic import load

pytestmark = needs_chromium


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    with chromium(tmp_path / "chromium", "1440,1800") as driver:
        yield driver


def _wait(check: Callable[[], object], timeout: float = 30) -> object:
    return wait_for_value(check, timeout)


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
    _fire_an_alert(server)

    driver = browser
    driver.get(server.url + "/")  # type: ignore[attr-defined]
    loaded = _wait(lambda: all(s.startswith("ok") for s in _states(driver).values()) or None)
    states = _states(driver)
    assert loaded, states
    assert len(states) >= 16
    alerts = _text(driver, "#panel-alerts")
    assert "firing" in alerts and "acceptance-floor" in alerts and "model=gpt-4o-mini" in alerts
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


def _fire_an_alert(server: InProcessServer) -> None:
    """A rule that the synthetic traffic (about half accepted) breaks, evaluated once."""
    rules = parse_rules(
        "rules:\n  - {name: acceptance-floor, kind: threshold, metric: acceptance_rate, "
        "by: model, window: 1d, warning_below: 0.9, for: 0s}\n"
    )
    lease = Lease(server.runtime.store, 20, "test-page-alerts")
    assert lease.acquire() is not None
    fence = lease.fence()
    assert fence is not None
    try:
        AlertJob(server.runtime.store, rules, None).run(fence)
    finally:
        lease.release()


def test_rollouts_panel_shows_the_verdict_of_a_seeded_regression(
    server: InProcessServer, browser: object
) -> None:
    assert server.post(rollout_events()).status == 202
    server.runtime.analytics.run_now()

    driver = browser
    driver.get(server.url + "/")  # type: ignore[attr-defined]
    assert _wait(lambda: _states(driver).get("panel-rollouts", "").startswith("ok")), _states(
        driver
    )
    script = (
        "return [...document.querySelectorAll('#panel-rollouts tr[data-candidate]')]"
        ".map(r => [r.dataset.candidate, r.dataset.verdict, r.innerText])"
    )
    rows = driver.execute_script(script)  # type: ignore[attr-defined]
    candidate, verdict, text = rows[0]
    assert (candidate, verdict) == ("summarize@2", "worse"), rows
    assert "summarize@1" in text and "acceptance rate" in text and "400 / 400" in text
    assert "-20.0 pts" in text, text
    badge = _text(driver, "#panel-rollouts tr[data-candidate='summarize@2'] .verdict")
    assert badge == "worse"
    ARTIFACTS.mkdir(exist_ok=True)
    driver.execute_script("scrollTo(0, document.getElementById('panel-rollouts').offsetTop - 90)")  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "rollouts.png"))  # type: ignore[attr-defined]
