"""The demo traffic model: deterministic, with a backfill and a live loop on a fake clock."""

from __future__ import annotations

import io
import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kept_cli import demo
from kept_cli.demo import CHECKPOINTS, SCENARIOS, Generation, pick_scenario, run_demo
from kept_wire.timespec import parse_duration

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
ACTIONS = {"accept", "copy", "regenerate", "dismiss", "edit"}
GENERATION_KEYS = {
    "model", "input", "output", "prompt_version", "latency_ms", "input_tokens",
    "output_tokens", "cost_usd", "metadata", "user_id", "session_id", "ts",
}  # fmt: skip


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.t = start
        self.sleeps = 0

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps += 1
        assert self.sleeps < 1_000_000, "live loop does not advance"
        self.t += timedelta(seconds=seconds)


class RecordingClient:
    """Same method names as kept.client.Client; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.flushes: list[float] = []

    def log_generation(self, **kwargs: Any) -> str:
        gid = f"g{sum(1 for c in self.calls if c[0] == 'log_generation')}"
        self.calls.append(("log_generation", (gid,), kwargs))
        return gid

    def _record(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((method, args, kwargs))

    def vote(self, *args: Any, **kwargs: Any) -> None:
        self._record("vote", *args, **kwargs)

    def action(self, *args: Any, **kwargs: Any) -> None:
        self._record("action", *args, **kwargs)

    def correct(self, *args: Any, **kwargs: Any) -> None:
        self._record("correct", *args, **kwargs)

    def score(self, *args: Any, **kwargs: Any) -> None:
        self._record("score", *args, **kwargs)

    def survival(self, *args: Any, **kwargs: Any) -> None:
        self._record("survival", *args, **kwargs)

    def flush(self, timeout: float = 10.0) -> bool:
        self.flushes.append(timeout)
        return True

    def stats(self) -> dict[str, int]:
        return {"sent": len(self.calls), "dropped_queue_full": 0}

    def generations(self) -> dict[str, dict[str, Any]]:
        return {args[0]: kw for m, args, kw in self.calls if m == "log_generation"}

    def feedback(self) -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        return [c for c in self.calls if c[0] != "log_generation"]


def simulate_many(n: int, seed: int = 7) -> list[Generation]:
    rng = random.Random(seed)
    return [demo.simulate(rng, T0, pick_scenario(rng)) for _ in range(n)]


def test_simulate_is_deterministic_for_a_seed() -> None:
    assert simulate_many(300, seed=1) == simulate_many(300, seed=1)
    assert simulate_many(300, seed=1) != simulate_many(300, seed=2)


def test_generation_and_feedback_follow_the_contract() -> None:
    for gen in simulate_many(3000):
        kw = gen.kwargs
        assert set(kw) == GENERATION_KEYS
        assert kw["ts"] == T0
        assert isinstance(kw["output"], str)
        assert kw["output"]
        inp = kw["input"]
        if isinstance(inp, list):
            assert [m["role"] for m in inp] == ["system", "user"]
            assert all(isinstance(m["content"], str) and m["content"] for m in inp)
        else:
            assert isinstance(inp, str)
            assert inp
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in kw["metadata"].items())
        assert kw["latency_ms"] > 0
        assert kw["input_tokens"] > 0
        assert kw["output_tokens"] > 0
        assert kw["cost_usd"] > 0

        accepted_at = None
        for fb in gen.feedback:
            assert fb.offset_s >= 0
            if fb.method == "action":
                assert fb.args[0] in ACTIONS
                if fb.args[0] in ("accept", "copy"):
                    accepted_at = fb.offset_s
            elif fb.method == "vote":
                assert fb.args[0] in (1, -1)
            elif fb.method == "correct":
                assert isinstance(fb.args[0], str)
                assert fb.args[0] != kw["output"]
            elif fb.method == "survival":
                assert accepted_at is not None, "survival without an earlier accept/copy"
                assert fb.offset_s == pytest.approx(accepted_at + fb.kwargs["checkpoint_s"])
                assert fb.kwargs["checkpoint_s"] in CHECKPOINTS
                assert 0.0 <= fb.kwargs["score"] <= 1.0
            else:
                assert fb.method == "score"
                assert fb.kwargs == {"source": "llm"}
                assert 0.0 <= fb.args[1] <= 1.0
        assert [fb.offset_s for fb in gen.feedback] == sorted(fb.offset_s for fb in gen.feedback)


def test_scenarios_really_differ() -> None:
    shown: Counter[str] = Counter()
    accepted: Counter[str] = Counter()
    kept: defaultdict[str, list[bool]] = defaultdict(list)
    latency: defaultdict[str, list[int]] = defaultdict(list)
    for gen in simulate_many(6000):
        pv = gen.kwargs["prompt_version"]
        shown[pv] += 1
        accepted[pv] += any(f.args[:1] in (("accept",), ("copy",)) for f in gen.feedback)
        kept[pv] += [f.kwargs["score"] >= 0.5 for f in gen.feedback if f.method == "survival"]
        latency[gen.kwargs["model"]].append(gen.kwargs["latency_ms"])
    assert len(shown) == 5
    assert len({s.model.name for s in SCENARIOS}) >= 3
    rates = {pv: accepted[pv] / shown[pv] for pv in shown}
    assert max(rates.values()) - min(rates.values()) > 0.15
    kept_rates = [sum(k) / len(k) for k in kept.values()]
    assert max(kept_rates) - min(kept_rates) > 0.05
    assert min(kept_rates) < 0.9  # rewritten output makes some survival fall below 0.5
    median = {m: sorted(v)[len(v) // 2] for m, v in latency.items()}
    assert median["llama-3.1-8b"] < median["gpt-4o-mini"] < median["claude-3-5-haiku"]


def test_backfill_sends_history_and_skips_future_feedback() -> None:
    clock, client, out = FakeClock(), RecordingClient(), io.StringIO()
    summary = run_demo(
        client, rate=1.0, duration=0, backfill=timedelta(minutes=30), seed=3,
        now=clock.now, sleep=clock.sleep, out=out,
    )  # fmt: skip
    gens = client.generations()
    assert summary.generations == len(gens) == 1800
    assert summary.feedback_events == len(client.feedback())
    assert summary.skipped_future > 0  # the 15-minute survival of the last quarter hour
    assert summary.flushed
    assert client.flushes[-1] == 30
    assert all(T0 - timedelta(minutes=30) <= g["ts"] <= T0 for g in gens.values())
    for _, args, kw in client.feedback():
        assert gens[args[0]]["ts"] <= kw["ts"] <= T0
    assert "backfilling 1800 generations" in out.getvalue()
    assert "done: generations=1800" in out.getvalue()


def test_backfill_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "MAX_BACKFILL", 500)
    clock, client, out = FakeClock(), RecordingClient(), io.StringIO()
    summary = run_demo(
        client, rate=50.0, duration=0, backfill=timedelta(hours=2), seed=3,
        now=clock.now, sleep=clock.sleep, out=out,
    )  # fmt: skip
    assert summary.generations == 500
    assert "capped from 360000" in out.getvalue()


def test_live_loop_on_a_fake_clock() -> None:
    clock, client, out = FakeClock(), RecordingClient(), io.StringIO()
    summary = run_demo(
        client, rate=20.0, duration=60.0, backfill=timedelta(0), seed=5,
        now=clock.now, sleep=clock.sleep, out=out,
    )  # fmt: skip
    end = T0 + timedelta(seconds=60)
    gens = client.generations()
    assert 1080 <= summary.generations == len(gens) <= 1320
    assert all(T0 <= g["ts"] < end for g in gens.values())
    feedback = client.feedback()
    assert summary.feedback_events == len(feedback) > 0
    for _, args, kw in feedback:
        assert gens[args[0]]["ts"] <= kw["ts"] <= end
    assert not any(m == "survival" and kw["checkpoint_s"] >= 120 for m, _, kw in feedback)
    assert summary.skipped_future > 0  # survival checkpoints not yet due when the run ends
    assert summary.flushed
    assert clock.t >= end
    assert out.getvalue().count("kept demo: live") >= 10
    assert "client_dropped=0" in out.getvalue()


def test_run_demo_is_deterministic_with_a_seed_and_fake_clock() -> None:
    def calls() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
        clock, client = FakeClock(), RecordingClient()
        run_demo(
            client, rate=5.0, duration=20.0, backfill=timedelta(minutes=5), seed=11,
            now=clock.now, sleep=clock.sleep, out=io.StringIO(),
        )  # fmt: skip
        return client.calls

    assert calls() == calls()


@pytest.mark.parametrize(
    ("rate", "duration", "backfill"),
    [(0.0, 1.0, timedelta(0)), (1.0, -1.0, timedelta(0)), (1.0, 1.0, timedelta(seconds=-1))],
)
def test_run_demo_rejects_bad_arguments(rate: float, duration: float, backfill: timedelta) -> None:
    with pytest.raises(ValueError, match="rate must be"):
        run_demo(RecordingClient(), rate=rate, duration=duration, backfill=backfill)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        (" 1.5H ", timedelta(minutes=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10", "-5m", "5x", "1h30m", "m", "9" * 20 + "d"])
def test_parse_duration_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
