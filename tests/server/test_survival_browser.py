"""Survival tracking in the browser (`/sdk.js`), in headless Chromium.

- The JavaScript port of the survival score passes the shared test vectors
  (tests/data/survival_vectors.json, generated from the Python scorer) and tokenises every
  Unicode code point as Python does.
- On a page from another origin than kept, a user accepts suggestions into a textarea, a
  contenteditable editor and a plain field, edits one, deletes part of another, undoes a
  third, and reloads the page midway: the survival events kept stores carry the scores the
  Python scorer gives for the same texts, the undo is flagged, and the report's kept rate
  shows them. Checkpoints of 6 and 14 s stand in for 30 s ... 15 min.
Screenshot: test-artifacts/survival.png.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kept import survival_score
from kept.survival_tracking import tokens
from tests.browser import ARTIFACTS, app_origin, chromium, needs_chromium, wait_for_value
from tests.helpers import InProcessServer, generation, http
from tests.survival_vectors import PATH as VECTORS

pytestmark = needs_chromium

CHECKPOINTS = (6, 14)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium(tmp_path / "chromium", "1000,800") as driver:
        yield driver


@pytest.fixture
def app_page() -> Iterator[Callable[[str], str]]:
    with app_origin() as publish:
        yield publish


@pytest.fixture
def kept_server(server: InProcessServer) -> Iterator[InProcessServer]:
    """The session's server, its reports showing the shortened checkpoints (the embedded
    ClickHouse takes one data directory per process, so no second server)."""
    settings = server.runtime.settings
    server.runtime.settings = settings.model_copy(update={"survival_checkpoints": CHECKPOINTS})
    try:
        yield server
    finally:
        server.runtime.settings = settings


def _wait(check: Callable[[], Any], timeout: float = 60) -> Any:
    return wait_for_value(check, timeout)


def _blank_page(app_page: Callable[[str], str], kept_url: str) -> str:
    return app_page(
        f'<!doctype html><meta charset="utf-8"><script src="{kept_url}/sdk.js"></script>'
    )


# --- one scorer, two languages ----------------------------------------------------------


def test_the_shared_vectors_hold_in_chromium(
    server: InProcessServer, browser: Any, app_page: Callable[[str], str]
) -> None:
    cases = json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]
    browser.get(_blank_page(app_page, server.url))
    scores = browser.execute_script(
        "return arguments[0].map((c) => kept.survivalScore(c.original, c.current, c.n));", cases
    )
    mismatches = [
        (case["name"], got, case["score"])
        for case, got in zip(cases, scores, strict=True)
        if got != case["score"]
    ]
    assert mismatches == []
    # Tokens too, not only scores: the same list for every case's texts.
    texts = [case["original"] for case in cases if len(case["original"]) < 5000]
    assert browser.execute_script("return arguments[0].map(kept.tokens);", texts) == [
        tokens(text) for text in texts
    ]


def _code_points() -> Iterator[int]:
    return (c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def test_every_code_point_tokenises_as_in_python(
    server: InProcessServer, browser: Any, app_page: Callable[[str], str]
) -> None:
    """Each code point between two "_" (so a word character joins them into one token):
    the tokens say how it is case-folded and whether it is a word character, whitespace or
    a punctuation mark. Chromium may know newer Unicode than this Python: code points
    unassigned in Python's Unicode database are the only differences allowed."""
    browser.get(_blank_page(app_page, server.url))
    browser.set_script_timeout(120)
    got = browser.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const out = [];
        for (let c = 0; c < 0x110000; c++) {
          if (c >= 0xd800 && c <= 0xdfff) continue;
          out.push(kept.tokens("_" + String.fromCodePoint(c) + "_"));
        }
        done(JSON.stringify(out));
        """
    )
    js = json.loads(got)
    points = list(_code_points())
    assert len(js) == len(points)
    differ = [
        c for c, found in zip(points, js, strict=True)
        if found != tokens(f"_{chr(c)}_")
    ]  # fmt: skip
    assigned = [c for c in differ if unicodedata.category(chr(c)) != "Cn"]
    assert assigned == [], [hex(c) for c in assigned[:20]]
    # Unicode 15 to 17 added about 15,000 characters; Python 3.11 knows Unicode 14.
    assert len(differ) < 20_000


# --- the tracker, end to end --------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Drafts</title>
<script src="@KEPT@/sdk.js"></script>
<style>body { font: 15px sans-serif; margin: 1.5em; } textarea, #notes { width: 40em;
 height: 5em; border: 1px solid #888; display: block; margin-bottom: .5em; }</style>
</head><body>
<h1>Suggestions</h1>
<p>Reply <button id="accept-reply">Use suggestion</button></p><textarea id="reply"></textarea>
<p>Notes <button id="accept-notes">Use suggestion</button></p>
<div id="notes" contenteditable="true"></div>
<p>Title <button id="accept-title">Use suggestion</button></p><input id="title" size="60">
<p id="status"></p>
<script>
  const TOKENS = @TOKENS@;
  const OUTPUTS = @OUTPUTS@;
  const CHECKPOINTS = @CHECKPOINTS@;
  const $ = (id) => document.getElementById(id);
  const fbs = {};
  for (const key of Object.keys(TOKENS)) {
    fbs[key] = kept.feedback({ token: TOKENS[key], userId: "user-7" });
  }
  window.tracked = {};
  // The app keeps its drafts across reloads, as editors do ...
  const drafts = JSON.parse(localStorage.getItem("drafts") || "{}");
  $("reply").value = drafts.reply || "";
  $("notes").innerText = drafts.notes || "";
  window.saveDrafts = () =>
    localStorage.setItem("drafts", JSON.stringify({ reply: $("reply").value,
                                                     notes: $("notes").innerText }));
  // ... and hands kept's pending checks the places their texts are now (the title field
  // is not restored: its check is reported gone).
  const places = { reply: $("reply"), notes: $("notes") };
  window.resumed = kept.resumeSurvival((gid, key) => places[key]);
  $("status").textContent = "resumed " + resumed.resumed + ", gone " + resumed.gone;

  function accept(key, field, options) {
    if (field.tagName === "DIV") field.innerText = OUTPUTS[key]; else field.value = OUTPUTS[key];
    fbs[key].accept();
    const settings = Object.assign({ checkpoints: CHECKPOINTS, key }, options);
    const tracked = fbs[key].trackSurvival(field, settings);
    window.tracked[key] = tracked.persisted;
  }
  $("accept-reply").onclick = () => accept("reply", $("reply"));
  $("accept-notes").onclick = () => accept("notes", $("notes"));
  // The title is undone a moment after the accept: the no-revert guard's case.
  $("accept-title").onclick = () => {
    accept("title", $("title"), { revertWindow: 1 });
    setTimeout(() => ($("title").value = ""), 200);
  };
</script>
</body></html>
"""

OUTPUTS = {
    "reply": (
        "Thanks for reaching out. Your refund was sent today and takes five business days "
        "to arrive. If it has not arrived by Friday, reply to this message and we will check."
    ),
    "notes": (
        "Customer asked about refund timing. Refund issued on the same day. "
        "Follow up on Friday if the payment has not landed. Tagged as billing."
    ),
    "title": "Refund issued, five business days",
}


def test_survival_from_a_page_on_another_origin_across_a_reload(
    kept_server: InProcessServer, browser: Any, app_page: Callable[[str], str]
) -> None:
    from selenium.webdriver.common.by import By

    server = kept_server
    gids: dict[str, str] = {}
    minted: dict[str, str] = {}
    for key, output in OUTPUTS.items():
        event = generation(output=output)
        assert server.post([event]).status == 202
        gids[key] = event["generation_id"]
        # Survival needs a token that outlives the last checkpoint (here 14 s; 900 s by default).
        response = http(
            "POST",
            server.url + "/v1/feedback-tokens",
            {"generation_id": gids[key], "ttl_s": 1200},
            {"Authorization": f"Bearer {server.key}"},
        )
        assert response.status == 201, response.body
        minted[key] = response.body["token"]
    html = (
        PAGE.replace("@KEPT@", server.url)
        .replace("@TOKENS@", json.dumps(minted))
        .replace("@OUTPUTS@", json.dumps(OUTPUTS))
        .replace("@CHECKPOINTS@", json.dumps(list(CHECKPOINTS)))
    )
    url = app_page(html)
    driver = browser
    driver.get(url)
    assert driver.execute_script("return location.origin") != server.url

    # The user accepts three suggestions, then edits the reply and deletes part of the notes.
    for key in ("reply", "notes", "title"):
        driver.find_element(By.ID, f"accept-{key}").click()
    assert driver.execute_script("return tracked") == {"reply": True, "notes": True, "title": True}
    # A scratch text the page will not have after the reload: reported gone, never sent.
    driver.execute_script(
        "fbs.reply.trackSurvival(() => 'scratch text', { checkpoints: [13], key: 'scratch' });"
    )
    texts: dict[str, list[str]] = {key: [] for key in OUTPUTS}
    reply1 = OUTPUTS["reply"].replace("five business days", "about a week")
    reply = driver.find_element(By.ID, "reply")
    reply.clear()
    reply.send_keys(reply1)
    notes1 = OUTPUTS["notes"].replace(" Refund issued on the same day.", "")
    driver.execute_script("document.getElementById('notes').innerText = arguments[0];", notes1)
    texts["reply"].append(reply1)
    texts["notes"].append(notes1)
    texts["title"].append("")

    def stored() -> list[tuple[str, int, float]]:
        rows = server.runtime.store.rows(
            "SELECT generation_id, checkpoint_s, value FROM feedback WHERE type = 'survival' "
            "ORDER BY generation_id, checkpoint_s"
        )
        return [(str(g), int(c), float(v)) for g, c, v in rows]

    # The first checkpoint's events arrive ...
    assert _wait(lambda: len(stored()) >= 3), stored()
    # ... then more edits, and the page is reloaded before the last checkpoint.
    reply2 = "Thanks for reaching out. Your refund was sent today. Anything else?"
    driver.execute_script(
        "document.getElementById('reply').value = arguments[0]; saveDrafts();", reply2
    )
    texts["reply"].append(reply2)
    notes2 = notes1 + " Also: customer prefers email."
    driver.execute_script(
        "document.getElementById('notes').innerText = arguments[0]; saveDrafts();", notes2
    )
    texts["notes"].append(notes2)
    pending = driver.execute_script("return JSON.parse(localStorage.getItem('kept.survival.v1'))")
    assert sorted(check["key"] for check in pending) == ["notes", "reply", "scratch"]  # title: done
    driver.refresh()
    resumed = driver.execute_script("return [resumed.resumed, resumed.gone]")
    assert resumed == [2, 1]
    assert _wait(lambda: len(stored()) >= 5), stored()
    time.sleep(1)  # nothing more should come

    expected = [
        (gids[key], checkpoint, survival_score(OUTPUTS[key], text))
        for key in ("reply", "notes")
        for checkpoint, text in zip(CHECKPOINTS, texts[key], strict=True)
    ]
    expected.append((gids["title"], CHECKPOINTS[0], 0.0))
    assert stored() == sorted(expected)
    # The scores are the Python scorer's to the last bit, and tell the edits apart.
    scores = {(g, c): v for g, c, v in stored()}
    assert scores[(gids["reply"], 6)] > 0.85 > scores[(gids["reply"], 14)]
    assert 0.5 < scores[(gids["notes"], 6)] < 1.0
    assert driver.execute_script("return localStorage.getItem('kept.survival.v1')") is None

    # The no-revert guard: the undone title is flagged with a `revert` action, not tracked on.
    actions = server.runtime.store.rows(
        "SELECT generation_id, name FROM feedback WHERE type = 'action' ORDER BY name"
    )
    assert sorted((str(g), str(n)) for g, n in actions) == sorted(
        [(gids[key], "accept") for key in OUTPUTS] + [(gids["title"], "revert")]
    )

    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "survival.png"))

    # The report's kept rate counts them: a score of at least 0.5 is kept.
    server.runtime.analytics.run_now()
    report = http(
        "GET",
        server.url + "/v1/report?since=1d&exact=true",
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert report.status == 200, report.body
    (group,) = report.body
    for checkpoint in CHECKPOINTS:
        values = [v for _, c, v in stored() if c == checkpoint]
        measured = group["survival_measured"][str(checkpoint)]
        kept = group["kept"][str(checkpoint)]
        assert (measured, kept) == (len(values), sum(v >= 0.5 for v in values))
        assert group["kept_rate"][str(checkpoint)] == pytest.approx(kept / measured)
    assert group["kept_rate"] == {"6": pytest.approx(2 / 3), "14": pytest.approx(1 / 2)}


def test_checks_of_a_hidden_tab_still_fire(
    server: InProcessServer, browser: Any, app_page: Callable[[str], str]
) -> None:
    output = "Your order ships tomorrow morning by courier."
    event = generation(output=output)
    gid = event["generation_id"]
    assert server.post([event]).status == 202
    minted = http(
        "POST",
        server.url + "/v1/feedback-tokens",
        {"generation_id": gid, "ttl_s": 1200},
        {"Authorization": f"Bearer {server.key}"},
    )
    assert minted.status == 201, minted.body
    driver = browser
    driver.get(_blank_page(app_page, server.url))
    first = driver.current_window_handle
    driver.execute_script(
        """
        window.seen = [document.visibilityState];
        document.addEventListener("visibilitychange", () => seen.push(document.visibilityState));
        window.text = arguments[1] + " Thanks!";
        const fb = kept.feedback({ token: arguments[0] });
        fb.trackSurvival(() => window.text, { text: arguments[1], checkpoints: [2, 4] });
        """,
        minted.body["token"],
        output,
    )
    driver.switch_to.new_window("tab")  # the page's tab goes to the background

    def stored() -> list[tuple[int, float]]:
        rows = server.runtime.store.rows(
            "SELECT checkpoint_s, value FROM feedback WHERE generation_id = {g:String} "
            "ORDER BY checkpoint_s",
            {"g": gid},
        )
        return [(int(c), float(v)) for c, v in rows]

    assert _wait(lambda: len(stored()) == 2, timeout=60), stored()
    assert stored() == [(2, 1.0), (4, 1.0)]
    driver.switch_to.window(first)
    # The checks fired while the tab was hidden.
    assert driver.execute_script("return seen")[:2] == ["visible", "hidden"]


def test_stored_checks_are_bounded(
    server: InProcessServer, browser: Any, app_page: Callable[[str], str]
) -> None:
    """At most 50 pending checks and 200,000 characters of text per origin are stored;
    past that a check runs while the page stays open, but a reload ends it."""
    browser.get(_blank_page(app_page, server.url))
    persisted, stored, stats = browser.execute_script(
        """
        const fb = kept.feedback({ token: "kft_unused.AAAA", generationId: "g" });
        const out = [];
        for (let i = 0; i < 52; i++) {
          out.push(fb.trackSurvival(() => "text " + i, { key: "k" + i }).persisted);
        }
        const big = fb.trackSurvival(() => "x", { text: "word ".repeat(50000) }).persisted;
        const stored = JSON.parse(localStorage.getItem("kept.survival.v1"));
        return [out.concat([big]), stored.map((c) => c.key), kept.survivalStats];
        """
    )
    assert persisted == [True] * 50 + [False, False, False]
    assert sorted(stored) == sorted(f"k{i}" for i in range(50))
    assert stats["notPersisted"] == 3
    # Resuming takes only what a previous load left: this page's checks stay its own.
    gone = browser.execute_script(
        "return kept.resumeSurvival(() => null).gone + kept.survivalStats.gone"
    )
    assert gone == 0
