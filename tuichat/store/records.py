"""What the storage holds, as the rest of the server sees it: a stored message, a stored channel,
where a message sorts in its conversation, and who may list a conversation. No storage code."""

from __future__ import annotations

from collections.abc import Callable
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


def walk_guest_conversations(
    party: str,
    nick: str,
    hops: int,
    first_after: Callable[[str, str], str | None],
    latest: Callable[[str], int | None],
) -> str | None:
    """The key of `party`'s latest conversation with a guest that connected as `nick` (folded),
    whichever store holds the keys: `first_after(low, high)` is the least key strictly between
    the two, `latest(key)` the order of writing of its newest message (None: no message). A
    guest's party is "nick!token", so such keys are "party nick!token" or "nick!token party";
    after `hops` lookups of either kind the walk gives up."""
    best: tuple[int, str] | None = None
    # "party nick!token": every key in the range is one such conversation
    low, high = f"{party} {nick}!", f'{party} {nick}"'
    for _ in range(hops):
        key = first_after(low, high)
        if key is None:
            break
        seq = latest(key)
        if seq is not None and (best is None or seq > best[0]):
            best = (seq, key)
        low = key
    # "nick!token party": walk the guests called nick, one lookup each for the key
    low, high = f"{nick}!", f'{nick}"'
    for _ in range(hops):
        key = first_after(low, high)
        if key is None:
            break
        guest = key.partition(" ")[0]
        candidate = f"{guest} {party}"
        seq = latest(candidate) if guest < party else None  # else it is above
        if seq is not None and (best is None or seq > best[0]):
            best = (seq, candidate)
        low = guest + "!"  # past every conversation of that guest
    return best[1] if best is not None else None
