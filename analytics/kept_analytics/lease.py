"""A lease in ClickHouse: at most one holder at a time, and a fencing token per holder.

Any number of processes may run the analytics jobs (`kept analytics run --every`, every
`kept serve` on a shared server); the lease lets one of them run at a time. It needs
nothing beyond the store kept already uses:

- **Claiming** term N+1 of an expired lease inserts one row with the insert
  deduplication token `<lease>:<N+1>`. The server keeps only the first insert of a
  token, so of the processes that race, exactly one claim is stored; each reads it back
  to learn whether it won.
- **Renewing**: the holder inserts a renewal every `lease_s / 4`. The lease of a term
  expires `lease_s` after its last renewal, judged by the server's clock (clients'
  clocks never matter), so a dead holder is replaced within about 1.25 × `lease_s`.
- **Fencing**: the term is the fencing token. Every write of a job checks, inside the
  statement, that its term is still the newest (`Fence.condition`), and the new holder
  kills the statements of older terms still running on the server before it starts
  (`kill_deposed`). A holder that was paused past its lease and wakes up therefore
  writes nothing that counts.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kept_storage import Store, utc

log = logging.getLogger("kept.analytics")

ANALYTICS_LEASE = "analytics"
"""The lease of the analytics jobs (the outcomes job; alert evaluation later)."""
QUERY_ID_PREFIX = "kept-lease-"

_STATE = """
SELECT c.term, c.holder, c.lease_ms, c.claimed_at,
    greatest(c.claimed_at, r.last_at) AS renewed_at,
    r.released,
    now64(3, 'UTC') AS now
FROM (
    SELECT term, holder, lease_ms, claimed_at FROM analytics_lease
    WHERE lease = {lease:String} ORDER BY term DESC LIMIT 1
) AS c
LEFT JOIN (
    SELECT term, max(at) AS last_at, max(released) AS released FROM analytics_lease_renewals
    WHERE lease = {lease:String} GROUP BY term
) AS r ON r.term = c.term
"""


def this_process() -> str:
    """`host:pid`, how a holder is shown."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class LeaseState:
    """The newest term of a lease, as the server sees it now."""

    term: int
    holder: str
    lease_s: float
    """The holder's lease time."""
    claimed_at: datetime
    renewed_at: datetime
    released: bool
    now: datetime

    @property
    def age_s(self) -> float:
        """Seconds since the holder last renewed (by the server's clock)."""
        return max((self.now - self.renewed_at).total_seconds(), 0.0)

    @property
    def expired(self) -> bool:
        return self.released or self.age_s > self.lease_s

    @property
    def holder_name(self) -> str:
        """`host:pid` of the holder (the instance suffix left out)."""
        return self.holder.rsplit(":", 1)[0]


@dataclass(frozen=True)
class Fence:
    """A holder's term, to make a statement write nothing once the term is not the newest.

    Add `condition` to the WHERE of an INSERT ... SELECT and `params` to its parameters;
    pass `settings` so that the next holder can kill the statement if it still runs.
    """

    lease: str
    term: int

    condition = (
        "{fence_term:UInt64} = (SELECT max(term) FROM analytics_lease "
        "WHERE lease = {fence_lease:String})"
    )

    @property
    def params(self) -> dict[str, Any]:
        return {"fence_term": self.term, "fence_lease": self.lease}

    def settings(self) -> dict[str, Any]:
        return {"query_id": f"{QUERY_ID_PREFIX}{self.lease}-{self.term}-{uuid.uuid4().hex}"}

    def holds(self, store: Store) -> bool:
        """Whether the term is still the newest (for statements that cannot carry the
        condition: check just before them)."""
        newest = store.scalar(
            "SELECT max(term) FROM analytics_lease WHERE lease = {fence_lease:String}",
            self.params,
        )
        return int(newest or 0) == self.term


class Lease:
    """One process's handle on a lease: `acquire`, `renew`, `release`. Not thread-safe:
    one thread renews (the runner's); others read `term`."""

    def __init__(self, store: Store, lease_s: float, name: str = ANALYTICS_LEASE) -> None:
        self._store = store
        self.name = name
        self.lease_s = lease_s
        # host:pid plus an instance id: a pid may be reused after a restart.
        self.holder = f"{this_process()}:{uuid.uuid4().hex[:8]}"
        self.term: int | None = None
        """The term this process holds, or None."""

    @property
    def lease_ms(self) -> int:
        return round(self.lease_s * 1000)

    def state(self) -> LeaseState | None:
        rows = self._store.rows(_STATE, {"lease": self.name})
        if not rows:
            return None
        term, holder, lease_ms, claimed_at, renewed_at, released, now = rows[0]
        return LeaseState(
            int(term), str(holder), lease_ms / 1000, utc(claimed_at), utc(renewed_at),
            bool(released), utc(now),
        )  # fmt: skip

    def acquire(self) -> int | None:
        """Hold the lease if it is free or expired (or already ours): the term held, or
        None when another process holds it."""
        state = self.state()
        if state is not None and state.holder == self.holder and not state.expired:
            self.term = state.term
            return self.term
        if state is not None and not state.expired:
            self.term = None
            return None
        term = state.term + 1 if state is not None else 1
        self._store.command(
            "INSERT INTO analytics_lease (lease, term, holder, lease_ms) "
            "SELECT {lease:String}, {term:UInt64}, {holder:String}, {ms:UInt32}",
            {"lease": self.name, "term": term, "holder": self.holder, "ms": self.lease_ms},
            settings={"insert_deduplication_token": f"{self.name}:{term}"},
        )
        won = self._store.scalar(
            "SELECT holder FROM analytics_lease "
            "WHERE lease = {lease:String} AND term = {term:UInt64}",
            {"lease": self.name, "term": term},
        )
        if won != self.holder:
            self.term = None
            return None
        self.term = term
        self.kill_deposed(term)
        log.info("analytics lease %s: term %d held by %s", self.name, term, this_process())
        return term

    def renew(self) -> bool:
        """Renew the term held; False (and no term held) when it was lost meanwhile."""
        if self.term is None:
            return False
        state = self.state()
        if state is None or state.term != self.term or state.holder != self.holder:
            log.warning("analytics lease %s: term %s lost to a newer one", self.name, self.term)
            self.term = None
            return False
        self._insert_renewal(self.term, released=False)
        return True

    def release(self) -> None:
        """Give the lease up now (the next holder need not wait for it to expire)."""
        if self.term is not None:
            term, self.term = self.term, None
            if Fence(self.name, term).holds(self._store):
                self._insert_renewal(term, released=True)

    def fence(self) -> Fence | None:
        return None if self.term is None else Fence(self.name, self.term)

    def kill_deposed(self, term: int) -> None:
        """Stop statements of older terms still running on the server, so that none of
        them finishes after this holder has started."""
        if self._store.embedded:
            return  # one process owns an embedded store: nothing else can be running
        self._store.command(
            "KILL QUERY WHERE startsWith(query_id, {prefix:String}) "
            "AND NOT startsWith(query_id, {mine:String}) SYNC",
            {
                "prefix": f"{QUERY_ID_PREFIX}{self.name}-",
                "mine": f"{QUERY_ID_PREFIX}{self.name}-{term}-",
            },
        )

    def _insert_renewal(self, term: int, released: bool) -> None:
        # INSERT ... SELECT: now64() makes each block new, and is the server's clock.
        self._store.command(
            "INSERT INTO analytics_lease_renewals (lease, term, released, at) "
            "SELECT {lease:String}, {term:UInt64}, {released:UInt8}, now64(3, 'UTC')",
            {"lease": self.name, "term": term, "released": int(released)},
        )
