"""The client's records: log entries, members, windows, and the `Changes` one fed line makes;
the kinds of entries and the bounds against a hostile server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuichat.net.protocol import casefold
from tuichat.sorted_keys import SortedKeys

SERVER = "*server*"  # the key of the server window

# the kinds of log entries; the app styles them
MESSAGE = "message"
ACTION = "action"
NOTICE = "notice"
EVENT = "event"  # joins, parts, quits, nick and topic changes, modes, kicks: shown dimmed
INFO = "info"
ERROR = "error"
CHATTY = frozenset({MESSAGE, ACTION, NOTICE})

# bounds against a hostile or broken server (SECURITY.md)
MAX_BATCHES = 64  # open BATCHes at once; a BATCH + beyond is ignored (its lines shown plainly)
MAX_MEMBERS = 250_000  # members of one channel; NAMES beyond this is ignored
NEW_QUERIES = 5  # private windows opened by others' messages per QUERY_WINDOW seconds; beyond,
QUERY_WINDOW = 60.0  # the message is a line in the server window and no window opens


@dataclass
class Entry:
    """One line of a window's log."""

    time: float
    kind: str
    text: str
    nick: str | None = None
    own: bool = False
    mention: bool = False
    state: str = ""  # for our own messages: "sending", "not sent: ...", "" once delivered
    msgid: str | None = None
    history: bool = False  # from the server's history, not said just now


@dataclass(slots=True)
class Member:
    nick: str
    modes: str = ""  # prefix characters held, best first: "@+"
    away: bool = False
    account: str | None = None

    @property
    def prefix(self) -> str:
        return self.modes[:1]


class Members(dict[str, Member]):
    """A channel's members by casefolded nick, their keys also kept in order (`SortedKeys`) and
    those who ever held a prefix noted (`marked`), so that the first few hundred of the member
    list are found without sorting or scanning 100,000. Only the methods below change it."""

    def __init__(self) -> None:
        super().__init__()
        self.order = SortedKeys()
        self.marked: set[str] = set()  # held a prefix when added or since (a MODE): few

    def __setitem__(self, key: str, member: Member) -> None:
        super().__setitem__(key, member)
        self.order.add(key)
        if member.modes:
            self.marked.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.order.discard(key)
        self.marked.discard(key)

    def pop(self, key: str, default: Any = None) -> Any:
        if key not in self:
            return default
        member = super().pop(key)
        self.order.discard(key)
        self.marked.discard(key)
        return member

    def clear(self) -> None:
        super().clear()
        self.order.clear()
        self.marked.clear()

    def update(self, other: Any = (), /, **kwargs: Member) -> None:
        for key, member in dict(other, **kwargs).items():
            self[key] = member

    def mark(self, key: str) -> None:
        """`key`'s prefixes changed in place."""
        if key in self:
            self.marked.add(key)


@dataclass
class Window:
    name: str
    kind: str  # "server", "channel", "query"
    unread: int = 0
    mentioned: bool = False
    topic: str = ""
    joined: bool = False
    members: Members = field(default_factory=Members)
    last_msgid: str | None = None  # the newest message seen (to fetch what was missed)
    last_time: float = 0.0
    read_marker: float | None = None  # read up to here (draft/read-marker), seconds
    seen: dict[str, None] = field(default_factory=dict)  # recent msgids, to drop duplicates

    @property
    def key(self) -> str:
        return SERVER if self.kind == "server" else casefold(self.name)


@dataclass
class Changes:
    """What one `feed` changed."""

    entries: list[tuple[Window, Entry]] = field(default_factory=list)
    windows: bool = False  # the window list (names, order, unread marks) changed
    members: set[str] = field(default_factory=set)  # keys of windows whose member list changed
    topics: set[str] = field(default_factory=set)
    nick: bool = False  # our own nick changed
    joined: list[str] = field(default_factory=list)  # keys of channels we have just joined
    bell: bool = False  # we were mentioned or messaged privately
    updated: list[tuple[Window, Entry]] = field(default_factory=list)  # entries changed in place
    dividers: list[Entry] = field(default_factory=list)  # entries that start the unread part
    # history batches done: (key, messages new to us, messages received, the last one's msgid)
    histories: list[tuple[str, int, int, str | None]] = field(default_factory=list)
    typing: list[tuple[str, str, str]] = field(default_factory=list)  # (key, nick, state)

    def merge(self, other: Changes) -> None:
        """Add what `other` changed to this."""
        self.entries.extend(other.entries)
        self.joined.extend(other.joined)
        self.updated.extend(other.updated)
        self.dividers.extend(other.dividers)
        self.histories.extend(other.histories)
        self.typing.extend(other.typing)
        self.windows |= other.windows
        self.members |= other.members
        self.topics |= other.topics
        self.nick |= other.nick
        self.bell |= other.bell
