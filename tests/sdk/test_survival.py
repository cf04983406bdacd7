"""Survival tracking: the score on scripted edits, and the one-thread scheduler.

Checkpoints of 1-2 s stand in for the default 30 s ... 15 min; the Recorder transport
(the SDK's own seam) stands in for the sink.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from kept import Client, survival_score
from kept.arguments import InvalidArgumentError
from kept.stats import LogLimiter, Stats
from kept.survival_tracking import READER_CAP, SurvivalTracker, tokens
from tests.sdk.recorder import Recorder

OUTPUT = (
    "To export large files, open Settings, choose Export, and pick the streaming mode. "
    "The streaming mode writes rows as they are read, so memory stays flat. "
    "If the export still fails, check the disk space of the target folder."
)
OTHER = (
    "Our team meets every Tuesday to review the quarterly roadmap and celebrate launches; "
    "lunch is provided, and remote colleagues join by video."
)


# --- the score -----------------------------------------------------------------------


def test_untouched_text_survives_whole() -> None:
    assert survival_score(OUTPUT, OUTPUT) == 1.0


def test_text_added_around_the_output_does_not_lower_the_score() -> None:
    current = "Dear customer,\n\n" + OUTPUT + "\n\nBest regards,\nSupport"
    assert survival_score(OUTPUT, current) == 1.0


def test_whitespace_and_case_changes_do_not_count_as_edits() -> None:
    current = OUTPUT.upper().replace(" ", "\n  ")
    assert survival_score(OUTPUT, current) == 1.0


def test_one_edited_word_costs_about_that_word() -> None:
    current = OUTPUT.replace("streaming mode writes", "streaming mode stores")
    score = survival_score(OUTPUT, current)
    words = len(tokens(OUTPUT))
    assert score == pytest.approx((words - 1) / words)


def test_partly_edited_text_scores_its_untouched_share() -> None:
    first, _, third = OUTPUT.split(". ")
    current = f"{first}. The export now streams by default. {third}"
    score = survival_score(OUTPUT, current)
    share = (len(tokens(first)) + len(tokens(third)) + 2) / len(tokens(OUTPUT))
    assert score == pytest.approx(share, abs=0.05)
    assert 0.5 < score < 0.8


def test_rewritten_text_scores_near_zero() -> None:
    rewritten = (
        "Large exports work best with streaming enabled under the Export settings; "
        "low free disk space on the destination is the usual culprit when they fail."
    )
    assert survival_score(OUTPUT, rewritten) < 0.15


def test_deleted_text_scores_zero() -> None:
    assert survival_score(OUTPUT, "") == 0.0
    assert survival_score(OUTPUT, OTHER) == 0.0


def test_moved_sentences_still_count() -> None:
    first, second, third = OUTPUT.split(". ")
    moved = f"{third} Something the user wrote in between. {second}. {first}."
    assert survival_score(OUTPUT, moved) > 0.95


def test_scattered_common_words_are_not_survival() -> None:
    # Every word of the output, but shuffled into no run of three.
    words = tokens(OUTPUT)
    shuffled = " ".join(words[i] for i in range(0, len(words), 2)) + " ".join(
        words[i] for i in range(1, len(words), 2)
    )
    assert survival_score(OUTPUT, shuffled) < 0.3


def test_repeated_text_kept_once_counts_once() -> None:
    assert survival_score("yes yes yes yes yes yes", "yes yes yes") == pytest.approx(0.5)


def test_short_and_empty_outputs() -> None:
    assert survival_score("OK", "ok, done") == 1.0
    assert survival_score("OK", "fine") == 0.0
    assert survival_score("", "anything") == 1.0


# --- the scheduler -------------------------------------------------------------------


class Editor:
    """The user's text, changed by the test as time passes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.reads = 0

    def read(self) -> str:
        self.reads += 1
        return self.text


def make(clients: list[Client], recorder: Recorder, **kwargs: Any) -> Client:
    kwargs.setdefault("survival_checkpoints", (1, 2))
    kwargs.setdefault("flush_interval", 0.05)
    client = Client(transport=recorder, **kwargs)
    clients.append(client)
    return client


def survivals(recorder: Recorder) -> list[tuple[str, int, float]]:
    return sorted(
        (e["generation_id"], e["checkpoint_s"], e["score"])
        for e in recorder.events
        if e["type"] == "survival"
    )


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def kept_threads(client: Client) -> list[threading.Thread]:
    """The client's survival threads: its timer, live reader and stuck readers."""
    tracker = client._tracker
    assert tracker is not None
    readers = [tracker._reader, *tracker._stuck] if tracker._reader else tracker._stuck
    threads = [tracker._thread, *(r.thread for r in readers)]
    return [t for t in threads if t is not None and t.is_alive()]


def test_accept_tracks_the_logged_output_at_each_checkpoint(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder)
    gid = client.log_generation(model="m", output=OUTPUT)
    editor = Editor("Hello,\n" + OUTPUT)
    assert client.accept(gid, current_text=editor.read, user_id="u1", session_id="s1")
    time.sleep(1.5)  # after the 1 s check: the user deletes the last sentence
    editor.text = OUTPUT.rsplit(". ", 1)[0]
    wait_for(lambda: len(survivals(recorder)) == 2)
    assert client.flush(5)
    (_, first, score1), (_, second, score2) = survivals(recorder)
    assert (first, score1) == (1, 1.0)
    assert second == 2 and 0.6 < score2 < 0.8
    event = next(e for e in recorder.events if e["type"] == "survival")
    assert (event["user_id"], event["session_id"]) == ("u1", "s1")
    assert [e["name"] for e in recorder.events if e["type"] == "action"] == ["accept"]
    assert editor.reads == 2 and client.stats()["survival_tracked"] == 1


def test_track_survival_of_a_given_text_with_its_own_checkpoints(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder)
    assert client.track_survival("g-given", lambda: "x " + OUTPUT, text=OUTPUT, checkpoints=[1])
    wait_for(lambda: len(survivals(recorder)) == 1)
    assert survivals(recorder) == [("g-given", 1, 1.0)]


def test_thousands_of_pending_checks_on_one_timer_thread(clients: list[Client]) -> None:
    recorder = Recorder()
    n = 3_000
    client = make(clients, recorder, max_queue_size=4 * n, max_survival_checks=n)
    for i in range(n):
        assert client.track_survival(f"g{i}", lambda: OUTPUT, text=OUTPUT)
    # One more than the bound is dropped and counted, not queued.
    assert not client.track_survival("over", lambda: OUTPUT, text=OUTPUT)
    assert client.stats()["dropped_survival_full"] == 1
    wait_for(lambda: len(survivals(recorder)) == 2 * n, timeout=60)
    assert len(kept_threads(client)) == 2  # the timer and one reader: no thread per check
    assert {(c, s) for _, c, s in survivals(recorder)} == {(1, 1.0), (2, 1.0)}
    assert client._tracker is not None and client._tracker.pending == 0


def test_a_raising_reader_is_counted_and_contained(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, survival_checkpoints=(1,))

    def broken() -> str:
        raise RuntimeError("the editor went away")

    client.track_survival("g-raise", broken, text=OUTPUT)
    client.track_survival("g-none", lambda: None, text=OUTPUT)  # closed document: no event
    client.track_survival("g-int", lambda: 42, text=OUTPUT)  # type: ignore[arg-type, return-value]
    client.track_survival("g-ok", lambda: OUTPUT, text=OUTPUT)
    wait_for(lambda: client.stats()["survival_errors"] == 2 and len(survivals(recorder)) == 1)
    time.sleep(0.2)
    assert survivals(recorder) == [("g-ok", 1, 1.0)]
    assert client.stats()["errors"] == 0


def test_a_hanging_reader_times_out_and_the_others_go_on(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, survival_checkpoints=(1,), survival_read_timeout=0.2)
    release = threading.Event()

    def hang() -> str:
        release.wait(30)
        return OUTPUT

    try:
        client.track_survival("g-hang0", hang, text=OUTPUT)
        client.track_survival("g-hang1", hang, text=OUTPUT)
        client.track_survival("g-ok", lambda: OUTPUT, text=OUTPUT)
        wait_for(lambda: ("g-ok", 1, 1.0) in survivals(recorder))
        assert client.stats()["survival_timeouts"] == 2
        # Each hanging read holds a thread; past the cap reads are skipped instead.
        extra = READER_CAP + 2
        for i in range(extra):
            client.track_survival(f"g-more{i}", hang, text=OUTPUT)
        wait_for(lambda: client.stats()["survival_timeouts"] == 2 + extra)
        time.sleep(0.3)
        assert client.stats()["survival_timeouts"] == 2 + extra
        # The timer, the stuck readers and one live reader at most.
        assert len(kept_threads(client)) <= 1 + READER_CAP + 1
        release.set()  # the app's calls return: their threads end
        wait_for(lambda: len(kept_threads(client)) <= 2)
        client.track_survival("g-after", lambda: OUTPUT, text=OUTPUT)
        wait_for(lambda: ("g-after", 1, 1.0) in survivals(recorder))
    finally:
        release.set()
    assert [gid for gid, _, _ in survivals(recorder)] == ["g-after", "g-ok"]


def test_close_cancels_pending_checks_and_stops_the_timer(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, survival_checkpoints=(60, 120))
    editor = Editor(OUTPUT)
    for i in range(5):
        client.track_survival(f"g{i}", editor.read, text=OUTPUT)
    assert len(kept_threads(client)) == 1  # the timer; no read has been due yet
    started = time.monotonic()
    client.close(timeout=5)
    assert time.monotonic() - started < 2  # no check is waited for
    assert client.stats()["survival_cancelled"] == 5
    wait_for(lambda: not kept_threads(client))
    assert editor.reads == 0 and survivals(recorder) == []
    assert not client.track_survival("late", editor.read, text=OUTPUT)
    assert client.stats()["dropped_closed"] == 1


def test_a_dropped_client_stops_its_timer(recorder: Recorder) -> None:
    client = Client(transport=recorder, survival_checkpoints=(60,))
    client.track_survival("g", lambda: OUTPUT, text=OUTPUT)
    assert client._tracker is not None
    timer = client._tracker._thread
    assert timer is not None and timer.is_alive()
    del client
    timer.join(5)
    assert not timer.is_alive()


def test_invalid_survival_arguments(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, remember_outputs=0)
    gid = client.log_generation(model="m", output=OUTPUT)
    assert not client.track_survival(gid, lambda: OUTPUT)  # no output remembered
    assert not client.track_survival(gid, "not callable", text=OUTPUT)  # type: ignore[arg-type]
    assert not client.track_survival(gid, lambda: OUTPUT, text=OUTPUT, checkpoints=[0])
    assert not client.track_survival("", lambda: OUTPUT, text=OUTPUT)
    assert client.accept(gid, current_text=lambda: OUTPUT)  # the accept itself is sent
    assert client.stats()["dropped_invalid"] == 5
    strict = make(clients, recorder, debug=True, remember_outputs=0)
    with pytest.raises(InvalidArgumentError, match="no text to track"):
        strict.track_survival(gid, lambda: OUTPUT)
    with pytest.raises(InvalidArgumentError, match="positive whole seconds"):
        make(clients, recorder, debug=True, survival_checkpoints=(30, -1))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_run_the_parents_checks(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, survival_checkpoints=(1,))
    parent_reads = Editor(OUTPUT)
    client.track_survival("g-parent", parent_reads.read, text=OUTPUT)
    pid = os.fork()
    if pid == 0:  # child: must not run anything of pytest's
        code = 1
        try:
            assert client._tracker is not None and client._tracker.pending == 0
            child = Editor(OUTPUT)
            client.track_survival("g-child", child.read, text=OUTPUT)
            deadline = time.monotonic() + 10
            while child.reads < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            flushed = client.flush(5)
            mine = [e["generation_id"] for e in recorder.events if e["type"] == "survival"]
            code = 0 if flushed and parent_reads.reads == 0 and mine == ["g-child"] else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    wait_for(lambda: len(survivals(recorder)) == 1)
    assert survivals(recorder) == [("g-parent", 1, 1.0)]
    assert parent_reads.reads == 1


# --- the shared test vectors (the browser's port in /sdk.js checks the same file) ------


def test_the_shared_vectors_hold_for_the_python_scorer() -> None:
    from tests.survival_vectors import PATH

    cases = json.loads(PATH.read_text(encoding="utf-8"))["cases"]
    assert len(cases) > 60
    for case in cases:
        score = survival_score(case["original"], case["current"], case.get("n", 3))
        assert score == case["score"], case["name"]
    # The file covers what the brief asks for: scripts, emoji, whitespace runs, long texts.
    names = {case["name"] for case in cases}
    assert {"chinese", "arabic", "emoji zwj family", "case and whitespace runs"} <= names
    assert max(len(case["original"]) for case in cases) > 50_000
    assert 0 < sum(0 < case["score"] < 1 for case in cases) < len(cases)


def test_the_shared_vectors_file_is_not_stale() -> None:
    from tests.survival_vectors import PATH, render

    assert PATH.read_text(encoding="utf-8") == render(), (
        "tests/data/survival_vectors.json is stale: run python -m tests.survival_vectors"
    )


# --- the no-revert guard -----------------------------------------------------------------


def _guarded_tracker(
    revert_window: float | None = 0.3,
) -> tuple[SurvivalTracker, list[tuple[str, int, float]], list[tuple[str, int]]]:
    emitted: list[tuple[str, int, float]] = []
    reverted: list[tuple[str, int]] = []
    tracker = SurvivalTracker(
        lambda gid, checkpoint, score, uid, sid: emitted.append((gid, checkpoint, score)),
        Stats(),
        LogLimiter(),
        checkpoints=(1, 2),
        revert_window=revert_window,
        on_revert=lambda gid, checkpoint, uid, sid: reverted.append((gid, checkpoint)),
    )
    return tracker, emitted, reverted


def test_text_undone_seconds_after_the_accept_is_flagged_reverted() -> None:
    tracker, emitted, reverted = _guarded_tracker()
    undone = Editor(OUTPUT)
    later = Editor(OUTPUT)
    back = Editor(OUTPUT)
    try:
        assert tracker.track("undone", OUTPUT, undone.read)
        assert tracker.track("later", OUTPUT, later.read)
        assert tracker.track("back", OUTPUT, back.read)
        undone.text = back.text = ""  # undo at once; "back" is pasted again before 1 s
        time.sleep(0.6)  # after the 0.3 s probe: "later" is deleted only now
        later.text = back.text = OUTPUT
        later.text = "Something else entirely."
        wait_for(lambda: len(emitted) == 5)
        time.sleep(1.2)
    finally:
        tracker.close(1)
    # Reverted: one event with score 0, the revert reported, no later checkpoint read.
    assert reverted == [("undone", 1)]
    assert sorted(emitted) == [
        ("back", 1, 1.0), ("back", 2, 1.0),
        ("later", 1, 0.0), ("later", 2, 0.0),  # deleted later: a loss, not a revert
        ("undone", 1, 0.0),
    ]  # fmt: skip
    assert undone.reads == 2  # the probe and the first checkpoint


def test_without_a_revert_window_nothing_is_probed() -> None:
    tracker, emitted, reverted = _guarded_tracker(revert_window=None)
    undone = Editor("")
    try:
        assert tracker.track("undone", OUTPUT, undone.read)
        wait_for(lambda: len(emitted) == 2)
    finally:
        tracker.close(1)
    assert (sorted(emitted), reverted, undone.reads) == (
        [("undone", 1, 0.0), ("undone", 2, 0.0)],
        [],
        2,
    )


@pytest.mark.slow
def test_the_client_reports_a_revert_as_an_action(clients: list[Client]) -> None:
    recorder = Recorder()
    client = make(clients, recorder, survival_checkpoints=(6, 7))
    editor = Editor(OUTPUT)
    assert client.track_survival("g-undone", editor.read, text=OUTPUT)
    editor.text = ""  # undone at once, and not pasted back
    wait_for(lambda: len(survivals(recorder)) == 1, timeout=30)
    time.sleep(1.5)  # the 7 s checkpoint is not read: a reverted text is not tracked on
    assert client.flush(5)
    assert survivals(recorder) == [("g-undone", 6, 0.0)]
    actions = [(e["generation_id"], e["name"]) for e in recorder.events if e["type"] == "action"]
    assert actions == [("g-undone", "revert")]
    assert client.stats()["survival_reverted"] == 1
