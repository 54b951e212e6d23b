"""Per-key bounds against abuse: how much one address or account may do.

Pure: no clock of its own (every method takes `now`, in seconds), no threads, no I/O. The state
calls them under its lock. Memory is bounded: each keeps at most `max_keys` keys, dropping those
whose bound has long been back to nothing first, then the least recently used.

- `Quota`: at most `limit` units (bytes of history, accounts registered) per `window` seconds per
  key, as a bucket that drains continuously: a key may use `limit` at once, then `limit` per
  `window` (no edge where two windows' worth pass at once).
- `Backoff`: failures per key (wrong passwords) with a growing delay: the first `free - 1` cost
  nothing; from the `free`-th on, the key must wait `delay` seconds, doubling with each further
  failure up to `cap`. A success clears the key; a key with no failure for `forget` seconds
  starts again from nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Hashable

MAX_KEYS = 100_000  # keys one bound remembers (about 100 bytes each)


def address_key(host: str) -> str:
    """What the per-address limits count: an IPv4 address, or an IPv6 /64 (one is cheap to get
    a whole /64 of addresses)."""
    if ":" not in host:
        return host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    except OSError:
        return host
    return packed[:8].hex() + "::/64"


class Quota:
    """At most `limit` units per `window` seconds per key (`limit` 0: no bound)."""

    __slots__ = ("_keys", "limit", "max_keys", "window")

    def __init__(self, limit: float, window: float, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max(1, max_keys)
        # key -> [units in use, when last updated]; oldest update first
        self._keys: dict[Hashable, list[float]] = {}

    def _used(self, key: Hashable, now: float) -> float:
        entry = self._keys.get(key)
        if entry is None:
            return 0.0
        drained = (now - entry[1]) * self.limit / self.window if self.window > 0 else entry[0]
        return max(0.0, entry[0] - max(0.0, drained))

    def retry_after(self, key: Hashable, amount: float, now: float) -> float:
        """Seconds until `amount` more would fit for `key` (0: now; inf: never, it is more
        than the limit)."""
        if self.limit <= 0:
            return 0.0
        if amount > self.limit:
            return float("inf")
        excess = self._used(key, now) + amount - self.limit
        return excess * self.window / self.limit if excess > 0 else 0.0

    def take(self, key: Hashable, amount: float, now: float) -> bool:
        """Use `amount` units for `key` if they fit in its quota; False (nothing used) if not."""
        if self.limit <= 0:
            return True
        used = self._used(key, now) + amount
        if used > self.limit:
            return False
        keys = self._keys
        keys.pop(key, None)
        keys[key] = [used, now]  # most recent last
        self._forget(now)
        return True

    def _forget(self, now: float) -> None:
        # entries drained back to nothing go
        _trim(self._keys, now, 1, self.window, self.max_keys)

    def __len__(self) -> int:
        return len(self._keys)


class Backoff:
    """Failures per key with a growing delay (`free` 0: no bound)."""

    __slots__ = ("_keys", "cap", "delay", "forget", "free", "max_keys")

    def __init__(
        self,
        free: int = 5,
        delay: float = 1.0,
        cap: float = 300.0,
        forget: float = 3600.0,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.free = free
        self.delay = delay
        self.cap = cap
        self.forget = max(forget, cap)
        self.max_keys = max(1, max_keys)
        # key -> [failures, until when it must wait, when it last failed]; oldest failure first
        self._keys: dict[Hashable, list[float]] = {}

    def _entry(self, key: Hashable, now: float) -> list[float] | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry[2] >= self.forget:
            del self._keys[key]
            return None
        return entry

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds `key` must still wait before it may try again (0: it may now)."""
        entry = self._entry(key, now)
        return max(0.0, entry[1] - now) if entry is not None else 0.0

    def failures(self, key: Hashable, now: float) -> int:
        entry = self._entry(key, now)
        return int(entry[0]) if entry is not None else 0

    def failed(self, key: Hashable, now: float) -> float:
        """One more failure for `key`; return how long it must now wait."""
        if self.free <= 0:
            return 0.0
        entry = self._entry(key, now)
        failures = (entry[0] if entry is not None else 0) + 1
        until = entry[1] if entry is not None else 0.0
        if failures >= self.free:
            steps = min(int(failures - self.free), 62)  # 2**62 s is past any cap
            until = max(until, now + min(self.cap, self.delay * 2.0**steps))
        keys = self._keys
        keys.pop(key, None)
        keys[key] = [failures, until, now]  # most recent last
        self._trim(now)
        return max(0.0, until - now)

    def forgive(self, key: Hashable, now: float) -> None:
        """Take back one failure counted in advance (an attempt that then succeeded), without
        shortening a wait already imposed."""
        entry = self._entry(key, now)
        if entry is not None:
            entry[0] = max(0.0, entry[0] - 1)

    def succeeded(self, key: Hashable) -> None:
        """`key` got it right: its failures are forgotten."""
        self._keys.pop(key, None)

    def _trim(self, now: float) -> None:
        _trim(self._keys, now, 2, self.forget, self.max_keys)

    def __len__(self) -> int:
        return len(self._keys)


def _trim(keys: dict[Hashable, list[float]], now: float, when: int, age: float, most: int) -> None:
    """Drop a little of what `keys` (least recently used first, each entry's time at `when`)
    holds: the two oldest entries if older than `age`, and any beyond `most` entries."""
    for _ in range(2):  # a little each time
        oldest = next(iter(keys))
        if now - keys[oldest][when] < age:
            break
        del keys[oldest]
    while len(keys) > most:
        del keys[next(iter(keys))]
