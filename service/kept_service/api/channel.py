"""A bounded hand-off from a worker thread to the event loop, with no thread blocked on
the loop's side: the worker waits for room (a slow reader slows it down), the loop
awaits items. A reader that takes nothing for `stall_s` makes the worker give up."""

from __future__ import annotations

import asyncio
import threading


class ChannelClosed(Exception):
    """The other side has gone: the reader stopped, or the worker gave up."""


_CLOSED = object()


class Channel:
    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, stall_s: float) -> None:
        self._loop = loop
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self._room = threading.Semaphore(capacity)
        self._stall_s = stall_s
        self._closed = threading.Event()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # The worker's side

    def put(self, item: object) -> None:
        """Hand `item` over once there is room; ChannelClosed when the reader has gone or
        has taken nothing for `stall_s` seconds."""
        waited = 0.0
        while not self._room.acquire(timeout=0.25):
            waited += 0.25
            if self.closed:
                raise ChannelClosed("the reader has gone")
            if waited >= self._stall_s:
                self.close()
                raise ChannelClosed(f"the reader took nothing for {self._stall_s:g}s")
        if self.closed:
            raise ChannelClosed("the reader has gone")
        self._deliver(item)

    def close(self) -> None:
        """Either side: no more items (a reader waiting gets ChannelClosed)."""
        if not self._closed.is_set():
            self._closed.set()
            self._deliver(_CLOSED)

    def _deliver(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody reads any more
            self._closed.set()

    # The loop's side

    async def get(self) -> object:
        item = await self._items.get()
        if item is _CLOSED:
            raise ChannelClosed("the worker has stopped")
        self._room.release()
        return item
