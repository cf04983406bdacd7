"""Survival tracking: how much of an accepted text is still in the user's text later.

After an accept, the app's ``current_text`` callable is read again at each checkpoint
(30 s, 2 min, 5 min, 10 min and 15 min by default) and a ``survival`` event carries the
score. One timer thread serves every pending check; the app's callables run on a
separate reader thread, so one that hangs costs that thread only, never the timer.

The score, :func:`survival_score`, is token n-gram coverage: the share of the accepted
text's tokens that sit inside at least one run of ``n`` consecutive tokens (default 3)
that still occurs somewhere in the current text. This is robust where it matters:

- text the user adds around the output does not lower the score (only the original's
  tokens are counted);
- a block moved elsewhere still counts (runs are found anywhere, not in order);
- an edited word costs about that word, not the rest of the line, as its neighbours
  are still covered by other runs;
- common words scattered over an unrelated text do not count, since a lone token is
  not a run of three.

No-revert guard: a suggestion undone seconds after its accept was never really kept.
Unless ``revert_window`` is None, the tracker also reads the text ``revert_window``
seconds (default 5) after the accept, when that is before the first checkpoint. When the
accepted text is gone then (score 0) and still gone at the first checkpoint, that
checkpoint's event is sent with score 0, ``on_revert`` is called (for a ``revert``
action, which the browser's tracker in ``/sdk.js`` sends) and no later checkpoint is
read.

Each run of the current text is matched at most once, so text repeated in the output
but kept only once counts once. Tokens are words and single punctuation marks, compared
case-insensitively; whitespace is ignored. A character edit distance in a window would
punish moves and cost O(n·m) in pure Python; the n-gram coverage runs in linear time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
import threading
import time
import weakref
from collections import Counter as Multiset
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kept_wire.contract import SURVIVAL_CHECKPOINTS_DEFAULT

from .process_hooks import after_fork_in_child
from .stats import Counter, LogLimiter, Stats, start_daemon

logger = logging.getLogger("kept")

DEFAULT_CHECKPOINTS = SURVIVAL_CHECKPOINTS_DEFAULT
DEFAULT_NGRAM = 3
READER_CAP = 4
"""Reader threads stuck in hanging callables at most; past that, reads are skipped."""

_TOKEN = re.compile(r"\w+|[^\w\s]")

REVERT_WINDOW = 5.0
"""Seconds after an accept at which the no-revert guard looks whether the text is gone."""

CurrentText = Callable[[], "str | None"]
Emit = Callable[[str, int, float, "str | None", "str | None"], object]
OnRevert = Callable[[str, int, "str | None", "str | None"], object]
"""``on_revert(generation_id, checkpoint_s, user_id, session_id)``"""


def tokens(text: str) -> list[str]:
    """Words and punctuation marks of ``text``, case-folded."""
    return _TOKEN.findall(text.casefold())


def survival_score(original: str, current: str, n: int = DEFAULT_NGRAM) -> float:
    """The share (0..1) of ``original``'s tokens still present in ``current``.

    A token is present when a run of ``n`` consecutive original tokens containing it
    occurs in ``current`` (shorter originals use their whole length as the run). An
    empty original scores 1.0: nothing of it can be lost.
    """
    words = tokens(original)
    if not words:
        return 1.0
    n = max(1, min(n, len(words)))
    seen = tokens(current)
    available = Multiset(tuple(seen[i : i + n]) for i in range(len(seen) - n + 1))
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        run = tuple(words[i : i + n])
        if available[run] > 0:
            available[run] -= 1
            covered[i : i + n] = [True] * n
    return sum(covered) / len(words)


def checkpoints_or_error(checkpoints: Sequence[int]) -> tuple[int, ...]:
    """Checkpoints as a sorted tuple of distinct positive ints; ValueError otherwise."""
    if isinstance(checkpoints, (str, bytes)) or not all(
        isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in checkpoints
    ):
        raise ValueError("survival checkpoints must be positive whole seconds")
    result = tuple(sorted(set(checkpoints)))
    if not result:
        raise ValueError("survival checkpoints must not be empty")
    return result


@dataclass
class _Check:
    """One tracked text: its remaining checkpoints, read one after the other."""

    generation_id: str
    text: str
    current_text: CurrentText
    started: float  # monotonic
    checkpoints: tuple[int, ...]
    user_id: str | None
    session_id: str | None
    next_index: int = 0
    probe_at: float | None = None
    """Seconds after the accept of the revert probe, until it has been read."""
    gone_at_probe: bool = False

    @property
    def due(self) -> float:
        if self.probe_at is not None:
            return self.started + self.probe_at
        return self.started + self.checkpoints[self.next_index]


@dataclass
class _Job:
    """A read handed to a reader thread; ``done`` is set once it returned or raised."""

    read: CurrentText
    done: threading.Event = field(default_factory=threading.Event)
    result: str | None = None
    error: BaseException | None = None


class _Reader:
    """A daemon thread that calls the app's callables one at a time.

    When a call outlasts its timeout the tracker abandons the reader (the thread cannot
    be stopped) and starts a new one; the abandoned reader exits after its call returns.
    """

    def __init__(self) -> None:
        self._jobs: list[_Job] = []
        self._ready = threading.Condition(threading.Lock())
        self.abandoned = False
        self.thread = threading.Thread(target=self._run, name="kept-survival-reader", daemon=True)
        self.thread.start()

    def submit(self, job: _Job) -> None:
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()

    def stop(self) -> None:
        with self._ready:
            self.abandoned = True
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self.abandoned:
                    self._ready.wait()
                if not self._jobs:
                    return
                job = self._jobs.pop(0)
            try:
                job.result = job.read()
            except BaseException as exc:  # the app's code: contain anything it raises
                job.error = exc
            job.done.set()
            if self.abandoned:
                return


class SurvivalTracker:
    """Schedules survival checks on one timer thread and emits their scores.

    ``emit(generation_id, checkpoint_s, score, user_id, session_id)`` is called on the
    timer thread (the client enqueues the event there). Checks are bounded by
    ``max_pending`` tracked texts; a read that raises, returns a non-string or takes
    longer than ``read_timeout`` seconds emits nothing for that checkpoint and is counted.
    """

    def __init__(
        self,
        emit: Emit,
        stats: Stats,
        limiter: LogLimiter,
        *,
        checkpoints: Sequence[int] = DEFAULT_CHECKPOINTS,
        max_pending: int = 10_000,
        read_timeout: float = 1.0,
        revert_window: float | None = REVERT_WINDOW,
        on_revert: OnRevert | None = None,
    ) -> None:
        self._emit = emit
        self._stats = stats
        self._limiter = limiter
        self.checkpoints = checkpoints_or_error(checkpoints)
        self._max_pending = max_pending
        self._read_timeout = read_timeout
        self._revert_window = revert_window
        self._on_revert = on_revert
        self._init_state()
        _trackers.add(self)
        _fork_hook.ensure()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Check]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._reader: _Reader | None = None
        self._stuck: list[_Reader] = []

    @property
    def pending(self) -> int:
        """Tracked texts that still have checkpoints to read."""
        with self._lock:
            return len(self._heap)

    def track(
        self,
        generation_id: str,
        text: str,
        current_text: CurrentText,
        *,
        checkpoints: Sequence[int] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> bool:
        """Schedule reads of ``current_text`` at each checkpoint; False when dropped."""
        chosen = self.checkpoints if checkpoints is None else checkpoints_or_error(checkpoints)
        check = _Check(
            generation_id, text, current_text, time.monotonic(), chosen, user_id, session_id
        )
        window = self._revert_window
        if window is not None and 0 < window < chosen[0]:
            check.probe_at = window
        dropped: Counter | None = None
        with self._lock:
            if self._closed:
                dropped = "dropped_closed"
            elif len(self._heap) >= self._max_pending:
                dropped = "dropped_survival_full"
            else:
                heapq.heappush(self._heap, (check.due, next(self._order), check))
                if self._heap[0][2] is check:
                    self._changed.notify()
        if dropped is not None:
            self._stats.add(dropped)
            return False
        self._stats.add("survival_tracked")
        if self._thread is None:
            self._start()
        return True

    def close(self, timeout: float) -> None:
        """Cancel every pending check (counted as ``survival_cancelled``) and stop."""
        with self._lock:
            self._closed = True
            cancelled = len(self._heap)
            self._heap.clear()
            self._changed.notify_all()
            thread, reader = self._thread, self._reader
        if cancelled:
            self._stats.add("survival_cancelled", cancelled)
        if reader is not None:
            reader.stop()
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(timeout, 0.0))

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = start_daemon(
                self._run, "kept-survival", self._stats, self._limiter, "survival checks"
            )

    # --- timer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while (check := self._next_due()) is not None:
            try:
                self._read_and_emit(check)
            except Exception as exc:  # a bug here must not end every later check
                self._stats.add("errors")
                self._limiter.log(
                    logging.ERROR,
                    "survival-bug",
                    "kept: internal error in a survival check (%s)",
                    type(exc).__name__,
                )
            if check.probe_at is not None:
                check.probe_at = None  # the probe is read; the checkpoints follow
            else:
                check.next_index += 1
            if check.next_index < len(check.checkpoints):
                with self._lock:
                    if not self._closed:
                        heapq.heappush(self._heap, (check.due, next(self._order), check))

    def _next_due(self) -> _Check | None:
        """Wait for the earliest check to fall due and take it; None once closed."""
        with self._lock:
            while not self._closed:
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)[2]
                else:
                    wait = None
                self._changed.wait(wait)
        return None

    def _read_and_emit(self, check: _Check) -> None:
        current = self._read(check.current_text)
        if check.probe_at is not None:
            check.gone_at_probe = current is not None and survival_score(check.text, current) == 0
            return
        checkpoint = check.checkpoints[check.next_index]
        if current is None:
            return
        score = survival_score(check.text, current)
        self._emit(check.generation_id, checkpoint, score, check.user_id, check.session_id)
        if check.gone_at_probe and check.next_index == 0 and score == 0:
            # Undone seconds after the accept and still gone: reverted, not tracked on.
            check.next_index = len(check.checkpoints) - 1  # _run's += 1 ends the check
            if self._on_revert is not None:
                self._on_revert(check.generation_id, checkpoint, check.user_id, check.session_id)

    def _read(self, read: CurrentText) -> str | None:
        """The app's current text, or None (counted) when the read fails or hangs."""
        reader = self._usable_reader()
        if reader is None:
            self._count_failure("survival_timeouts", "too many reads of the current text hang")
            return None
        job = _Job(read)
        reader.submit(job)
        if not job.done.wait(self._read_timeout):
            reader.stop()  # it exits once the app's call returns, if ever
            with self._lock:
                self._stuck.append(reader)
                self._reader = None
            self._count_failure(
                "survival_timeouts",
                f"reading the current text took longer than {self._read_timeout} s",
            )
            return None
        if job.error is not None:
            self._count_failure(
                "survival_errors", f"reading the current text raised {type(job.error).__name__}"
            )
            return None
        if not isinstance(job.result, str):
            # None says the text is gone for good (e.g. a closed document): not a failure.
            if job.result is not None:
                self._count_failure("survival_errors", "the current text is not a string")
            return None
        return job.result

    def _usable_reader(self) -> _Reader | None:
        with self._lock:
            self._stuck = [r for r in self._stuck if r.thread.is_alive()]
            if self._reader is None:
                if len(self._stuck) >= READER_CAP:
                    return None
                self._reader = _Reader()
            return self._reader

    def _count_failure(self, counter: Counter, why: str) -> None:
        self._stats.add(counter)
        self._limiter.log(logging.WARNING, counter, "kept: survival check skipped: %s", why)

    def _after_fork_in_child(self) -> None:
        # The parent's checks read the parent's texts; the child starts with none.
        self._init_state()


_trackers: weakref.WeakSet[SurvivalTracker] = weakref.WeakSet()


class RecentOutputs:
    """The outputs of the last ``limit`` generations a client logged, by generation id.

    They let ``accept(gid, current_text=...)`` track survival without the app passing
    the text again. Only kept in memory, also when content is not captured.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        # An OrderedDict drops its oldest in O(1); a dict's `next(iter(d))` walks the
        # deleted slots at its front first (measured: 1.9 µs a call against 0.7 µs).
        self._texts: OrderedDict[str, str] = OrderedDict()
        _recent.add(self)
        _fork_hook.ensure()

    def remember(self, generation_id: str, text: str) -> None:
        with self._lock:
            texts = self._texts
            texts[generation_id] = text
            if len(texts) > self._limit:
                texts.popitem(last=False)  # the oldest

    def get(self, generation_id: str) -> str | None:
        with self._lock:
            return self._texts.get(generation_id)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()


_recent: weakref.WeakSet[RecentOutputs] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tracker in list(_trackers):
        tracker._after_fork_in_child()
    for recent in list(_recent):
        recent._after_fork_in_child()


_fork_hook = after_fork_in_child(_after_fork_in_child)
