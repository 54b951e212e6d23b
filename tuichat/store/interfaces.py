"""The storage the server needs, as `typing.Protocol`s: history, accounts, bans, read markers and
channels, and `Storage`, all of them in one object. `tuichat.store.sqlite.Store` (on disk) and
`tuichat.store.memory.MemoryStore` (plain dicts) implement them all.

The calls a server makes under its state lock are cheap (an index lookup or two); those marked
"outside the state lock" may take long, a little at a time. Conversations are named by their
key: a folded channel name, or "a b", the two folded parties of a private conversation, sorted.
Times are milliseconds since the epoch where named `_ms` (and in messages and markers), seconds
where plain `now`/`before`/`expires` (channels and bans).
"""

from __future__ import annotations

from typing import Protocol

from tuichat.store.records import Message, Position, StoredChannel, Watermark


class History(Protocol):
    """Stored messages. "Persist, then deliver": `add` while handling lines, then one `commit`
    before delivering any of them; a message that was not written is delivered to nobody."""

    def new_msgid(self) -> str:
        """A unique message id (alphanumeric: a tag value that needs no escaping)."""
        ...

    def add(self, message: Message) -> None:
        """Queue a message for the next `commit`."""
        ...

    def commit(self) -> bool:
        """Write what was added, all or nothing; False when it could not be (`take_failure`
        says why), and then none of those messages may be delivered."""
        ...

    def take_failure(self) -> Exception | None:
        """Why a `commit` since the last call dropped its messages, or None (and forget it)."""
        ...

    def written(self) -> Watermark:
        """How far history goes once what was added is committed (cheap: under the state
        lock), for a later `query(..., through=...)`."""
        ...

    def find(self, msgid: str) -> tuple[Message, int] | None:
        """A message and its order-of-writing number (`Position`'s second), by msgid."""
        ...

    def locate(self, msgid: str) -> tuple[str, Position] | None:
        """The key and position of a message, by msgid."""
        ...

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
        """Up to `limit` committed messages of `key` strictly between two positions, oldest
        first: the newest ones when `newest`, else the oldest; none written after `through`.
        Outside the state lock."""
        ...

    def targets(
        self, channels: list[str], party: str, start: int, end: int, limit: int
    ) -> list[tuple[str, str, int]]:
        """(key, a target name, latest time) of the conversations whose latest message is
        strictly between two times (either order), oldest first, at most `limit`: the given
        channels, and the private conversations of `party`, each named by its other party.
        Outside the state lock."""
        ...

    def prune(self, before_ms: int) -> int:
        """Delete committed messages older than `before_ms`, and the read markers of
        conversations left without any; return how many messages. Outside the state lock."""
        ...

    def rekey(self, changes: list[tuple[str, str]]) -> None:
        """Move the committed messages of each old key to its new one (a guest who logs in takes
        their conversations along). Outside the state lock, after a commit."""
        ...

    def guest_conversation(
        self, party: str, nick: str, hops: int = 256, *, reading: bool = False
    ) -> str | None:
        """The key of the latest conversation of `party` with a guest that connected as `nick`
        (folded; a guest's party is "nick!token"), or None; it gives up after `hops` guests.
        `reading`: outside the state lock, seeing what was committed."""
        ...

    def has_messages(self, key: str) -> bool:
        """Whether any message is stored under `key` (commits what was added first)."""
        ...


class Accounts(Protocol):
    """Registered accounts, by folded name."""

    def account(self, folded: str) -> tuple[str, bytes, bytes] | None:
        """(display name, salt, hash) of an account, or None."""
        ...

    def create_account(
        self, folded: str, display: str, salt: bytes, digest: bytes, now_ms: int
    ) -> bool:
        """False if the account exists already."""
        ...

    def logged_in(self, folded: str, now_ms: int) -> None:
        """Someone logged in to the account (SASL): it is in use."""
        ...

    def expire_accounts(self, before_ms: int, in_use: set[str], most: int = 1000) -> list[str]:
        """Delete the accounts registered before `before_ms` that nobody logged in to since (but
        those `in_use`), with their read markers and founder status; at most `most`, the oldest
        first. Return the folded names, whose private history is for `forget_conversations`."""
        ...

    def forget_conversations(self, names: set[str]) -> int:
        """Delete every private conversation of the folded account `names`; return how many
        messages. Outside the state lock."""
        ...


class Bans(Protocol):
    """Server bans (KLINE): mask -> (reason, setter, expires in seconds; 0: never)."""

    def klines(self) -> list[tuple[str, tuple[str, str, float]]]: ...

    def add_kline(self, mask: str, reason: str, setter: str, expires: float) -> None:
        """Set a ban, replacing one on the same mask."""
        ...

    def remove_kline(self, mask: str) -> None: ...


class ReadMarkers(Protocol):
    """How far each account has read each conversation (ms)."""

    def read_marker(self, account: str, key: str) -> int | None: ...

    def set_read_marker(self, account: str, key: str, time_ms: int, cap: int = 0) -> int:
        """Move the marker forward only; return where it is. An account keeps at most `cap`
        markers (0: no bound): a new one beyond it replaces the one set longest ago."""
        ...


class Channels(Protocol):
    """Channels that outlive their members, by folded name."""

    def channels(self) -> list[StoredChannel]:
        """Every stored channel."""
        ...

    def save_channel(self, folded: str, chan: StoredChannel) -> None:
        """Write a channel's state (a topic, mode or ban change; its creation)."""
        ...

    def forget_channel(self, folded: str) -> None: ...

    def forget_idle_channels(self, in_use: list[str], now: float, before: float) -> list[str]:
        """Mark the channels `in_use` as used `now`, then forget the others unused since
        `before` that have no history left; return the folded names forgotten."""
        ...


class Storage(History, Accounts, Bans, ReadMarkers, Channels, Protocol):
    """Everything the server keeps, in one object."""

    def close(self) -> None:
        """Commit what was added, and let go of what the storage holds."""
        ...
