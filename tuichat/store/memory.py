"""The storage Protocols in plain dicts and lists, no SQLite: `MemoryStore`, for a server that
keeps nothing across restarts (`--no-history`-style) and for unit tests.

It behaves as a `Store` on ":memory:" does, which the unit tests use today: added messages wait
for `commit`, but a read commits them first (so a test reads what it just wrote; a `Store` on a
file reads only what the server committed, and the server commits before it runs any read); the
other calls that commit first in `Store` do here too, and lists come out in the order SQLite gives
them. One lock guards it all: the server reads history from other threads, outside its state lock.
"""

from __future__ import annotations

import bisect
import dataclasses
import secrets
import threading
from dataclasses import dataclass

from tuichat.store.records import (
    Message,
    Position,
    StoredChannel,
    Watermark,
    parties,
    walk_guest_conversations,
)


@dataclass(slots=True)
class _Account:
    display: str
    salt: bytes
    digest: bytes
    created: int  # ms
    last_login: int | None  # ms of the last SASL login; None: never since REGISTER


class MemoryStore:
    """History, accounts, bans, read markers and channels, in this process only."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pending: list[Message] = []
        self._failure: Exception | None = None
        self._last_seq = 0  # the order-of-writing number of the last message committed
        self._prefix = secrets.token_hex(6)  # as `Store`'s: ids of two runs never collide
        self._counter = 0
        # committed history: each key's positions in order, and its messages in the same order
        self._positions: dict[str, list[Position]] = {}
        self._messages: dict[str, list[Message]] = {}
        self._keys: list[str] = []  # the keys of `_positions`, sorted (for the guest walks)
        self._by_msgid: dict[str, tuple[str, Position]] = {}
        # the latest time of each conversation under each party that may list it (TARGETS)
        self._conversations: dict[str, dict[str, int]] = {}
        self._accounts: dict[str, _Account] = {}
        self._klines: dict[str, tuple[str, str, float]] = {}
        self._markers: dict[str, dict[str, int]] = {}  # account -> key -> time (ms)
        self._channels: dict[str, StoredChannel] = {}

    def close(self) -> None:
        self.commit()

    # -- writing history --------------------------------------------------------------------------

    def new_msgid(self) -> str:
        """A unique message id: this run's random prefix and a counter."""
        self._counter += 1
        return f"{self._prefix}{self._counter:x}"

    def add(self, message: Message) -> None:
        """Queue a message for the next `commit`."""
        # as it comes back from SQLite: its own tags, and no empty ones
        tags = dict(message.tags) if message.tags else None
        with self._lock:
            self._pending.append(dataclasses.replace(message, tags=tags))

    def commit(self) -> bool:
        """Write what was added, all or nothing: False (and `take_failure` says why) when a
        msgid is stored already, as SQLite's unique index refuses it."""
        with self._lock:
            if not self._pending:
                return True
            rows, self._pending = self._pending, []
            ids = {row.msgid for row in rows}
            if len(ids) < len(rows) or not ids.isdisjoint(self._by_msgid):
                self._failure = ValueError("a message id is stored already")
                return False
            for row in rows:
                self._last_seq += 1
                self._insert(row, (row.time, self._last_seq))
                self._touch(row.key, row.time)
            return True

    def take_failure(self) -> Exception | None:
        with self._lock:
            failure, self._failure = self._failure, None
            return failure

    def written(self) -> Watermark:
        return Watermark(self._last_seq + len(self._pending))

    def _insert(self, message: Message, at: Position) -> None:
        positions = self._positions.get(message.key)
        if positions is None:
            positions = self._positions[message.key] = []
            self._messages[message.key] = []
            bisect.insort(self._keys, message.key)
        i = bisect.bisect(positions, at)
        positions.insert(i, at)
        self._messages[message.key].insert(i, message)
        self._by_msgid[message.msgid] = (message.key, at)

    def _cut(self, key: str, end: int) -> int:
        """Delete the first `end` messages of `key` (and the key when none is left)."""
        positions, messages = self._positions[key], self._messages[key]
        for message in messages[:end]:
            del self._by_msgid[message.msgid]
        del positions[:end], messages[:end]
        if not positions:
            del self._positions[key], self._messages[key]
            self._keys.pop(bisect.bisect_left(self._keys, key))
        return end

    def _touch(self, key: str, time: int) -> None:
        """`key` has a message at `time`: its entries in the list of conversations move on."""
        for party in parties(key):
            listed = self._conversations.setdefault(party, {})
            listed[key] = max(listed.get(key, time), time)

    def _unlist(self, key: str, party: str) -> int | None:
        listed = self._conversations.get(party)
        time = listed.pop(key, None) if listed is not None else None
        if listed is not None and not listed:
            del self._conversations[party]
        return time

    # -- reading history --------------------------------------------------------------------------

    def find(self, msgid: str) -> tuple[Message, int] | None:
        self.commit()
        with self._lock:
            found = self._by_msgid.get(msgid)
            if found is None:
                return None
            key, at = found
            i = bisect.bisect_left(self._positions[key], at)
            return self._messages[key][i], at[1]

    def locate(self, msgid: str) -> tuple[str, Position] | None:
        self.commit()
        with self._lock:
            return self._by_msgid.get(msgid)

    def query(
        self,
        key: str,
        limit: int,
        *,
        after: Position | None = None,
        before: Position | None = None,
        newest: bool = True,
        through: Watermark | None = None,
    ) -> list[Message]:
        if limit <= 0:
            return []
        self.commit()
        with self._lock:
            positions = self._positions.get(key)
            if positions is None:
                return []
            low = bisect.bisect_right(positions, after) if after is not None else 0
            high = bisect.bisect_left(positions, before) if before is not None else len(positions)
            found: list[Message] = []
            for i in range(high - 1, low - 1, -1) if newest else range(low, high):
                if through is None or positions[i][1] <= through:
                    found.append(self._messages[key][i])
                    if len(found) == limit:
                        break
        if newest:
            found.reverse()
        return found

    def targets(
        self, channels: list[str], party: str, start: int, end: int, limit: int
    ) -> list[tuple[str, str, int]]:
        low, high = min(start, end), max(start, end)
        if limit <= 0:
            return []
        self.commit()
        rows: list[tuple[str, int]] = []
        with self._lock:
            for channel in dict.fromkeys(channels):
                time = self._conversations.get(channel, {}).get(channel)
                if time is not None and low < time < high:
                    rows.append((channel, time))
            mine = self._conversations.get(party, {})
            rows += sorted(
                ((key, time) for key, time in mine.items() if low < time < high),
                key=lambda row: (row[1], row[0]),
            )[:limit]
        rows.sort(key=lambda row: (row[1], row[0]))
        result = []
        for key, latest in rows[:limit]:
            if " " in key:
                a, _, b = key.partition(" ")
                name = b if a == party else a
            else:
                name = key
            result.append((key, name, latest))
        return result

    def count(self) -> int:
        self.commit()
        with self._lock:
            return len(self._by_msgid)

    def has_messages(self, key: str) -> bool:
        self.commit()
        with self._lock:
            return key in self._positions

    def guest_conversation(
        self, party: str, nick: str, hops: int = 256, *, reading: bool = False
    ) -> str | None:
        """The walk `Store.guest_conversation` makes, over the sorted keys (`reading` or not, it
        reads what was added, as a `Store` on ":memory:" does)."""
        self.commit()
        with self._lock:

            def latest(key: str) -> int | None:
                positions = self._positions.get(key)
                return max(at[1] for at in positions) if positions else None

            def first_after(low: str, high: str) -> str | None:
                i = bisect.bisect_right(self._keys, low)
                return self._keys[i] if i < len(self._keys) and self._keys[i] < high else None

            return walk_guest_conversations(party, nick, hops, first_after, latest)

    # -- deleting and moving history --------------------------------------------------------------

    def prune(self, before_ms: int) -> int:
        """Delete committed messages older than `before_ms` (in one hold of the lock: no disk)."""
        removed = 0
        with self._lock:
            for key in list(self._positions):
                end = bisect.bisect_left(self._positions[key], (before_ms, 0))
                if end:
                    removed += self._cut(key, end)
            for party, listed in list(self._conversations.items()):
                for key in [key for key, time in listed.items() if time < before_ms]:
                    self._unlist(key, party)
            for marks in self._markers.values():
                for key in [key for key in marks if key not in self._positions]:
                    del marks[key]
        return removed

    def rekey(self, changes: list[tuple[str, str]]) -> None:
        for old, new in changes:
            if old == new:
                continue
            with self._lock:
                if old in self._positions:
                    moved = list(zip(self._positions[old], self._messages[old], strict=True))
                    self._cut(old, len(moved))
                    for at, message in moved:
                        self._insert(dataclasses.replace(message, key=new), at)
                time = self._conversations.get(parties(old)[0], {}).get(old)
                for party in parties(old):
                    self._unlist(old, party)
                if time is not None:
                    self._touch(new, time)

    def forget_conversations(self, names: set[str]) -> int:
        removed = 0
        with self._lock:
            start = bisect.bisect_right(self._keys, "$")  # past every "#channel", as `Store`
            for key in self._keys[start:]:
                first, space, second = key.partition(" ")
                if space and (first in names or second in names):
                    removed += self._cut(key, len(self._positions[key]))
                    for listed in self._conversations.values():
                        listed.pop(key, None)
            self._conversations = {p: keys for p, keys in self._conversations.items() if keys}
        return removed

    # -- accounts, bans, read markers -------------------------------------------------------------

    def account(self, folded: str) -> tuple[str, bytes, bytes] | None:
        with self._lock:
            found = self._accounts.get(folded)
            return (found.display, found.salt, found.digest) if found else None

    def create_account(
        self, folded: str, display: str, salt: bytes, digest: bytes, now_ms: int
    ) -> bool:
        with self._lock:
            if folded in self._accounts:
                return False
            self._accounts[folded] = _Account(display, salt, digest, now_ms, None)
            return True

    def logged_in(self, folded: str, now_ms: int) -> None:
        with self._lock:
            found = self._accounts.get(folded)
            if found is not None:
                found.last_login = now_ms

    def expire_accounts(self, before_ms: int, in_use: set[str], most: int = 1000) -> list[str]:
        self.commit()
        with self._lock:
            unused = [
                name
                for name, found in self._accounts.items()
                if found.last_login is None and found.created < before_ms
            ]
            unused.sort(key=lambda name: self._accounts[name].created)
            names = [name for name in unused[: most + len(in_use)] if name not in in_use][:most]
            for name in names:
                self._markers.pop(name, None)
                for folded, chan in self._channels.items():
                    if chan.founder == name:
                        self._channels[folded] = dataclasses.replace(chan, founder=None)
                del self._accounts[name]
        return names

    def klines(self) -> list[tuple[str, tuple[str, str, float]]]:
        with self._lock:
            return list(self._klines.items())

    def add_kline(self, mask: str, reason: str, setter: str, expires: float) -> None:
        self.commit()
        with self._lock:
            self._klines.pop(mask, None)  # a replaced one comes last, as in SQLite
            self._klines[mask] = (reason, setter, float(expires))

    def remove_kline(self, mask: str) -> None:
        self.commit()
        with self._lock:
            self._klines.pop(mask, None)

    def read_marker(self, account: str, key: str) -> int | None:
        with self._lock:
            return self._markers.get(account, {}).get(key)

    def set_read_marker(self, account: str, key: str, time_ms: int, cap: int = 0) -> int:
        with self._lock:
            marks = self._markers.setdefault(account, {})
            if cap > 0 and key not in marks and len(marks) >= cap:
                for oldest in sorted(marks, key=marks.__getitem__)[: len(marks) - cap + 1]:
                    del marks[oldest]
            marks[key] = max(marks.get(key, time_ms), time_ms)
            return marks[key]

    # -- channels ---------------------------------------------------------------------------------

    def channels(self) -> list[StoredChannel]:
        with self._lock:
            return [_copy(chan) for chan in self._channels.values()]

    def save_channel(self, folded: str, chan: StoredChannel) -> None:
        self.commit()
        with self._lock:
            self._channels.pop(folded, None)  # a replaced one comes last, as in SQLite
            self._channels[folded] = _copy(chan)

    def forget_channel(self, folded: str) -> None:
        self.commit()
        with self._lock:
            self._channels.pop(folded, None)

    def forget_idle_channels(self, in_use: list[str], now: float, before: float) -> list[str]:
        self.commit()
        with self._lock:
            for name in in_use:
                chan = self._channels.get(name)
                if chan is not None:
                    self._channels[name] = dataclasses.replace(chan, last_used=now)
            idle = [
                name
                for name, chan in self._channels.items()
                if chan.last_used < before and name not in self._positions
            ]
            for name in idle:
                del self._channels[name]
        return idle


def _copy(chan: StoredChannel) -> StoredChannel:
    """A channel with lists of its own, as SQLite gives it back (REAL columns as floats, bans'
    times whole seconds)."""
    return dataclasses.replace(
        chan,
        created=float(chan.created),
        topic_time=float(chan.topic_time),
        last_used=float(chan.last_used),
        bans=[(mask, setter, int(time)) for mask, setter, time in chan.bans],
        quiets=[(mask, setter, int(time)) for mask, setter, time in chan.quiets],
    )
