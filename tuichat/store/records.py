"""What the storage holds, as the rest of the server sees it: a stored message, a stored channel,
where a message sorts in its conversation, and who may list a conversation. No storage code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

# where a message sorts in its conversation: (time in ms, order of writing). The second number is
# the store's own count of messages written (SQLite's `seq` rowid): it only orders messages of
# one millisecond, and means nothing across stores. A history query is bounded by positions,
# strictly: a timestamp t is (t, 0) as an upper bound, (t, LAST) as a lower
Position = tuple[int, int]
LAST = 2**63 - 1

# how far history was written (the order-of-writing number of the last message, once
# committed): a query bounded `through` it sees nothing added later
Watermark = NewType("Watermark", int)


def parties(key: str) -> tuple[str, ...]:
    """Who may list a conversation: a channel's key, or both sides of "a b"."""
    a, space, b = key.partition(" ")
    return (a, b) if space else (key,)


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """What a channel keeps while nobody is in it, and across restarts."""

    name: str
    created: float
    founder: str | None
    topic: str
    topic_by: str
    topic_time: float
    modes: str
    key: str | None
    limit: int | None
    bans: list[tuple[str, str, int]]
    quiets: list[tuple[str, str, int]]
    last_used: float


@dataclass(frozen=True, slots=True)
class Message:
    """A stored PRIVMSG or NOTICE. `key` is its conversation: the folded channel name, or "a b",
    the two folded parties of a private conversation, sorted."""

    msgid: str
    time: int  # ms
    key: str
    target: str
    source: str
    account: str | None
    command: str
    text: str
    tags: dict[str, str] | None = None
