"""The `/sdk.js` snippet in headless Chromium, on a page from another origin than kept:
votes, actions and corrections arrive with a feedback token, across CORS.
Screenshot: test-artifacts/feedback.png."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import ARTIFACTS, app_origin, chromium, needs_chromium, wait_for_value
from tests.helpers import InProcessServer, generation, http

pytestmark = needs_chromium


# What an app's page does: load the snippet from kept, and report what the user does.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Support reply</title>
<script src="@KEPT@/sdk.js"></script>
<style>body { font: 16px sans-serif; margin: 2em; } textarea { width: 30em; height: 4em; }</style>
</head><body>
<h1>Suggested reply</h1>
<p id="output">@OUTPUT@</p>
<button id="up">Helpful</button> <button id="accept">Use this reply</button>
<p><textarea id="edit">@OUTPUT@</textarea><br><button id="save">Save my edit</button></p>
<ul id="log"></ul>
<script>
  const fb = kept.feedback({ token: "@TOKEN@", userId: "user-7" });
  window.results = [];
  function track(name, promise) {
    promise.then((ok) => {
      window.results.push([name, ok]);
      const li = document.createElement("li");
      li.textContent = name + ": " + (ok ? "stored in kept" : "not stored");
      document.getElementById("log").append(li);
    });
  }
  document.getElementById("up").onclick = () => track("vote", fb.vote(1, { comment: "clear" }));
  document.getElementById("accept").onclick = () => track("accept", fb.accept());
  document.getElementById("save").onclick = () =>
    track("correct", fb.correct(document.getElementById("edit").value));
</script>
</body></html>
"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium", "1000,700") as driver:
        yield driver


@pytest.fixture
def app_page() -> Iterator[Callable[[str], str]]:
    with app_origin() as publish:
        yield publish


def _wait(check: Callable[[], Any], timeout: float = 30) -> Any:
    return wait_for_value(check, timeout)


def test_snippet_sends_feedback_from_another_origin(
    server: InProcessServer, browser: Any, app_page: Callable[[str], str]
) -> None:
    from selenium.webdriver.common.by import By

    output = "Your refund was sent today; it takes 5 days to arrive."
    event = generation(output=output)
    gid = event["generation_id"]
    assert server.post([event]).status == 202
    # The app's server mints the token with its project key and renders it into the page.
    minted = http(
        "POST",
        server.url + "/v1/feedback-tokens",
        {"generation_id": gid, "ttl_s": 600},
        {"Authorization": f"Bearer {server.key}"},
    )
    assert minted.status == 201, minted.body
    html = PAGE.replace("@KEPT@", server.url).replace("@OUTPUT@", output)
    url = app_page(html.replace("@TOKEN@", minted.body["token"]))

    driver = browser
    driver.get(url)
    origin = driver.execute_script("return location.origin")
    assert origin != server.url  # a cross-origin page: CORS has to work
    assert driver.execute_script("return fb.generationId") == gid  # read from the token

    driver.find_element(By.ID, "up").click()
    driver.find_element(By.ID, "accept").click()
    edit = driver.find_element(By.ID, "edit")
    edit.clear()
    edit.send_keys("Your refund was sent today; it takes 5 business days to arrive.")
    driver.find_element(By.ID, "save").click()
    # true means the page could read kept's 202: the response passed the CORS check.
    results = _wait(lambda: len(driver.execute_script("return results")) >= 3 and
                    driver.execute_script("return results"))  # fmt: skip
    assert sorted(results) == [["accept", True], ["correct", True], ["vote", True]], results

    # Without crypto.randomUUID (plain-http pages) the fallback still makes valid ids, and
    # a refused token resolves to false instead of rejecting.
    outcome = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        Object.defineProperty(crypto, "randomUUID", { value: undefined, configurable: true });
        const copied = kept.feedback({ token: fb_token() }).copy();
        const refused = kept.feedback({ token: "kft_bad.AAAA" }).vote(-1);
        Promise.all([copied, refused]).then(done, (e) => done("rejected: " + e));
        function fb_token() { return document.querySelector("script:not([src])")
          .textContent.match(/token: "([^"]+)"/)[1]; }
        """
    )
    assert outcome == [True, False]

    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "feedback.png"))

    rows = server.runtime.store.rows(
        "SELECT type, name, value, text, comment, user_id FROM feedback "
        "WHERE generation_id = {g:String} ORDER BY type, name",
        {"g": gid},
    )
    assert rows == [
        ("vote", "", 1.0, "", "clear", "user-7"),
        ("action", "accept", None, "", "", "user-7"),
        ("action", "copy", None, "", "", ""),
        ("correction", "", None, "Your refund was sent today; it takes 5 business days to arrive.",
         "", "user-7"),
    ]  # fmt: skip
