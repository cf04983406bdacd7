"""A scenario of generations and feedback whose exports are worked out by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from tests.helpers import InProcessServer, feedback, generation

DAY = (datetime.now(timezone.utc) - timedelta(days=1)).replace(
    hour=10, minute=0, second=0, microsecond=0
)
CHAT_E2 = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q2"}]


def at(minutes: float) -> str:
    return (DAY + timedelta(minutes=minutes)).isoformat()


def gen(gid: str, minute: float, model: str, pv: str, prompt: Any, **fields: Any) -> dict[str, Any]:
    return generation(
        generation_id=gid, ts=at(minute), model=model, prompt_version=pv, input=prompt, **fields
    )


def fb(kind: str, gid: str, minute: float, **fields: Any) -> dict[str, Any]:
    return feedback(kind, gid, ts=at(minute), **fields)


def events() -> list[dict[str, Any]]:
    """e1..e12; what each one is, is said next to it."""
    return [
        # e12: a day earlier, accepted
        gen("e12", -24 * 60, "A", "p1", "Q12", output="A12"),
        fb("action", "e12", -24 * 60 + 1, name="accept"),
        # e1: accepted and up-voted; survival at 30 s too low to count as kept
        gen("e1", 1, "A", "p1", "Q1", output="A1"),
        fb("action", "e1", 2, name="accept"),
        fb("vote", "e1", 2, value=1),
        fb("survival", "e1", 3, checkpoint_s=30, score=0.4),
        # e2: chat input with a system prompt, corrected twice (the latest counts), down-voted
        gen("e2", 2, "A", "p1", CHAT_E2, output="A2"),
        fb("correction", "e2", 3, text="A2 first fix"),
        fb("correction", "e2", 4, text="A2 fixed"),
        fb("vote", "e2", 5, value=-1),
        # e3: down-voted
        gen("e3", 3, "A", "p2", "Q3", output="A3"),
        fb("vote", "e3", 4, value=-1),
        # e4: same prompt as e3, accepted, up-voted, kept at 30 s, not at 120 s
        gen("e4", 4, "B", "p1", "Q3", output="A4"),
        fb("action", "e4", 5, name="accept"),
        fb("vote", "e4", 5, value=1),
        fb("survival", "e4", 5.5, checkpoint_s=30, score=0.9),
        fb("survival", "e4", 7, checkpoint_s=120, score=0.3),
        # e5: accepted, output not captured
        gen("e5", 5, "B", "p2", "Q5", output=None),
        fb("action", "e5", 6, name="accept"),
        # e6: the same prompt and output as e1, copied
        gen("e6", 6, "A", "p1", "Q1", output="A1"),
        fb("action", "e6", 7, name="copy"),
        # e7: accepted, then down-voted
        gen("e7", 7, "B", "p1", "Q7", output="A7"),
        fb("action", "e7", 8, name="accept"),
        fb("vote", "e7", 9, value=-1),
        # e8: same prompt as e3, regenerated
        gen("e8", 8, "A", "p2", "Q3", output="A8"),
        fb("action", "e8", 9, name="regenerate"),
        # e9: metadata app=x, accepted, judged helpful
        gen("e9", 9, "A", "p1", "Q9", output="A9", metadata={"app": "x"}),
        fb("action", "e9", 10, name="accept"),
        fb("score", "e9", 10, name="helpfulness", value=0.9, source="llm"),
        # e10: up-voted, judged so-so
        gen("e10", 10, "A", "p1", "Q10", output="A10"),
        fb("vote", "e10", 11, value=1),
        fb("score", "e10", 11, name="helpfulness", value=0.5, source="human"),
        # e11: no feedback
        gen("e11", 11, "A", "p1", "Q11", output="A11"),
    ]


def load(server: InProcessServer) -> None:
    body = [{k: v for k, v in e.items() if v is not None} for e in events()]
    response = server.post(body)
    assert response.status == 202, response.body
    server.runtime.analytics.run_now()


def sft_line(prompt: Any, answer: str) -> dict[str, Any]:
    """The openai-chat record of a text or chat prompt."""
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


# Prompt and target of each generation in the openai-chat export (when endorsed).
SFT = {
    "e12": ("Q12", "A12"),
    "e1": ("Q1", "A1"),
    "e2": (CHAT_E2, "A2 fixed"),
    "e3": ("Q3", "A3"),
    "e4": ("Q3", "A4"),
    "e6": ("Q1", "A1"),
    "e7": ("Q7", "A7"),
    "e8": ("Q3", "A8"),
    "e9": ("Q9", "A9"),
    "e10": ("Q10", "A10"),
    "e11": ("Q11", "A11"),
}


def sft_lines(*ids: str) -> list[dict[str, Any]]:
    return [sft_line(*SFT[i]) for i in ids]
