"""What the connection's thread received, in order, until the UI takes it: a queue bounded in
lines, where the producer waits when it is full (and so reads nothing more from the socket: the
server's send queue takes the rest, as TCP intends) rather than growing without end.

The UI takes it in slices (`Slicer`): a slice of time on the event loop, then the loop turns for
whatever waits (a key, a redraw) before the next, so the keyboard never waits behind a flood.
No Textual: the app wakes its slicer when `put` says the queue was empty."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

# the connection's thread waits when this many received lines wait for the UI (plus one read, 64
# KiB at most); the UI takes them CHUNK_LINES at a time for SLICE_SECONDS, then lets keys in
INBOX_LINES = 10_000
CHUNK_LINES = 10
SLICE_SECONDS = 0.008  # at least; as long as the pause before it (a redraw), up to MAX_SLICE
MAX_SLICE = 0.02
NEXT_SLICE = 0.0005  # the next slice comes after this pause (so that others run first)
NEXT_HOPS = 8  # and after this many turns of the event loop (a key's way through the widgets)


class Inbox(Generic[T]):
    """A bounded queue between one producer thread and the UI; `close` ends it for both."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._items: deque[T] = deque()
        self._changed = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, items: Iterable[T]) -> bool:
        """Add `items` (waiting while `most` are queued); True when the queue was empty, so the
        consumer must be woken (one wake-up per flood, not one per line). False once closed."""
        with self._changed:
            while len(self._items) >= self.most and not self._closed:
                self._changed.wait(0.5)
            if self._closed:
                return False
            wake = not self._items
            self._items.extend(items)
        return wake

    def take(self, most: int) -> tuple[list[T], bool] | None:
        """Up to `most` items, oldest first, and whether more are left; None once closed."""
        with self._changed:
            if self._closed:
                return None
            take = min(most, len(self._items))
            items = [self._items.popleft() for _ in range(take)]
            if take and len(self._items) < self.most:
                self._changed.notify_all()
            return items, bool(self._items)

    def close(self) -> None:
        """The consumer is ending: drop what is queued, and never make the producer wait again."""
        with self._changed:
            self._closed = True
            self._items.clear()
            self._changed.notify_all()


class Slicer(Generic[T]):
    """Takes an `Inbox` on the running event loop a slice at a time: `take(items)` is given what
    a slice took, in order; `alive()` says whether to go on; `failed(error)` hears what `take`
    raised in a later slice (as a timer's callback would report it)."""

    def __init__(
        self,
        inbox: Inbox[T],
        take: Callable[[list[T]], None],
        alive: Callable[[], bool],
        failed: Callable[[Exception], None],
    ) -> None:
        self._inbox = inbox
        self._take = take
        self._alive = alive
        self._failed = failed
        self._ended = 0.0  # when the last slice stopped with more to take

    def drain(self) -> None:
        """Take what the connection received, for a slice of time (SLICE_SECONDS to MAX_SLICE);
        if more is left, go on after whatever else is waiting (a key, a redraw)."""
        start = time.perf_counter()
        # as long as what ran since the last slice (keys, and mostly redrawing the screen), within
        # bounds: on a slow machine a redraw costs more, and the flood must still get half
        since = start - self._ended if self._ended else 0.0
        deadline = start + min(MAX_SLICE, max(SLICE_SECONDS, since))
        self._ended = 0.0
        while True:
            taken = self._inbox.take(CHUNK_LINES)
            if taken is None:
                return
            items, left = taken
            self._take(items)
            if not left:
                return
            now = time.perf_counter()
            if now >= deadline:
                self._ended = now
                # straight on the event loop: a Textual timer this short that starts late skips
                # its only run, and the rest of the inbox would wait for the next line to arrive
                asyncio.get_running_loop().call_later(NEXT_SLICE, self._next, NEXT_HOPS)
                return

    def _next(self, hops: int = 0) -> None:
        """The next slice; first, `hops` turns of the event loop for what is waiting: a key goes
        from the app to the screen to the input line as messages, one turn each, and would
        otherwise wait for a slice at every step."""
        if not self._alive():
            return
        if hops:
            asyncio.get_running_loop().call_soon(self._next, hops - 1)
            return
        try:
            self.drain()
        except Exception as error:
            self._failed(error)
