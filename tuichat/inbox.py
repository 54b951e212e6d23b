"""What the connection's thread received, in order, until the UI takes it: a queue bounded in
lines, where the producer waits when it is full (and so reads nothing more from the socket: the
server's send queue takes the rest, as TCP intends) rather than growing without end.

No Textual: the app wakes itself when `put` says the queue was empty."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


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
