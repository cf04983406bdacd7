"""Instrumentation helpers: reading model responses, log_openai/log_anthropic, observe,
generation.

A real :class:`kept.Client` sends to a recording Transport test double. Responses are
real ``openai``/``anthropic`` pydantic objects built from JSON (no network) where those
packages are installed, and plain dicts or SimpleNamespaces otherwise.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

import kept
import kept.integrations.base
from kept import Client
from kept.arguments import InvalidArgumentError
from kept.integrations import (
    Generation,
    ResponseInfo,
    current_generation,
    extract_usage,
    generation,
    log_anthropic,
    log_openai,
    observe,
)
from kept.stats import LogLimiter
from tests.sdk.recorder import Recorder


@pytest.fixture
def make_client(recorder: Recorder) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("transport", recorder)
        kwargs.setdefault("debug", True)
        client = Client(**kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=0)


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


def sent(client: Client, recorder: Recorder) -> list[dict[str, Any]]:
    """The events the client sent, without the per-event ``event_id`` and ``ts``."""
    assert client.flush(timeout=10)
    return [{k: v for k, v in e.items() if k not in ("event_id", "ts")} for e in recorder.events]


def only(client: Client, recorder: Recorder) -> dict[str, Any]:
    events = sent(client, recorder)
    assert len(events) == 1, events
    return events[0]


# --- realistic responses (the SDKs' own types, validated from JSON) ----------------------

CHAT_JSON: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    },
}

RESPONSES_JSON: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1_700_000_000,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Hello, ", "annotations": []},
                {"type": "output_text", "text": "world.", "annotations": []},
            ],
        },
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 4},
        "total_tokens": 52,
    },
}

ANTHROPIC_JSON: dict[str, Any] = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "The user wants...", "signature": "sig"},
        {"type": "text", "text": "Here is the summary", "citations": None},
        {"type": "text", "text": " you asked for.", "citations": None},
        {"type": "tool_use", "id": "toolu_1", "name": "save", "input": {"x": 1}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "output_tokens": 100,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
    },
}


def openai_chat(**changes: Any) -> Any:
    openai = pytest.importorskip("openai", reason="the openai package gives real responses")
    return openai.types.chat.ChatCompletion.model_validate({**CHAT_JSON, **changes})


def openai_response(**changes: Any) -> Any:
    openai = pytest.importorskip("openai", reason="the openai package gives real responses")
    return openai.types.responses.Response.model_validate({**RESPONSES_JSON, **changes})


def anthropic_message(**changes: Any) -> Any:
    anthropic = pytest.importorskip(
        "anthropic", reason="the anthropic package gives real responses"
    )
    return anthropic.types.Message.model_validate({**ANTHROPIC_JSON, **changes})


def test_openai_chat_completion(client: Client, recorder: Recorder) -> None:
    response = openai_chat()
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Capital of France?"},
    ]
    gid = log_openai(
        client,
        response,
        input=messages,
        prompt_version="capitals@2",
        latency_ms=840.4,
        metadata={"route": "/ask"},
        user_id="u1",
        session_id="s1",
        prices={"gpt-4o-mini": (0.15, 0.60)},
    )
    assert only(client, recorder) == {
        "type": "generation",
        "generation_id": gid,
        "user_id": "u1",
        "session_id": "s1",
        "model": "gpt-4o-mini-2024-07-18",
        "prompt_version": "capitals@2",
        "input": messages,
        "output": "Paris.",
        "latency_ms": 840,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost_usd": pytest.approx((1200 * 0.15 + 300 * 0.60) / 1e6),
        "metadata": {"route": "/ask"},
    }


def test_openai_chat_completion_as_object_dict_and_json_alike() -> None:
    response = openai_chat()
    expected = ResponseInfo("gpt-4o-mini-2024-07-18", "Paris.", 1200, 300, None)
    assert extract_usage(response) == expected
    assert extract_usage(response.model_dump()) == expected
    assert extract_usage(json.loads(response.model_dump_json())) == expected


def test_openai_chat_refusal_and_tool_calls() -> None:
    refused = openai_chat(
        choices=[
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
            }
        ]
    )
    assert extract_usage(refused).output == "I can't."
    tool_call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tools_only = openai_chat(
        choices=[
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "tool_calls": [tool_call]},
            }
        ]
    )
    info = extract_usage(tools_only)
    assert info.output is None
    assert (info.input_tokens, info.output_tokens) == (1200, 300)


def test_openai_responses_api(client: Client, recorder: Recorder) -> None:
    response = openai_response()
    assert response.output_text == "Hello, world."  # the SDK's own reading agrees
    expected = ResponseInfo("gpt-4.1-2025-04-14", "Hello, world.", 40, 12, None)
    assert extract_usage(response) == expected
    assert extract_usage(response.model_dump()) == expected
    # The Responses API's input items: a message with typed parts and a tool's output.
    items = [
        {"role": "developer", "content": "Be nice."},
        {"role": "user", "content": [{"type": "input_text", "text": "Say hello"}]},
        {"type": "function_call_output", "call_id": "c1", "output": '{"ok": true}'},
    ]
    log_openai(client, response, input=items, prices={"gpt-4.1": (2.0, 8.0)})
    event = only(client, recorder)
    assert event["input"] == [
        {"role": "developer", "content": "Be nice."},
        {"role": "user", "content": "Say hello"},
        {"role": "function_call_output", "content": '{"ok": true}'},
    ]
    assert event["output"] == "Hello, world."
    assert event["cost_usd"] == pytest.approx((40 * 2.0 + 12 * 8.0) / 1e6)


def test_openai_responses_without_text_has_no_output() -> None:
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "c1",
        "name": "f",
        "arguments": "{}",
        "status": "completed",
    }
    info = extract_usage(openai_response(output=[call]))
    assert info.output is None
    assert info.input_tokens == 40


def test_anthropic_message(client: Client, recorder: Recorder) -> None:
    message = anthropic_message()
    messages = [
        {"role": "user", "content": "Summarize this."},
        {"role": "assistant", "content": "Which part?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "All of it."},
                {"type": "image", "source": {"type": "base64", "data": "..."}},
                {"type": "text", "text": "Please."},
            ],
        },
    ]
    # Cache reads at a tenth of the input price (the optional third price).
    prices = {"claude-sonnet-4-5": (3.0, 15.0, 0.30)}
    gid = log_anthropic(client, message, input=messages, system="You summarize.", prices=prices)
    event = only(client, recorder)
    assert event["generation_id"] == gid
    assert event["model"] == "claude-sonnet-4-5-20250929"
    # Only the text blocks, in order; thinking and tool_use are not what the user saw.
    assert event["output"] == "Here is the summary you asked for."
    # Anthropic counts cache writes and reads apart from input_tokens: kept adds them up.
    assert event["input_tokens"] == 50 + 200 + 1000
    assert event["output_tokens"] == 100
    assert event["cost_usd"] == pytest.approx(((50 + 200) * 3.0 + 1000 * 0.30 + 100 * 15.0) / 1e6)
    assert event["input"] == [
        {"role": "system", "content": "You summarize."},
        {"role": "user", "content": "Summarize this."},
        {"role": "assistant", "content": "Which part?"},
        {"role": "user", "content": "All of it.\nPlease."},
    ]
    assert extract_usage(message.model_dump()) == extract_usage(message)


def test_anthropic_system_forms(client: Client, recorder: Recorder) -> None:
    message = ANTHROPIC_JSON  # a dict works as well as the SDK's object
    blocks = [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]
    log_anthropic(client, message, input="Hi", system=blocks)
    log_anthropic(client, message, input=[{"role": "user", "content": "Hi"}])
    log_anthropic(client, message, system="Not logged without an input")
    first, second, third = sent(client, recorder)
    assert first["input"] == [
        {"role": "system", "content": "Rule one.\nRule two."},
        {"role": "user", "content": "Hi"},
    ]
    assert second["input"] == [{"role": "user", "content": "Hi"}]
    assert "input" not in third


def test_plain_dicts_and_namespaces_without_the_sdks() -> None:
    chat = SimpleNamespace(
        model="gpt-4o",
        choices=[SimpleNamespace(message=SimpleNamespace(role="assistant", content="Hi"))],
        usage=SimpleNamespace(prompt_tokens=3, completion_tokens=1),
    )
    assert extract_usage(chat) == ResponseInfo("gpt-4o", "Hi", 3, 1, None)
    legacy = {"model": "gpt-3.5-turbo-instruct", "choices": [{"text": "Done", "index": 0}]}
    assert extract_usage(legacy) == ResponseInfo("gpt-3.5-turbo-instruct", "Done")
    responses = {"model": "o3", "output_text": "Yes", "usage": {"input_tokens": 5}}
    assert extract_usage(responses) == ResponseInfo("o3", "Yes", 5, None, None)
    anthropic = {
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Ok"}],
        "usage": {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": None},
    }
    assert extract_usage(anthropic) == ResponseInfo("claude-haiku-4-5", "Ok", 5, 1, None)
    message = {"role": "assistant", "content": "Sure"}
    assert extract_usage(message) == ResponseInfo(output="Sure")
    assert extract_usage("Just text") == ResponseInfo(output="Just text")
    assert extract_usage("Just text", model="m") == ResponseInfo(model="m", output="Just text")


def test_prompt_tokens_already_include_the_cache() -> None:
    # LiteLLM-style usage carries both namings; prompt_tokens is already the whole prompt.
    usage = {
        "prompt_tokens": 1250,
        "completion_tokens": 10,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 200,
    }
    assert extract_usage({"model": "m", "usage": usage}).input_tokens == 1250


class Exploding:
    """An object whose every attribute access fails in a way getattr does not catch."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("boom")


class ExplodingProperty:
    @property
    def choices(self) -> Any:
        raise KeyError("boom")


@pytest.mark.parametrize(
    "response",
    [
        None,
        42,
        3.5,
        b"bytes",
        object(),
        [1, 2, 3],
        {},
        Exploding(),
        ExplodingProperty(),
        mock.MagicMock(),
        {"choices": []},
        {"choices": [None]},
        {"choices": "abc", "usage": "abc"},
        {"choices": [{"message": {"content": 5}}]},
        {"output": [None, 1, {"type": "message", "content": None}]},
        {"content": [None, 1, {"type": "image"}]},
        {"model": 5, "usage": {"prompt_tokens": -1, "completion_tokens": True, "cost": "1"}},
        {"model": "", "usage": {"input_tokens": 1.5, "output_tokens": None, "cost": -2}},
        {"usage": {"cost": float("nan")}},
    ],
    ids=repr,
)
def test_odd_objects_give_nothing_and_never_raise(response: object) -> None:
    assert extract_usage(response, prices={"": (1.0, 1.0)}) == ResponseInfo()


def test_odd_objects_are_still_logged(client: Client, recorder: Recorder) -> None:
    gid = log_openai(client, Exploding(), input="Hi", latency_ms=5)
    event = only(client, recorder)
    assert event["generation_id"] == gid
    assert event["model"] == "unknown"
    assert event["latency_ms"] == 5
    assert "output" not in event


# --- prices -------------------------------------------------------------------------------


def usage_response(model: str, **usage: Any) -> dict[str, Any]:
    return {
        "model": model,
        "choices": [{"message": {"content": "x"}}],
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 500_000, **usage},
    }


PRICES = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o-mini-2024-07-18": (0.2, 0.8),
    "free": (0, 0),
}


@pytest.mark.parametrize(
    ("model", "cost"),
    [
        ("gpt-4o-mini-2024-07-18", 0.2 + 0.4),  # exact
        ("gpt-4o-mini-2025-01-01", 0.15 + 0.3),  # the longest prefix, not "gpt-4o"
        ("gpt-4o-2024-08-06", 2.5 + 5.0),
        ("gpt-4o", 2.5 + 5.0),
        ("free-model", 0.0),
        ("gpt-4", None),  # no key prefixes it
        ("claude-sonnet-4-5", None),
    ],
)
def test_prices_exact_then_longest_prefix(model: str, cost: float | None) -> None:
    info = extract_usage(usage_response(model), prices=PRICES)
    assert info.cost_usd == (None if cost is None else pytest.approx(cost))


def test_cost_carried_by_the_response_wins() -> None:
    carried = usage_response("gpt-4o", cost=0.0123)
    assert extract_usage(carried, prices=PRICES).cost_usd == 0.0123
    assert extract_usage(carried).cost_usd == 0.0123
    assert extract_usage(usage_response("gpt-4o", cost=0), prices=PRICES).cost_usd == 0.0


def test_cost_carried_by_a_real_openrouter_style_completion() -> None:
    usage = {**CHAT_JSON["usage"], "cost": 0.0042}
    response = openai_chat(model="openai/gpt-4o-mini", usage=usage)
    assert extract_usage(response, prices=PRICES).cost_usd == 0.0042


def test_cached_input_price_for_openai() -> None:
    response = openai_chat()  # 1200 prompt tokens, 1000 of them read from the cache
    info = extract_usage(response, prices={"gpt-4o-mini": (0.15, 0.6, 0.075)})
    assert info.cost_usd == pytest.approx((200 * 0.15 + 1000 * 0.075 + 300 * 0.6) / 1e6)


@pytest.mark.parametrize(
    "prices",
    [
        {"gpt-4o": (1.0,)},
        {"gpt-4o": (1.0, -1.0)},
        {"gpt-4o": ("1", "2")},
        {"gpt-4o": None},
        {"gpt-4o": (1.0, float("inf"))},
    ],
    ids=repr,
)
def test_bad_prices_give_no_cost(prices: Any) -> None:
    info = extract_usage(usage_response("gpt-4o"), prices=prices)
    assert info.cost_usd is None
    assert info.input_tokens == 1_000_000


def test_prices_loaded_from_json_and_odd_keys() -> None:
    prices = json.loads('{"gpt-4o": [2.5, 10]}')
    prices[7] = (1.0, 1.0)  # an odd key is skipped, not fatal
    info = extract_usage(usage_response("gpt-4o-2024-08-06"), prices=prices)
    assert info.cost_usd == pytest.approx(2.5 + 5.0)
    broken: Any = {"gpt-4o": (1.0, 2.0), "gpt": mock.MagicMock()}
    info = extract_usage(usage_response("gpt-5"), prices=broken)
    assert (info.cost_usd, info.output, info.input_tokens) == (None, "x", 1_000_000)


def test_no_cost_without_both_token_counts() -> None:
    response = {"model": "gpt-4o", "usage": {"prompt_tokens": 10}}
    assert extract_usage(response, prices=PRICES).cost_usd is None


# --- observe --------------------------------------------------------------------------------


def chat_dict(content: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "model": model,
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    }


def test_observe_sync_function(client: Client, recorder: Recorder) -> None:
    @observe(client, prompt_version="ask@1", metadata={"team": "a"}, prices=PRICES)
    def ask(question: str, *, messages: list[dict[str, str]], temperature: float = 0) -> Any:
        """Ask the model."""
        time.sleep(0.05)
        return response

    response = chat_dict("Paris.")
    messages = [{"role": "user", "content": "Capital of France?"}]
    assert ask("ignored: messages= comes first", messages=messages) is response
    event = only(client, recorder)
    assert event["model"] == "gpt-4o-mini"
    assert event["prompt_version"] == "ask@1"
    assert event["input"] == messages
    assert event["output"] == "Paris."
    assert (event["input_tokens"], event["output_tokens"]) == (10, 2)
    assert event["cost_usd"] == pytest.approx((10 * 0.15 + 2 * 0.6) / 1e6)
    assert event["latency_ms"] >= 50
    assert event["metadata"] == {"team": "a", "name": ask.__qualname__}
    # functools.wraps keeps what introspection and frameworks look at.
    assert ask.__name__ == "ask"
    assert ask.__doc__ == "Ask the model."
    assert str(inspect.signature(ask)) == (
        "(question: 'str', *, messages: 'list[dict[str, str]]', temperature: 'float' = 0) -> 'Any'"
    )


def test_observe_async_function(client: Client, recorder: Recorder) -> None:
    @observe(client, name="answer", model="my-model")
    async def answer(prompt: str) -> str:
        await asyncio.sleep(0.05)
        return "It is " + prompt

    assert inspect.iscoroutinefunction(answer)
    assert asyncio.run(answer("late")) == "It is late"
    event = only(client, recorder)
    # A string names no model: the decorator's model is logged.
    assert event["model"] == "my-model"
    assert event["input"] == "late"
    assert event["output"] == "It is late"
    assert event["latency_ms"] >= 50
    assert event["metadata"] == {"name": "answer"}
    assert "input_tokens" not in event


def test_observe_response_model_wins_over_the_argument(client: Client, recorder: Recorder) -> None:
    @observe(client, model="gpt-4o-mini")
    def ask() -> dict[str, Any]:
        return chat_dict("x", model="gpt-4o-mini-2024-07-18")

    @observe(client)
    def nameless() -> str:
        return "x"

    ask()
    nameless()
    assert [e["model"] for e in sent(client, recorder)] == ["gpt-4o-mini-2024-07-18", "unknown"]


def test_observe_with_real_openai_and_anthropic_responses(
    client: Client, recorder: Recorder
) -> None:
    chat, message = openai_chat(), anthropic_message()

    @observe(client)
    def call_openai(messages: list[dict[str, str]]) -> Any:
        return chat

    @observe(client)
    async def call_anthropic(*, messages: list[dict[str, str]], max_tokens: int) -> Any:
        return message

    assert call_openai([{"role": "user", "content": "Q"}]) is chat
    assert asyncio.run(call_anthropic(messages=[], max_tokens=5)) is message
    first, second = sent(client, recorder)
    assert (first["output"], first["input_tokens"]) == ("Paris.", 1200)
    assert first["input"] == [{"role": "user", "content": "Q"}]
    assert (second["output"], second["input_tokens"]) == (
        "Here is the summary you asked for.",
        1250,
    )
    assert second["input"] == []


def test_observe_error_is_logged_and_reraised_unchanged(client: Client, recorder: Recorder) -> None:
    error = ValueError("the app's own error")

    @observe(client, model="gpt-4o", metadata={"team": "a"})
    def fail(prompt: str) -> str:
        time.sleep(0.02)
        raise error

    @observe(client, model="gpt-4o", name="afail")
    async def afail(prompt: str) -> str:
        raise TimeoutError

    with pytest.raises(ValueError, match="the app's own error") as caught:
        fail("Hi")
    assert caught.value is error
    assert caught.value.__context__ is None  # nothing of kept's got chained to it
    with pytest.raises(TimeoutError):
        asyncio.run(afail("Hi"))
    first, second = sent(client, recorder)
    assert first["metadata"] == {"team": "a", "name": fail.__qualname__, "error": "ValueError"}
    assert first["input"] == "Hi"
    assert first["latency_ms"] >= 20
    assert "output" not in first
    assert second["metadata"] == {"name": "afail", "error": "TimeoutError"}


def test_observe_input_rules(client: Client, recorder: Recorder) -> None:
    messages = [{"role": "user", "content": "Q"}]

    @observe(client, model="m")
    def positional(model: str, messages: list[dict[str, str]]) -> str:
        messages.append({"role": "assistant", "content": "A"})  # the app keeps history
        return "A"

    @observe(client, model="m")
    def keyword(*, prompt: str, context: str) -> str:
        return "A"

    @observe(client, model="m")
    def nothing(n: int, *, flag: bool) -> str:
        return "A"

    @observe(client, model="m", capture_input=False)
    def private(prompt: str) -> str:
        return "A"

    class Service:
        @observe(client, model="m")
        def ask(self, question: str) -> str:
            return "A"

    positional("gpt-4o", messages)  # the message list, not the model name
    keyword(context="ignored", prompt="P")
    nothing(1, flag=True)
    private("secret")
    Service().ask("Why?")
    inputs = [e.get("input") for e in sent(client, recorder)]
    # What was sent, not the history the function appended to afterwards.
    assert inputs == [[{"role": "user", "content": "Q"}], "P", None, None, "Why?"]


def test_observe_resolves_a_getter_on_each_call(
    make_client: Callable[..., Client], recorder: Recorder
) -> None:
    current: list[Client | None] = [None]

    @observe(lambda: current[0], model="m")
    def ask(prompt: str) -> str:
        return "A"

    assert ask("no client yet") == "A"  # a getter may return None: nothing is logged
    current[0] = client = make_client()
    assert ask("now") == "A"
    assert [e["input"] for e in sent(client, recorder)] == ["now"]


def test_current_generation_inside_observe(client: Client, recorder: Recorder) -> None:
    seen: list[str] = []

    @observe(client, model="m")
    def ask(prompt: str) -> str:
        g = current_generation()
        assert g is not None
        seen.append(g.id)
        g.user_id = "u7"
        g.metadata["route"] = "/ask"
        return "A"

    assert current_generation() is None
    ask("Q")
    assert current_generation() is None
    event = only(client, recorder)
    assert event["generation_id"] == seen[0]
    assert event["user_id"] == "u7"
    assert event["metadata"]["route"] == "/ask"


def test_observe_never_breaks_the_app_on_kept_failures(
    make_client: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh rate limiter: an earlier test's message must not hide this test's.
    monkeypatch.setattr(kept.integrations.base, "_limiter", LogLimiter())

    def broken_getter() -> Client:
        raise RuntimeError("no client")

    class BrokenClient:
        def log_generation(self, **kwargs: Any) -> str:
            raise RuntimeError("kept bug")

    @observe(broken_getter)
    def first(prompt: str) -> str:
        return "one"

    @observe(BrokenClient())  # type: ignore[arg-type]
    def second(prompt: str) -> str:
        return "two"

    lenient = make_client(debug=False)

    @observe(lenient, metadata={"n": 1})  # type: ignore[dict-item]
    def third(prompt: str) -> str:
        return "three"

    assert (first("x"), second("x"), third("x")) == ("one", "two", "three")
    assert lenient.stats()["dropped_invalid"] == 1
    assert "kept: observe failed (RuntimeError)" in caplog.text
    assert "kept: instrument failed (RuntimeError)" in caplog.text
    assert "no client" not in caplog.text  # only the type: messages may quote app data


def test_observe_in_debug_mode_raises_kept_errors_but_not_over_the_apps(
    client: Client,
) -> None:
    @observe(client, metadata={"n": 1})  # type: ignore[dict-item]
    def ask(prompt: str) -> str:
        return "A"

    @observe(client, metadata={"n": 1})  # type: ignore[dict-item]
    def fail(prompt: str) -> str:
        raise KeyError("app")

    with pytest.raises(InvalidArgumentError, match="metadata"):
        ask("x")
    with pytest.raises(KeyError, match="app"):
        fail("x")


def test_observe_leaves_generator_functions_alone(client: Client) -> None:
    def stream() -> Iterator[str]:
        yield "a"

    assert observe(client)(stream) is stream


def test_observe_overhead_is_small(client: Client) -> None:
    @observe(client, model="m")
    def ask(prompt: str) -> dict[str, Any]:
        return response

    response = chat_dict("A")
    ask("warm up")
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        ask("Q")
    per_call = (time.perf_counter() - start) / n
    # Generous for slow CI; about 10 µs on a laptop, enqueueing included.
    assert per_call < 500e-6


# --- generation (context manager) ----------------------------------------------------------


def test_generation_context_manager(client: Client, recorder: Recorder) -> None:
    with generation(client, model="gpt-4o-mini", input="Q", prompt_version="p@1", user_id="u") as g:
        assert isinstance(g, Generation)
        assert current_generation() is g
        time.sleep(0.05)
        g.record(chat_dict("A", model="gpt-4o-mini-2024-07-18"))
        inside_id = g.id
    assert current_generation() is None
    event = only(client, recorder)
    assert event["generation_id"] == inside_id
    assert event["model"] == "gpt-4o-mini-2024-07-18"
    assert (event["input"], event["output"], event["prompt_version"]) == ("Q", "A", "p@1")
    assert (event["input_tokens"], event["output_tokens"], event["user_id"]) == (10, 2, "u")
    assert event["latency_ms"] >= 50
    assert "metadata" not in event


def test_generation_set_by_hand_for_a_stream(client: Client, recorder: Recorder) -> None:
    with generation(client, model="claude-haiku-4-5", generation_id="g-1") as g:
        chunks = ["Hel", "lo"]  # what a consumed stream gave
        g.output = "".join(chunks)
        g.output_tokens = 2
        g.input = [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
        g.latency_ms = 123.4
    event = only(client, recorder)
    assert event["generation_id"] == "g-1"
    assert event["output"] == "Hello"
    assert event["input"] == [{"role": "user", "content": "Hi"}]
    assert event["latency_ms"] == 123


def test_generation_error_is_logged_and_reraised(client: Client, recorder: Recorder) -> None:
    def handler() -> None:
        with generation(client, model="m", metadata={"team": "a"}) as g:
            g.output = "partial"
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        handler()
    event = only(client, recorder)
    assert event["metadata"] == {"team": "a", "error": "ZeroDivisionError"}
    assert event["output"] == "partial"


def test_generation_async_with(client: Client, recorder: Recorder) -> None:
    ids: list[str] = []

    async def handler() -> None:
        async with generation(client, model="m", input="Q") as g:
            await asyncio.sleep(0.05)
            g.record(anthropic_message())
            ids.append(g.id)
        with pytest.raises(asyncio.CancelledError):
            async with generation(client, model="m"):
                raise asyncio.CancelledError

    asyncio.run(handler())
    first, second = sent(client, recorder)
    assert first["generation_id"] == ids[0]
    assert first["output"] == "Here is the summary you asked for."
    assert first["model"] == "claude-sonnet-4-5-20250929"
    assert first["latency_ms"] >= 50
    assert second["metadata"] == {"error": "CancelledError"}


def test_generation_ids_are_per_task(client: Client, recorder: Recorder) -> None:
    @observe(client, model="m")
    async def ask(prompt: str) -> str:
        g = current_generation()
        await asyncio.sleep(0.01)
        assert current_generation() is g  # not another task's
        return prompt

    async def main() -> list[str]:
        return await asyncio.gather(*(ask(str(i)) for i in range(20)))

    assert asyncio.run(main()) == [str(i) for i in range(20)]
    events = sent(client, recorder)
    assert sorted(e["output"] for e in events) == sorted(str(i) for i in range(20))
    assert len({e["generation_id"] for e in events}) == 20


def test_wrapped_function_identity(client: Client) -> None:
    def plain(x: int) -> int:
        return x + 1

    wrapped = observe(client, model="m")(plain)
    assert wrapped(1) == 2
    assert wrapped.__wrapped__ is plain  # type: ignore[attr-defined]


# --- wired into the Client and the module-level API ------------------------------------


def test_client_methods_and_module_level_helpers(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept, "_default", None)

    @kept.observe(prompt_version="hello@1")
    def answer(prompt: str) -> str:
        return "hi"

    assert answer("hello?") == "hi"  # before any client: nothing logged, nothing raised
    kept.init(transport=recorder)
    try:
        assert answer("hello?") == "hi"
        reply = {"model": "claude-x", "content": [{"type": "text", "text": "ok"}]}
        gid = kept.log_anthropic(reply, input="ping")
        with kept.generation(model="m", input="q") as g:
            g.output = "a"
        client = kept.get_client()
        assert client.log_openai({"model": "gpt-x", "choices": []}, input="x")
        assert kept.flush(5)
    finally:
        kept.close(0)
    events = recorder.events
    assert [(e["model"], e.get("output")) for e in events] == [
        ("unknown", "hi"),
        ("claude-x", "ok"),
        ("m", "a"),
        ("gpt-x", None),
    ]
    assert events[0]["prompt_version"] == "hello@1" and events[1]["generation_id"] == gid
    assert events[2]["generation_id"] == g.id
