"""Alert delivery against a real HTTP server on a local port: the webhook's signature
checked by the server, retries, give-up, isolation of a hanging or failing receiver,
dedupe, queue overflow, trigger/resolve for PagerDuty and Slack, and config errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter

from kept_analytics.alerts.delivery import DeliveryMetrics, DeliveryPolicy, Dispatcher
from kept_analytics.alerts.notification import Notification
from kept_analytics.alerts.receivers import (
    NOTIFICATION_ID_HEADER,
    SIGNATURE_HEADER,
    SLACK_COLOURS,
    TIMESTAMP_HEADER,
    ReceiverConfig,
)
from kept_analytics.alerts.rules import RuleError, parse_rules

SECRET = "correct horse battery staple"
FAST = DeliveryPolicy(backoff_base_s=0.05, backoff_cap_s=0.2, give_up_after_s=10.0)
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
RECEIVER: TypeAdapter[ReceiverConfig] = TypeAdapter(ReceiverConfig)


# ---- a receiving server ------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    """Hold the request until the test releases it (then answer `status`)."""


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    signature_ok: bool | None  # None: the path checks no signature

    def json(self) -> Any:
        return json.loads(self.body)


class Server(ThreadingHTTPServer):
    """Records every POST; answers each path from its script, then with its default."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.scripts: dict[str, list[Answer]] = {}
        self.defaults: dict[str, Answer] = {}
        self.secrets: dict[str, bytes] = {}
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def script(self, path: str, *answers: Answer, then: Answer | None = None) -> None:
        self.scripts[path] = list(answers)
        self.defaults[path] = then or Answer()

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        got = self.at(path)
        assert len(got) >= count, f"{path}: {len(got)} requests, expected {count}"
        return got

    def answer_for(self, path: str) -> Answer:
        with self.lock:
            script = self.scripts.get(path)
            if script:
                return script.pop(0)
            return self.defaults.get(path, Answer())


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server = cast(Server, self.server)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        secret = server.secrets.get(self.path)
        signature_ok = None if secret is None else _verify(secret, self.headers, body)
        record = Received(
            self.path, dict(self.headers.items()), body, time.monotonic(), signature_ok
        )
        with server.lock:
            server.received.append(record)
        answer = Answer(401) if signature_ok is False else server.answer_for(self.path)
        if answer.hang:
            server.release.wait(30)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        reply = b'{"status":"success","message":"Event processed"}'
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _verify(secret: bytes, headers: Any, body: bytes) -> bool:
    """What a receiver does with the documented scheme: HMAC-SHA256 of `timestamp.body`."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    given = headers.get(SIGNATURE_HEADER, "")
    fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(given, "sha256=" + expected)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> DeliveryMetrics:
    return DeliveryMetrics(registry)


# ---- helpers -----------------------------------------------------------------------------


def alert(
    state: str = "firing",
    fingerprint: str = "fp-summarize",
    started_at: datetime = T0,
    severity: str = "critical",
    summary: str = "acceptance_rate of summarize@3 is 6.1 points below summarize@2",
    receivers: tuple[str, ...] = (),
) -> Notification:
    at = started_at if state == "firing" else started_at + timedelta(minutes=20)
    return Notification.model_validate(
        {
            "rule": "summarize-regression",
            "kind": "regression",
            "state": state,
            "severity": severity,
            "group": {"project": "shop", "prompt_version": "summarize@3"},
            "summary": summary,
            "evidence": {"difference": -0.061, "interval": [-0.09, -0.032], "generations": 4210},
            "fingerprint": fingerprint,
            "started_at": started_at,
            "at": at,
            "receivers": receivers,
        }
    )


def receiver(**config: Any) -> ReceiverConfig:
    return RECEIVER.validate_python(config)


def count(registry: CollectorRegistry, receiver: str, outcome: str) -> float:
    labels = {"receiver": receiver, "outcome": outcome}
    return registry.get_sample_value("kept_alert_notifications_total", labels) or 0.0


def wait_count(
    registry: CollectorRegistry, name: str, outcome: str, value: float, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while count(registry, name, outcome) < value and time.monotonic() < deadline:
        time.sleep(0.01)
    assert count(registry, name, outcome) == value


def alert_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kept-alerts-")]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- tests -------------------------------------------------------------------------------


def test_webhook_is_signed_and_the_server_verifies_it(
    server: Server,
    registry: CollectorRegistry,
    metrics: DeliveryMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEPT_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("KEPT_TEST_WRONG_SECRET", "not the secret")
    server.secrets["/hook"] = SECRET.encode()
    hook = receiver(
        name="hook", kind="webhook", url=server.url("/hook"), secret_env="KEPT_TEST_HOOK_SECRET"
    )
    forged = receiver(
        name="forged", kind="webhook", url=server.url("/hook"), secret_env="KEPT_TEST_WRONG_SECRET"
    )
    notification = alert()

    with Dispatcher([hook], metrics, FAST) as dispatcher:
        dispatcher.dispatch(notification)
        wait_count(registry, "hook", "delivered", 1)
    (got,) = server.at("/hook")
    assert got.signature_ok is True
    assert Notification.model_validate_json(got.body) == notification
    assert got.headers[NOTIFICATION_ID_HEADER] == notification.transition_id
    assert got.headers["Content-Type"] == "application/json"

    # The server's check is real: a wrong secret gets 401, which no retry can fix.
    with Dispatcher([forged], metrics, FAST) as dispatcher:
        dispatcher.dispatch(notification)
        wait_count(registry, "forged", "rejected", 1)
    assert [r.signature_ok for r in server.at("/hook")] == [True, False]
    assert count(registry, "forged", "delivered") == 0


def test_a_failing_receiver_gets_the_notification_once_after_retries(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    server.script("/flaky", Answer(500), Answer(500))
    server.script("/limited", Answer(429, {"Retry-After": "0.4"}))
    receivers = [
        receiver(name="flaky", kind="slack", url=server.url("/flaky")),
        receiver(name="limited", kind="slack", url=server.url("/limited")),
    ]
    with Dispatcher(receivers, metrics, FAST) as dispatcher:
        dispatcher.dispatch(alert())
        wait_count(registry, "flaky", "delivered", 1)
        wait_count(registry, "limited", "delivered", 1)
    attempts = server.at("/flaky")
    assert len(attempts) == 3  # 500, 500, 200: delivered on the third, never again
    assert len({a.body for a in attempts}) == 1
    # Backoff: base 0.05 s with jitter of half to all, doubling.
    assert attempts[1].at - attempts[0].at >= 0.025
    assert attempts[2].at - attempts[1].at >= 0.05
    retries = registry.get_sample_value(
        "kept_alert_notification_retries_total", {"receiver": "flaky"}
    )
    assert retries == 2
    # A 429's Retry-After is honoured (up to the backoff cap, 0.2 s here).
    first, second = server.at("/limited")
    assert second.at - first.at >= 0.2


def test_retries_stop_after_a_bounded_time(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    server.script("/down", then=Answer(503))
    policy = DeliveryPolicy(backoff_base_s=0.05, backoff_cap_s=0.2, give_up_after_s=0.8)
    down = receiver(name="down", kind="slack", url=server.url("/down"))
    started = time.monotonic()
    with Dispatcher([down], metrics, policy) as dispatcher:
        dispatcher.dispatch(alert())
        wait_count(registry, "down", "gave_up", 1)
    took = time.monotonic() - started
    attempts = len(server.at("/down"))
    assert 0.5 < took < 3.0, took
    assert 3 <= attempts <= 25, attempts
    assert count(registry, "down", "delivered") == 0


def test_a_hanging_or_failing_receiver_delays_no_other(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    server.script("/hang", then=Answer(hang=True))
    server.script("/down", then=Answer(500))
    receivers = [
        receiver(name="hang", kind="slack", url=server.url("/hang"), timeout_s=5),
        receiver(name="down", kind="slack", url=server.url("/down")),
        receiver(name="refused", kind="slack", url=f"http://127.0.0.1:{closed_port()}/"),
        receiver(name="good", kind="slack", url=server.url("/good")),
    ]
    dispatcher = Dispatcher(receivers, metrics, FAST)
    started = time.monotonic()
    longest_call = 0.0
    for i in range(5):
        before = time.monotonic()
        dispatcher.dispatch(alert(fingerprint=f"fp-{i}"))
        longest_call = max(longest_call, time.monotonic() - before)
    server.wait_for("/good", 5)
    good_done = time.monotonic() - started
    print(
        f"longest dispatch {longest_call * 1e3:.2f} ms; the good receiver done in {good_done:.3f} s"
    )
    assert longest_call < 0.05
    assert good_done < 2.5  # the hanging receiver's timeout is 5 s
    wait_count(registry, "good", "delivered", 5, timeout=2)  # its answers on their way back
    assert len(server.at("/hang")) == 1  # its first notification still hangs

    closing = time.monotonic()
    dispatcher.close(timeout=0.5)
    close_took = time.monotonic() - closing
    print(f"close(0.5) returned after {close_took:.3f} s")
    assert close_took < 1.5
    assert count(registry, "hang", "dropped_closed") == 4  # the queued; one is in flight
    # Queued ones are counted by close; one whose attempt was under way, when it ends.
    wait_count(registry, "down", "dropped_closed", 5, timeout=2)
    wait_count(registry, "refused", "dropped_closed", 5, timeout=2)
    dispatcher.dispatch(alert(fingerprint="fp-late"))  # after close: counted, never raises
    assert count(registry, "good", "dropped_closed") == 1

    server.release.set()  # the hung request ends, and with it the last worker
    deadline = time.monotonic() + 10
    while alert_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert alert_threads() == []
    assert count(registry, "hang", "delivered") == 1


def test_close_delivers_what_is_queued(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    dispatcher = Dispatcher(
        [receiver(name="good", kind="slack", url=server.url("/good"))], metrics, FAST
    )
    for i in range(20):
        dispatcher.dispatch(alert(fingerprint=f"fp-{i}"))
    dispatcher.close(timeout=10)
    assert count(registry, "good", "delivered") == 20
    assert len(server.at("/good")) == 20


def test_the_same_transition_is_delivered_once(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    receivers = [
        receiver(name="a", kind="slack", url=server.url("/a")),
        receiver(name="b", kind="slack", url=server.url("/b")),
    ]
    with Dispatcher(receivers, metrics, FAST) as dispatcher:
        dispatcher.dispatch(alert())
        dispatcher.dispatch(alert())  # e.g. the evaluator re-emitting after a hiccup
        wait_count(registry, "a", "delivered", 1)
        dispatcher.dispatch(alert())  # after delivery too
        # A new episode of the same alert (it resolved and fired again) is news.
        dispatcher.dispatch(alert(started_at=T0 + timedelta(hours=1)))
        wait_count(registry, "a", "delivered", 2)
        wait_count(registry, "b", "delivered", 2)
    for path in ("/a", "/b"):
        bodies = [r.json()["text"] for r in server.at(path)]
        assert len(bodies) == 2
    assert count(registry, "a", "duplicate") == 2
    assert count(registry, "b", "duplicate") == 2


def test_a_full_queue_drops_the_oldest(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    server.script("/slow", Answer(hang=True))
    policy = DeliveryPolicy(queue_size=2, backoff_base_s=0.05, give_up_after_s=10)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KEPT_TEST_SLOW", SECRET)
        slow = receiver(
            name="slow", kind="webhook", url=server.url("/slow"), secret_env="KEPT_TEST_SLOW"
        )
    with Dispatcher([slow], metrics, policy) as dispatcher:
        dispatcher.dispatch(alert(fingerprint="fp-1"))
        server.wait_for("/slow", 1)  # in flight, hanging: the queue is empty again
        for i in range(2, 6):
            dispatcher.dispatch(alert(fingerprint=f"fp-{i}"))
        assert count(registry, "slow", "dropped_full") == 2  # fp-2 and fp-3
        server.release.set()
        wait_count(registry, "slow", "delivered", 3)
    assert [r.json()["fingerprint"] for r in server.at("/slow")] == ["fp-1", "fp-4", "fp-5"]


def test_firing_then_resolved_pagerduty_and_slack(
    server: Server,
    registry: CollectorRegistry,
    metrics: DeliveryMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEPT_TEST_PD_KEY", "R0UT1NGKEY")
    server.script("/v2/enqueue", then=Answer(202))
    receivers = [
        receiver(
            name="pager",
            kind="pagerduty",
            url=server.url("/v2/enqueue"),
            routing_key_env="KEPT_TEST_PD_KEY",
        ),
        receiver(name="team", kind="slack", url=server.url("/slack")),
    ]
    firing = alert(summary="acceptance <fell> & stayed down")
    resolved = alert(state="resolved", summary="acceptance recovered")
    with Dispatcher(receivers, metrics, FAST) as dispatcher:
        dispatcher.dispatch(firing)
        dispatcher.dispatch(resolved)
        wait_count(registry, "pager", "delivered", 2)
        wait_count(registry, "team", "delivered", 2)

    trigger, resolve = (r.json() for r in server.at("/v2/enqueue"))
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == firing.fingerprint
    assert trigger["routing_key"] == resolve["routing_key"] == "R0UT1NGKEY"
    payload = trigger["payload"]
    assert payload["source"] == "kept"
    assert payload["severity"] == "critical"
    assert payload["summary"] == firing.summary
    assert payload["custom_details"] == firing.evidence
    assert datetime.fromisoformat(payload["timestamp"]) == firing.at
    assert datetime.fromisoformat(resolve["payload"]["timestamp"]) == resolved.at

    fired, ended = (r.json() for r in server.at("/slack"))
    assert fired["text"].startswith(":rotating_light: Firing (critical)")
    assert "acceptance &lt;fell&gt; &amp; stayed down" in fired["text"]  # no stray markup
    assert fired["attachments"][0]["color"] == SLACK_COLOURS["critical"]
    fields = fired["attachments"][0]["blocks"][0]["fields"]
    assert {"type": "mrkdwn", "text": "*prompt_version*\nsummarize@3"} in fields
    assert "Resolved" in ended["text"] and "acceptance recovered" in ended["text"]
    assert ended["attachments"][0]["color"] == SLACK_COLOURS["resolved"]


def test_a_notification_goes_only_to_the_receivers_it_names(
    server: Server, registry: CollectorRegistry, metrics: DeliveryMetrics
) -> None:
    receivers = [
        receiver(name="a", kind="slack", url=server.url("/a")),
        receiver(name="b", kind="slack", url=server.url("/b")),
    ]
    with Dispatcher(receivers, metrics, FAST) as dispatcher:
        dispatcher.dispatch(alert(receivers=("b", "gone")))
        wait_count(registry, "b", "delivered", 1)
    assert server.at("/a") == []
    assert count(registry, "gone", "unknown_receiver") == 1


@pytest.mark.parametrize(
    ("entry", "name", "field", "says"),
    [
        (
            {"kind": "webhook", "url": "http://h/", "secret_env": "KEPT_TEST_UNSET"},
            "hook",
            "secret_env",
            "KEPT_TEST_UNSET is not set",
        ),
        (
            {
                "kind": "webhook",
                "url": "http://h/",
                "secret": "s3cr3t",
                "secret_env": "KEPT_TEST_SET",
            },
            "hook",
            "secret",
            "must not be in the file",
        ),
        ({"kind": "webhook", "url": "http://h/"}, "hook", "secret_env", "required"),
        ({"kind": "slack", "url": "ftp://h/x"}, "chat", "url", "http:// or https://"),
        (
            {"kind": "slack", "url": "http://h/", "timeout_s": 0},
            "chat",
            "timeout_s",
            "greater than 0",
        ),
        ({"kind": "pagerduty"}, "pager", "routing_key_env", "exactly one"),
        (
            {"kind": "pagerduty", "routing_key": "k", "routing_key_env": "KEPT_TEST_SET"},
            "pager",
            "routing_key_env",
            "exactly one",
        ),
        (
            {"kind": "pagerduty", "routing_key_env": "KEPT_TEST_UNSET"},
            "pager",
            "routing_key_env",
            "not set",
        ),
        ({"kind": "teams", "url": "http://h/"}, "chat", "kind", "teams"),
        (
            {"kind": "slack", "url": "http://h/", "channel": "#x"},
            "chat",
            "channel",
            "not permitted",
        ),
    ],
)
def test_bad_receiver_config_names_the_receiver_and_field(
    entry: dict[str, Any], name: str, field: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEPT_TEST_SET", "value")
    monkeypatch.delenv("KEPT_TEST_UNSET", raising=False)
    text = json.dumps({"rules": [], "receivers": [{"name": name, **entry}]})  # JSON is YAML
    with pytest.raises(RuleError) as caught:
        parse_rules(text)
    message = str(caught.value)
    assert repr(name) in message
    assert f"field {field}:" in message
    assert says in message
    assert "s3cr3t" not in message
