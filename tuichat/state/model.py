"""The server's model: its settings, its users and channels, and where a user's bytes go."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tuichat.net import protocol as p

MAX_INVITES = 100  # invitations one channel holds
MAX_MARKERS = 1000  # read markers kept per account (in the store) or guest (in memory)
MAX_PEERS = 1000  # conversations of a guest that follow them into an account they log in to


@dataclass
class Config:
    """Server settings that shape behaviour (everything but sockets)."""

    server_name: str = "tuichat"
    network: str = "tuichat"
    motd: list[str] | None = None
    password: str | None = None
    opers: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    ping_interval: float = 90.0
    ping_timeout: float = 120.0
    registration_timeout: float = 60.0
    nicklen: int = p.NICKLEN
    channellen: int = 64
    topiclen: int = 390
    kicklen: int = 255
    awaylen: int = 200
    userlen: int = 18
    maxtargets: int = 4
    chanlimit: int = 50
    modes: int = 6
    maxbans: int = 100
    whowas: int = 1000
    namelen: int = 100  # realname length in bytes (USER truncates, SETNAME refuses)
    who_limit: int = 200  # the most replies to a WHO by mask (416 after them)
    who_masklen: int = 128  # the longest WHO mask (416 for a longer one)
    join_replay: int = 50  # history lines replayed on JOIN to clients without chathistory
    chathistory_max: int = 100
    open_registration: bool = True
    require_tls_auth: bool = False
    nick_grace: float = 30.0  # seconds to log in before a registered nick is taken away
    # password guessing (OPER, SASL): wrong passwords for one account or operator name, and from
    # one address, before each further attempt waits 1 s, doubling up to login_delay_cap
    login_failures: int = 5
    login_failures_per_address: int = 20
    login_delay_cap: float = 300.0
    registrations_per_hour: int = 5  # accounts registered from one address (0: no bound)
    # bytes of history one account, and one address (logged in or not), may store a day (a
    # bucket: that much at once, then as fast as it drains); past it a message is refused
    history_quota_account: int = 16 * 1024 * 1024
    history_quota_address: int = 64 * 1024 * 1024


class Sink(Protocol):
    """Where a user's outgoing bytes go (the server's connection; a list in tests)."""

    def deliver(self, data: bytes) -> None:
        """Queue `data` for the user."""

    def close(self, error: str | None) -> None:
        """Send `ERROR :error` after what is queued, then end the connection."""

    def hold(self) -> None:
        """Keep what is delivered from now on until `release`: a reply is being rendered, and it
        goes out first (only the user's own thread holds, one reply at a time)."""

    def release(self, data: bytes) -> None:
        """Queue `data`, then what was held since `hold`, and stop holding."""


class User:
    """One connection's user, registered or not."""

    __slots__ = (
        "sink",
        "host",
        "nick",
        "username",
        "realname",
        "prefix",
        "registered",
        "gone",
        "cap_negotiating",
        "caps",
        "password",
        "modes",
        "away",
        "channels",
        "invites",
        "connected_at",
        "last_active",
        "last_message",
        "ping_sent",
        "account",
        "tagmask",
        "sasl",
        "nick_deadline",
        "markers",
        "tls",
        "cap302",
        "sasl_failures",
        "party",
        "peers",
    )

    def __init__(self, sink: Sink, host: str, now: float) -> None:
        self.sink = sink
        # a host starting with ":" (IPv6 "::1") would break the prefix; servers write "0::1"
        self.host = "0" + host if host.startswith(":") else host
        self.nick = ""
        self.username = ""
        self.realname = ""
        self.prefix = ""
        self.registered = False
        self.gone = False
        self.cap_negotiating = False
        self.caps: set[str] = set()
        self.password: str | None = None
        self.modes: set[str] = set()
        self.away: str | None = None
        self.channels: dict[str, Channel] = {}
        self.invites: set[str] = set()
        self.connected_at = now
        self.last_active = now
        self.last_message = now
        self.ping_sent: float | None = None
        self.account: str | None = None
        self.tagmask = 0  # which tags this client gets: TAG_* bits, from its capabilities
        self.sasl: tuple[str, str] | None = None  # (mechanism, data so far) during AUTHENTICATE
        self.nick_deadline: float | None = None  # when a registered nick is taken away
        self.markers: dict[str, int] = {}  # read markers of a user with no account (ms)
        self.tls = False
        self.cap302 = False
        self.sasl_failures = 0
        # who owns this guest's private history ("nick!token", made on first use): nobody else,
        # ever; an account's history belongs to the account (see State._party)
        self.party: str | None = None
        self.peers: set[str] | None = None  # parties this guest talked with (MAX_PEERS)

    def __repr__(self) -> str:
        return f"<User {self.nick or '*'} {self.host}>"

    def _update_prefix(self) -> None:
        self.prefix = f"{self.nick}!{self.username}@{self.host}"


class Channel:
    """A channel. `users` is an immutable snapshot of the members, replaced on every change, so that
    a delivery can iterate it after the state lock is released."""

    __slots__ = (
        "name",
        "created",
        "topic",
        "topic_by",
        "topic_time",
        "modes",
        "key",
        "limit",
        "bans",
        "quiets",
        "invited",
        "members",
        "users",
        "founder",
    )

    def __init__(self, name: str, now: float) -> None:
        self.name = name
        self.created = now
        self.topic = ""
        self.topic_by = ""
        self.topic_time = 0.0
        self.modes: set[str] = {"n", "t"}
        self.key: str | None = None
        self.limit: int | None = None
        self.bans: list[tuple[str, str, int]] = []
        self.quiets: list[tuple[str, str, int]] = []  # +q: may stay, may not speak
        self.invited: dict[User, None] = {}  # invitations, oldest first; gone with the channel
        self.members: dict[User, set[str]] = {}
        self.users: tuple[User, ...] = ()
        self.founder: str | None = None  # folded account of its creator, if logged in

    def add(self, user: User, modes: set[str]) -> None:
        self.members[user] = modes
        self.users = tuple(self.members)

    def remove(self, user: User) -> None:
        del self.members[user]
        self.users = tuple(self.members)

    def prefix_of(self, user: User, multi: bool = False) -> str:
        """The member's status prefix: the highest, or all of them (multi-prefix)."""
        modes = self.members.get(user, ())
        if multi:
            return ("@" if "o" in modes else "") + ("+" if "v" in modes else "")
        return "@" if "o" in modes else "+" if "v" in modes else ""

    def mode_string(self, show_key: bool) -> tuple[str, ...]:
        flags = "".join(sorted(self.modes))
        params: list[str] = []
        if self.key is not None:
            flags += "k"
            params.append(self.key if show_key else "*")
        if self.limit is not None:
            flags += "l"
            params.append(str(self.limit))
        return ("+" + flags, *params)


Targets = Sequence[User]


@dataclass(frozen=True, slots=True)
class WhowasEntry:
    nick: str
    username: str
    host: str
    realname: str
    when: float
