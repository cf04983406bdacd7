"""Synthetic traffic for `kept demo`: realistic generations and feedback through the SDK.

The pure part (`SCENARIOS`, `pick_scenario`, `simulate`) is deterministic for a given
`random.Random`. `run_demo` drives a client with it: first a backfill over a past window,
then live traffic whose feedback is sent when it falls due.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol, TextIO

from kept_wire.contract import SURVIVAL_CHECKPOINTS_DEFAULT

CHECKPOINTS = SURVIVAL_CHECKPOINTS_DEFAULT
MAX_BACKFILL = 20_000
_FLUSH_EVERY = 1_000  # backfill pauses for a flush so the client's bounded queue never overflows
_PROGRESS_EVERY_S = 5.0
Clock = Callable[[], datetime]
Sleep = Callable[[float], None]


class DemoClient(Protocol):
    """The part of `kept.client.Client` the demo uses (a test double only needs these)."""

    @property
    def log_generation(self) -> Callable[..., str]: ...
    @property
    def vote(self) -> Callable[..., object]: ...
    @property
    def action(self) -> Callable[..., object]: ...
    @property
    def correct(self) -> Callable[..., object]: ...
    @property
    def score(self) -> Callable[..., object]: ...
    @property
    def survival(self) -> Callable[..., object]: ...
    def flush(self, timeout: float = ...) -> bool: ...
    def stats(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class Model:
    """A model's prices (USD per million tokens), speed and quality offset."""

    name: str
    usd_per_mtok_in: float
    usd_per_mtok_out: float
    base_latency_ms: float
    ms_per_token: float
    quality: float  # added to the prompt version's quality
    share: float  # of traffic


MODELS = (
    Model("gpt-4o-mini", 0.15, 0.60, 450, 9.0, 0.04, 0.5),
    Model("claude-3-5-haiku", 0.80, 4.00, 600, 8.0, 0.08, 0.3),
    Model("llama-3.1-8b", 0.18, 0.18, 220, 5.0, -0.12, 0.2),
)
# prompt_version -> (app, base quality, traffic weight)
PROMPTS = {
    "summarize@1": ("summarizer", 0.50, 1.0),
    "summarize@2": ("summarizer", 0.70, 3.0),
    "reply@3": ("support-bot", 0.66, 2.0),
    "reply@4": ("support-bot", 0.58, 3.0),
    "extract@1": ("extractor", 0.82, 2.0),
}
# The newer reply prompt breaks the small model: the regression dashboards should reveal.
_QUIRKS = {("reply@4", "llama-3.1-8b"): -0.15}
_P_JUDGE = 0.35  # share of generations an LLM judge scores
_COPY_SHARE = {"summarizer": 0.6, "support-bot": 0.2, "extractor": 0.4}


@dataclass(frozen=True)
class Scenario:
    """One (prompt_version, model) pair and how its users react to its output."""

    prompt_version: str
    app: str
    model: Model
    weight: float
    quality: float  # 0..1; every probability below follows from it
    p_accept: float  # the outcomes accept, copy, regenerate, dismiss exclude each other
    p_copy: float
    p_regenerate: float
    p_dismiss: float
    p_edit: float  # of accepted output, edited first (a correction)
    edit_strength: float  # share of words changed by an edit
    p_vote: float
    p_up: float  # up-vote share when accepted; much lower otherwise
    survival_decay: float  # per checkpoint
    p_rewrite: float  # of accepted output, later rewritten (survival falls below 0.5)


def _scenario(prompt_version: str, model: Model) -> Scenario:
    app, base, weight = PROMPTS[prompt_version]
    q = base + model.quality + _QUIRKS.get((prompt_version, model.name), 0.0)
    q = min(0.95, max(0.05, q))
    accepted = 0.12 + 0.7 * q
    return Scenario(
        prompt_version,
        app,
        model,
        weight * model.share,
        q,
        p_accept=accepted * (1 - _COPY_SHARE[app]),
        p_copy=accepted * _COPY_SHARE[app],
        p_regenerate=0.45 * (1 - q),
        p_dismiss=0.25 * (1 - q),
        p_edit=0.08 + 0.4 * (1 - q),
        edit_strength=0.05 + 0.4 * (1 - q),
        p_vote=0.15 + 0.2 * (1 - q),
        p_up=0.25 + 0.7 * q,
        survival_decay=0.02 + 0.12 * (1 - q),
        p_rewrite=0.04 + 0.3 * (1 - q),
    )


SCENARIOS = tuple(_scenario(pv, m) for pv in PROMPTS for m in MODELS)


def pick_scenario(rng: random.Random) -> Scenario:
    """A scenario drawn by traffic weight."""
    return rng.choices(SCENARIOS, weights=[s.weight for s in SCENARIOS])[0]


Method = Literal["vote", "action", "correct", "score", "survival"]


@dataclass(frozen=True)
class Feedback:
    """One call `client.<method>(generation_id, *args, ts=generation ts + offset_s, **kwargs)`."""

    offset_s: float
    method: Method
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Generation:
    """`client.log_generation(**kwargs)` (ts included) and the feedback that follows it."""

    kwargs: dict[str, Any]
    feedback: list[Feedback]


# --- text -------------------------------------------------------------------------------
def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split("|"))


_SUBJECTS = _words("The team|The customer|Engineering|Support|Finance|The reviewer")
_VERBS = _words("discussed|reported|flagged|agreed on|asked about|complained about")
_TOPICS = _words(
    "the Q3 roadmap|a billing outage|the login redesign|late deliveries|the new pricing page|"
    "a flaky CI pipeline|onboarding churn|an app crash|the data retention policy"
)
_DETAILS = _words(
    "a fix is planned for next sprint|two workarounds were proposed|the root cause is unknown|"
    "costs rose 12% month over month|most users were unaffected|a follow-up is set for Friday"
)
_NEXT = _words(
    "schedule a review|share a fix estimate|reply to the customer|update the status page"
)
_DOCS = _words("meeting notes|support ticket|incident report|customer email|product review")
_PRODUCTS = _words("Acme Cloud|Brightbank|ShipFast|Notely")
_QUESTIONS = _words(
    "I can't reset my password|my invoice shows the wrong amount|how do I export my data?|"
    "the app crashes when I upload a photo|my order hasn't arrived yet|can I change my plan?"
)
_OPENINGS = _words("Sorry about that!|Thanks for reaching out.|Good question.|I understand.")
_BODIES = _words(
    "Please try {fix} and tell me if it helps.|I've {done}, expect news within {time}.|"
    "You can do that under Settings > {section}."
)
_FIXES = _words("signing out and back in|clearing the app cache|updating the app")
_DONE = _words("opened a ticket with billing|refunded the difference|escalated this to shipping")
_TIMES = _words("24 hours|two business days|the next hour")
_SECTIONS = _words("Billing|Account|Data & privacy|Plans")
_CLOSINGS = _words("Anything else I can help with?|Have a great day!|")
_EDIT_WORDS = _words("quickly|please|actually|our|the|new|again|now|all|clearly|soon")
_UP_COMMENTS = (None, None, "perfect", "thanks!", "saved me time")
_DOWN_COMMENTS = (None, "too long", "wrong order number", "didn't answer", "made things up")
_LOCALES = _words("en-US|en-GB|de-DE|fr-FR|es-ES")
_USERS = tuple(f"user-{i:03d}" for i in range(1, 121))


def _summarizer(rng: random.Random) -> tuple[str, str, str]:
    said = [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TOPICS)}"
        for _ in range(rng.randint(3, 6))
    ]
    detail = rng.choice(_DETAILS)
    prompt = (
        f"Summarize the following {rng.choice(_DOCS)}:\n\n{'. '.join(said)}. {detail.capitalize()}."
    )
    out = f"{said[0]}, and {detail}. Next step: {rng.choice(_NEXT)}."
    return "You are a concise assistant. Summarize in two sentences.", prompt, out


def _support(rng: random.Random) -> tuple[str, str, str]:
    product = rng.choice(_PRODUCTS)
    body = rng.choice(_BODIES).format(
        fix=rng.choice(_FIXES),
        done=rng.choice(_DONE),
        time=rng.choice(_TIMES),
        section=rng.choice(_SECTIONS),
    )
    out = " ".join(filter(None, (rng.choice(_OPENINGS), body, rng.choice(_CLOSINGS))))
    system = f"You are a friendly support agent for {product}. Answer briefly and politely."
    return system, f"Hi, {rng.choice(_QUESTIONS)}", out


def _extractor(rng: random.Random) -> tuple[str, str, str]:
    order = f"A-{rng.randint(10000, 99999)}"
    date = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    total = f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d} {rng.choice(('USD', 'EUR'))}"
    email = f"Hello, I placed order {order} on {date} and paid {total}. {rng.choice(_QUESTIONS)}"
    out = f'{{"order_id": "{order}", "date": "{date}", "total": "{total}"}}'
    system = "Return only JSON with the keys order_id, date and total."
    return system, f"Extract the order details from this email:\n\n{email}", out


_TEXT = {"summarizer": _summarizer, "support-bot": _support, "extractor": _extractor}


def _tokens(rng: random.Random, text: str) -> int:
    return max(1, round(len(text) / 4 * rng.uniform(0.9, 1.1)))


def _edit(rng: random.Random, text: str, strength: float) -> str:
    """The text a user ends up with: words really replaced, deleted and inserted."""
    words = text.split()
    for _ in range(max(1, round(len(words) * strength))):
        i, op = rng.randrange(len(words)), rng.random()
        if op < 0.35 and len(words) > 3:
            del words[i]
        elif op < 0.7:
            words.insert(i, rng.choice(_EDIT_WORDS))
        else:
            words[i] = rng.choice(_EDIT_WORDS)
    edited = " ".join(words)
    return edited if edited != text else f"{edited} Thanks."


# --- one generation ---------------------------------------------------------------------
def simulate(rng: random.Random, ts: datetime, scenario: Scenario) -> Generation:
    """One generation at `ts` from `scenario`, with its feedback and their offsets."""
    s, m = scenario, scenario.model
    system, prompt, output = _TEXT[s.app](rng)
    chat = s.app == "support-bot" or rng.random() < 0.5
    inp: str | list[dict[str, str]] = (
        [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        if chat
        else prompt
    )
    in_tok, out_tok = _tokens(rng, system + prompt), _tokens(rng, output)
    latency = m.base_latency_ms * rng.lognormvariate(0, 0.4)
    latency += out_tok * m.ms_per_token * rng.lognormvariate(0, 0.2)
    user = rng.choice(_USERS)
    kwargs: dict[str, Any] = {
        "model": m.name,
        "input": inp,
        "output": output,
        "prompt_version": s.prompt_version,
        "latency_ms": round(latency),
        "input_tokens": in_tok,
        "output_tokens": out_tok,
        "cost_usd": round((in_tok * m.usd_per_mtok_in + out_tok * m.usd_per_mtok_out) / 1e6, 9),
        "metadata": {"app": s.app, "locale": rng.choice(_LOCALES), "source": "kept-demo"},
        "user_id": user,
        "session_id": f"{user}-s{rng.randrange(3)}",
        "ts": ts,
    }
    return Generation(kwargs, _feedback(rng, s, output))


def _feedback(rng: random.Random, s: Scenario, output: str) -> list[Feedback]:
    events: list[Feedback] = []
    t = rng.lognormvariate(math.log(6), 0.7)  # seconds until the user reacts
    r = rng.random()
    accepted = r < s.p_accept + s.p_copy
    if accepted:
        similarity = rng.uniform(0.95, 1.0)
        if rng.random() < s.p_edit:
            events.append(Feedback(t, "action", ("edit",)))
            t += rng.lognormvariate(math.log(15), 0.6)
            events.append(Feedback(t, "correct", (_edit(rng, output, s.edit_strength),)))
            similarity = 1 - s.edit_strength
            t += rng.uniform(0.5, 3)
        events.append(Feedback(t, "action", ("copy" if r < s.p_copy else "accept",)))
        events += _survival(rng, s, t, similarity)
    elif r < s.p_accept + s.p_copy + s.p_regenerate:
        events.append(Feedback(t, "action", ("regenerate",)))
    elif r < s.p_accept + s.p_copy + s.p_regenerate + s.p_dismiss:
        events.append(Feedback(t, "action", ("dismiss",)))
    if rng.random() < s.p_vote:
        up = rng.random() < (s.p_up if accepted else s.p_up * 0.35)
        comment = rng.choice(_UP_COMMENTS if up else _DOWN_COMMENTS)
        delay = t + rng.lognormvariate(math.log(10), 0.8)
        events.append(Feedback(delay, "vote", (1 if up else -1,), {"comment": comment}))
    if rng.random() < _P_JUDGE:
        value = round(min(1.0, max(0.0, rng.gauss(s.quality, 0.12))), 3)
        events.append(
            Feedback(rng.uniform(1, 8), "score", ("helpfulness", value), {"source": "llm"})
        )
    return sorted(events, key=lambda e: e.offset_s)


def _survival(rng: random.Random, s: Scenario, accepted_at: float, start: float) -> list[Feedback]:
    rewritten_from = rng.randrange(len(CHECKPOINTS)) if rng.random() < s.p_rewrite else None
    score, events = start, []
    for i, checkpoint in enumerate(CHECKPOINTS):
        if rng.random() < 0.05:
            break  # the user closed the document: nothing left to re-read
        score *= math.exp(-s.survival_decay * rng.uniform(0.5, 1.5))
        if rewritten_from is not None and i >= rewritten_from:
            score = min(score, rng.uniform(0.05, 0.45))
        kwargs = {"checkpoint_s": checkpoint, "score": round(score, 3)}
        events.append(Feedback(accepted_at + checkpoint, "survival", (), kwargs))
    return events


# --- driving a client -------------------------------------------------------------------
@dataclass
class DemoSummary:
    """What `run_demo` sent. `skipped_future` counts feedback never sent because its time
    had not come: beyond now in the backfill, or not yet due when the live phase ended."""

    generations: int = 0
    feedback_events: int = 0
    skipped_future: int = 0
    flushed: bool = False


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Run:
    client: DemoClient
    rng: random.Random
    out: TextIO
    summary: DemoSummary = field(default_factory=DemoSummary)

    def generate(self, ts: datetime) -> tuple[str, list[Feedback]]:
        gen = simulate(self.rng, ts, pick_scenario(self.rng))
        self.summary.generations += 1
        return self.client.log_generation(**gen.kwargs), gen.feedback

    def emit(self, gid: str, fb: Feedback, ts: datetime) -> None:
        getattr(self.client, fb.method)(gid, *fb.args, ts=ts, **fb.kwargs)
        self.summary.feedback_events += 1

    def say(self, message: str) -> None:
        print(f"kept demo: {message}", file=self.out, flush=True)

    def report(self, phase: str, pending: int = 0) -> None:
        s, stats = self.summary, self.client.stats()
        dropped = sum(v for k, v in stats.items() if "drop" in k)
        self.say(
            f"{phase}: generations={s.generations} feedback={s.feedback_events} "
            f"pending={pending} client_dropped={dropped}"
        )

    def backfill(self, window: timedelta, rate: float, end: datetime) -> None:
        wanted = int(rate * window.total_seconds())
        n = min(wanted, MAX_BACKFILL)
        if n:
            capped = f" (capped from {wanted})" if n < wanted else ""
            self.say(f"backfilling {n} generations over the past {window}{capped}")
        for i in range(n):
            ts = end - window + window * ((i + self.rng.random()) / n)
            gid, feedback = self.generate(ts)
            for fb in feedback:
                fb_ts = ts + timedelta(seconds=fb.offset_s)
                if fb_ts <= end:
                    self.emit(gid, fb, fb_ts)
                else:
                    self.summary.skipped_future += 1
            if (i + 1) % _FLUSH_EVERY == 0 or i + 1 == n:
                self.client.flush(timeout=30)
                self.report(f"backfill {i + 1}/{n}")

    def live(self, rate: float, duration: float, now: Clock, sleep: Sleep) -> None:
        start = now()
        end = start + timedelta(seconds=duration)
        report_at = start + timedelta(seconds=_PROGRESS_EVERY_S)
        pending: list[tuple[datetime, int, str, Feedback]] = []  # a heap by due time
        seq, next_gen = itertools.count(), start
        while (t := now()) < end:
            while next_gen <= t:
                gid, feedback = self.generate(t)
                for fb in feedback:
                    heapq.heappush(
                        pending, (t + timedelta(seconds=fb.offset_s), next(seq), gid, fb)
                    )
                next_gen += timedelta(seconds=self.rng.expovariate(rate))  # Poisson arrivals
            while pending and pending[0][0] <= t:
                due, _, gid, fb = heapq.heappop(pending)
                self.emit(gid, fb, due)
            if t >= report_at:
                self.report(f"live {(t - start).total_seconds():.0f}s", len(pending))
                report_at = t + timedelta(seconds=_PROGRESS_EVERY_S)
            wake = min(next_gen, report_at, end, pending[0][0] if pending else end)
            sleep(max(0.0, (wake - t).total_seconds()))
        self.summary.skipped_future += len(pending)


def run_demo(
    client: DemoClient,
    *,
    rate: float = 20.0,
    duration: float = 60.0,
    backfill: timedelta = timedelta(hours=2),
    seed: int | None = None,
    now: Clock = _utcnow,
    sleep: Sleep = time.sleep,
    out: TextIO = sys.stderr,
) -> DemoSummary:
    """Backfill `backfill` of history, then send ~`rate` generations/s live for `duration` s.

    Backfilled generations are capped at `MAX_BACKFILL`; their feedback later than now is
    skipped. Live feedback is sent when due; what is still pending at the end is dropped.
    Ends with `client.flush(timeout=30)`. `now`/`sleep` are injectable for a fake clock.
    """
    if rate <= 0 or duration < 0 or backfill < timedelta(0):
        raise ValueError("kept demo: rate must be > 0, duration and backfill >= 0")
    run = _Run(client, random.Random(seed), out)
    run.backfill(backfill, rate, now())
    if duration > 0:
        run.live(rate, duration, now, sleep)
    s = run.summary
    s.flushed = client.flush(timeout=30)
    run.say(
        f"done: generations={s.generations} feedback={s.feedback_events} "
        f"skipped_future={s.skipped_future} flushed={s.flushed}"
    )
    return s
