"""The server's shared state: users, channels, members, modes.

Pure: no sockets, no threads, no clock of its own. `State.handle` takes a parsed `Line` from a user
and the current time, updates the state and records in an `Outbox` what to deliver to whom and which
connections to close. The server calls it under its state lock and does the I/O after releasing it.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import itertools
import math
import operator
import secrets
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tuichat import __version__
from tuichat.limits import Backoff, Quota, address_key
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold, escape_tag_value
from tuichat.store import (
    LAST,
    Message,
    Position,
    Store,
    StoredChannel,
    check_password,
    hash_password,
    new_salt,
)

MAX_INVITES = 100  # invitations one channel holds
MAX_MARKERS = 1000  # read markers kept per account (in the store) or guest (in memory)
MAX_PEERS = 1000  # conversations of a guest that follow them into an account they log in to
MAX_SASL_FAILURES = 3  # wrong passwords before the connection is closed
CHANNEL_MODES = "imnst"  # flags without a parameter
CHANNEL_MODES_ALL = "biklmnoqstv"
USER_MODES = "io"
STATUS_PREFIX = {"o": "@", "v": "+"}
MAX_LIMIT = 2**31 - 1  # the largest +l (InspIRCd's bound too); more is taken as this
MAX_KLINE_SECONDS = 100 * 365 * 86400  # the longest timed K-line; more is taken as this
# a big reply (NAMES, WHO) costs its requester one flood-control token per BIG_REPLY bytes, at
# most BIG_REPLY_MOST (the default burst): a flood of them waits, as in InspIRCd and Ergo
BIG_REPLY = 2048
BIG_REPLY_MOST = 10
WHO_SCAN = 500  # a WHO by mask costs a token per this many users it looks at (at most 10 too)


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
    nicklen: int = 30
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

# the tag bits of User.tagmask
TAG_MESSAGE = 1  # message-tags: msgid and client-only tags
TAG_TIME = 2  # server-time
TAG_ACCOUNT = 4  # account-tag


class Variants:
    """Bytes that depend on what the recipient negotiated (tags, extended-join): each variant is
    built once, the first time a recipient needs it."""

    __slots__ = ("_build", "_cache", "_key", "recorded")

    def __init__(self, key: Callable[[User], Hashable], build: Callable[[User], bytes]) -> None:
        self._key = key
        self._build = build
        self._cache: dict[Hashable, bytes] = {}
        # a message that goes out only once its history row is on disk (Outbox.unrecorded)
        self.recorded = False

    def for_user(self, user: User) -> bytes:
        key = self._key(user)
        data = self._cache.get(key)
        if data is None:
            data = self._cache[key] = self._build(user)
        return data


Payload = bytearray | Variants


def _run_shares(
    targets: Targets, skip: User | None, run: list[Payload]
) -> Iterator[tuple[User, bytes]]:
    """Each of `targets` but `skip` with its bytes of `run` (none for those with none)."""
    key = _run_key(run)
    if key is None:  # the same bytes for all
        plain = [blob for blob in run if not isinstance(blob, Variants)]
        data = bytes(plain[0]) if len(plain) == 1 else b"".join(plain)
        if data:
            for user in targets:
                if user is not skip:
                    yield user, data
        return
    joined: dict[Hashable, bytes] = {}
    by_tags = key is _tagmask_of
    for user in targets:
        if user is skip:
            continue
        k = user.tagmask if by_tags else key(user)
        share = joined.get(k)
        if share is None:
            share = joined[k] = b"".join(
                blob.for_user(user) if isinstance(blob, Variants) else blob for blob in run
            )
        if share:
            yield user, share


def _run_key(run: list[Payload]) -> Callable[[User], Hashable] | None:
    """What tells apart the recipients of a run of payloads: None when every one gets the same
    bytes, the variants' own key when they share one, else a key made of all of them."""
    keys = [blob._key for blob in run if isinstance(blob, Variants)]
    if not keys:
        return None
    first = keys[0]
    if all(key is first for key in keys):
        return first
    return lambda user: tuple(key(user) for key in keys)


def _joined(parts: list[bytes | Variants]) -> bytes | Variants:
    """Lines one after another as one payload: bytes, or variants by the parts' keys."""
    keys = list({part._key: None for part in parts if isinstance(part, Variants)})
    if not keys:
        return b"".join(part for part in parts if not isinstance(part, Variants))

    def key(user: User) -> Hashable:
        return tuple(k(user) for k in keys)

    def build(user: User) -> bytes:
        return b"".join(
            part.for_user(user) if isinstance(part, Variants) else part for part in parts
        )

    return Variants(keys[0] if len(keys) == 1 else key, build)


class Outbox:
    """What handling lines produced: data for users, in order, and users to disconnect.

    Consecutive data for the same targets is joined, so that each member's share of a batch of
    lines is appended to its buffer once.
    """

    __slots__ = ("closes", "cost", "deferred", "later", "refusals", "render_later", "sends")

    def __init__(self, render_later: bool = False) -> None:
        self.sends: list[tuple[Targets, Payload, User | None]] = []
        self.closes: list[tuple[User, str]] = []
        # what each sender is told instead when the history rows could not be written
        self.refusals: list[tuple[User, bytes]] = []
        # slow work (password hashing) to run outside the state lock, then its continuation
        self.deferred: list[
            tuple[Callable[[], object], Callable[[object, float, Outbox], None]]
        ] = []
        # flood-control tokens the sender owes for big replies (NAMES, WHO), beyond one a line
        self.cost = 0
        # big replies are rendered after the state lock is released (the server asks for it):
        # what is rendered comes from a snapshot taken under the lock, and the user's sink holds
        # whatever else is delivered to them meanwhile, so that order is kept
        self.render_later = render_later
        self.later: list[tuple[User, Callable[[], bytes]]] = []

    def send(self, user: User, data: bytes | Variants) -> None:
        if isinstance(data, Variants):
            data = data.for_user(user)
        sends = self.sends
        if sends:
            targets, blob, skip = sends[-1]
            if (
                skip is None
                and len(targets) == 1
                and targets[0] is user
                and type(blob) is bytearray
            ):
                blob += data
                return
        sends.append(((user,), bytearray(data), None))

    def broadcast(self, users: Targets, data: bytes | Variants, skip: User | None = None) -> None:
        """`data` for each of `users` but `skip`."""
        sends = self.sends
        if isinstance(data, Variants):
            sends.append((users, data, skip))
            return
        if sends:
            targets, blob, last_skip = sends[-1]
            if targets is users and last_skip is skip and type(blob) is bytearray:
                blob += data
                return
        sends.append((users, bytearray(data), skip))

    def close(self, user: User, reason: str) -> None:
        self.closes.append((user, reason))

    def reply(self, user: User, render: Callable[[], bytes]) -> None:
        """A big reply for `user`, rendered by `render` from a snapshot: now, or after the lock
        (`render_later`). It costs one flood-control token per BIG_REPLY bytes."""
        if self.render_later:
            self.later.append((user, render))
            return
        data = render()
        self.charge(len(data))
        self.send(user, data)

    def charge(self, size: int) -> None:
        self.cost += min(BIG_REPLY_MOST, size // BIG_REPLY)

    def finish_later(self) -> None:
        """Render the replies left for after the lock and hand them over (each user's sink held
        what came meanwhile since `deliver`)."""
        later, self.later = self.later, []
        for user, render in later:
            data = b""
            try:
                data = render()
            finally:  # the sink holds until this, whatever happens
                self.charge(len(data))
                user.sink.release(data)

    def defer(
        self, job: Callable[[], object], then: Callable[[object, float, Outbox], None]
    ) -> None:
        """Run `job` outside the state lock, then `then(result, now, out)` under it."""
        self.deferred.append((job, then))

    def deliver(self) -> None:
        """Hand every recipient its data, then close what is to be closed.

        Each recipient gets its whole share in one `deliver`: one lock and one wake-up of the
        writer per recipient and batch, however many lines the batch holds."""
        # runs of sends to the same targets (a burst of messages to one channel) are joined once
        # per kind of recipient (what tags it negotiated), not once per member
        runs: list[tuple[Targets, User | None, list[Payload]]] = []
        for targets, blob, skip in self.sends:
            if runs and runs[-1][0] is targets and runs[-1][1] is skip:
                runs[-1][2].append(blob)
            else:
                runs.append((targets, skip, [blob]))
        if len(runs) == 1:  # the common case (one message, or a burst to one channel)
            targets, skip, run = runs[0]
            for user, data in _run_shares(targets, skip, run):
                user.sink.deliver(data)
        elif runs:
            shares: dict[User, list[bytes]] = {}
            for targets, skip, run in runs:
                for user, data in _run_shares(targets, skip, run):
                    share = shares.get(user)
                    if share is None:
                        shares[user] = [data]
                    else:
                        share.append(data)
            for user, pieces in shares.items():
                user.sink.deliver(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        for user, _ in self.later:  # what comes after now waits for the reply
            user.sink.hold()
        for user, error in self.closes:
            user.sink.close(error)

    def data_for(self, user: User) -> bytes:
        """All the bytes `user` would receive, in order."""
        return b"".join(
            blob.for_user(user) if isinstance(blob, Variants) else bytes(blob)
            for targets, blob, skip in self.sends
            if user is not skip and user in targets
        )

    def lines_for(self, user: User) -> list[str]:
        """The lines that `user` would receive (for tests)."""
        return [raw.decode() for raw in self.data_for(user).split(b"\r\n") if raw]

    def take(self, user: User) -> bytes:
        """Remove from this outbox everything for `user` and return it (labeled-response)."""
        taken: list[bytes] = []
        kept: list[tuple[Targets, Payload, User | None]] = []
        for targets, blob, skip in self.sends:
            if user is skip or user not in targets:
                kept.append((targets, blob, skip))
                continue
            taken.append(blob.for_user(user) if isinstance(blob, Variants) else bytes(blob))
            if len(targets) > 1:
                if skip is not None:  # cannot skip two: hand the others their copies one by one
                    for other in targets:
                        if other is not skip and other is not user:
                            kept.append(((other,), blob, None))
                else:
                    kept.append((targets, blob, user))
        self.sends = kept
        return b"".join(taken)

    def extend(self, other: Outbox) -> None:
        self.cost += other.cost
        self.later.extend(other.later)
        self.sends.extend(other.sends)
        self.closes.extend(other.closes)
        self.deferred.extend(other.deferred)
        self.refusals.extend(other.refusals)

    def record(self, sender: User, payload: Variants, refusal: bytes) -> None:
        """`payload` (sent next) waits for its history row: if the row cannot be written, it is
        not delivered, to anybody, and `sender` gets `refusal` instead."""
        payload.recorded = True
        self.refusals.append((sender, refusal))

    def recorded(self) -> bool:
        return bool(self.refusals)

    def unrecorded(self) -> None:
        """The history rows were not written: drop what depended on them, send the refusals."""
        self.sends = [
            send for send in self.sends if not (isinstance(send[1], Variants) and send[1].recorded)
        ]
        refusals, self.refusals = self.refusals, []
        for user, data in refusals:
            self.send(user, data)


@dataclass(frozen=True, slots=True)
class WhowasEntry:
    nick: str
    username: str
    host: str
    realname: str
    when: float


def _tagmask(caps: set[str]) -> int:
    return (
        (TAG_MESSAGE if "message-tags" in caps else 0)
        | (TAG_TIME if "server-time" in caps else 0)
        | (TAG_ACCOUNT if "account-tag" in caps else 0)
    )


def _same(user: User) -> int:
    return 0


def _tagmask_of(user: User) -> int:
    return user.tagmask


def _account_key(user: User) -> bool:
    return bool(user.tagmask & TAG_ACCOUNT)


_last_second: list[tuple[int, str]] = [(-1, "")]


def iso_time(ms: int) -> str:
    """server-time's format: 2026-11-27T10:00:00.000Z."""
    second = ms // 1000
    cached, text = _last_second[0]
    if cached != second:  # formatting the date is most of the cost: once a second
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second[0] = (second, text)
    return f"{text}.{ms % 1000:03d}Z"


def parse_iso_time(text: str) -> int | None:
    """Milliseconds since the epoch from server-time's format, or None."""
    if not text[:19].isascii():  # strptime's %Y takes any Unicode digit (fullwidth...)
        return None
    try:
        stamp = time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    ms = 0
    if len(text) > 20 and text[19] == ".":
        digits = p.parse_uint(text[20:].rstrip("Z")[:3].ljust(3, "0"))
        if digits is not None:
            ms = digits
    return int(calendar.timegm(stamp)) * 1000 + ms


def _has_batch_tag(line: bytes) -> bool:
    if not line.startswith(b"@"):
        return False
    tags = line[1 : line.find(b" ")]
    return any(tag.startswith(b"batch=") for tag in tags.split(b";"))


def _add_tag(line: bytes, tag: bytes) -> bytes:
    """`line` (encoded, no CRLF) with one more tag."""
    if line.startswith(b"@"):
        return b"@" + tag + b";" + line[1:]
    return b"@" + tag + b" " + line


_fallback_ids = itertools.count(1)


def _fallback_msgid() -> str:
    return f"m{next(_fallback_ids):x}"


def _private_key(a: str, b: str) -> str:
    """The history key of a private conversation: both parties (State._party), sorted."""
    return f"{a} {b}" if a <= b else f"{b} {a}"


def _restored(stored: StoredChannel) -> Channel:
    """An empty channel as it was stored."""
    chan = Channel(stored.name, stored.created)
    chan.founder = stored.founder
    chan.topic, chan.topic_by, chan.topic_time = stored.topic, stored.topic_by, stored.topic_time
    chan.modes = set(stored.modes)
    chan.key, chan.limit = stored.key, stored.limit
    chan.bans, chan.quiets = list(stored.bans), list(stored.quiets)
    return chan


def _to_store(chan: Channel, now: float) -> StoredChannel:
    return StoredChannel(
        chan.name,
        chan.created,
        chan.founder,
        chan.topic,
        chan.topic_by,
        chan.topic_time,
        "".join(sorted(chan.modes)),
        chan.key,
        chan.limit,
        list(chan.bans),
        list(chan.quiets),
        now,
    )


def _worth_keeping(chan: Channel) -> bool:
    """Whether an emptied channel holds anything a rejoiner must respect or would miss (its
    history is checked apart): otherwise it goes, as on a server without history."""
    return bool(
        chan.founder
        or chan.topic
        or chan.modes != {"n", "t"}
        or chan.key is not None
        or chan.limit is not None
        or chan.bans
        or chan.quiets
    )


MAX_CLIENT_TAGS = 4094


def _client_tags(line: Line) -> dict[str, str]:
    """The client-only tags (`+typing`...) of a line, if they fit the spec's size limit."""
    if not line.tags:
        return {}
    tags = {key: value for key, value in line.tags.items() if key.startswith("+")}
    size = sum(len(key) + len(value) + 2 for key, value in tags.items())
    return tags if size <= MAX_CLIENT_TAGS else {}


def _tagged(
    source: str,
    account: str | None,
    command: str,
    target: str,
    text: str | None,
    client_tags: dict[str, str],
    msgid: str,
    time_ms: int,
    batch: str | None = None,
) -> Variants:
    """A message with the tags each recipient negotiated (TAGMSG only for message-tags)."""
    body = f":{source} {command} {target}" + (f" :{text}" if text is not None else "")
    data = (body + "\r\n").encode("utf-8", "replace")
    extra = ";".join(
        f"{key}={escape_tag_value(value)}" if value else key for key, value in client_tags.items()
    )
    stamp = iso_time(time_ms)

    def build(user: User) -> bytes:
        mask = user.tagmask
        if text is None and not mask & TAG_MESSAGE:
            return b""
        parts = [f"batch={batch}"] if batch else []
        if mask & TAG_TIME:
            parts.append("time=" + stamp)
        if mask & TAG_MESSAGE:
            parts.append("msgid=" + msgid)
            if extra:
                parts.append(extra)
        if mask & TAG_ACCOUNT and account:
            parts.append("account=" + account)
        if not parts:
            return data
        return ("@" + ";".join(parts) + " ").encode("utf-8", "replace") + data

    return Variants(_tagmask_of, build)


def _numeric(server: str, nick: str, numeric: str, *params: str) -> bytes:
    """A numeric line from `server` for `nick` (what `State._reply` sends), from plain strings:
    it can be built after the state lock is released."""
    middle = [_middle(param) for param in params[:-1]]
    return Line(numeric, (nick, *middle, *params[-1:]), source=server).encode(trailing=True)


def _status(modes: frozenset[str], multi: bool) -> str:
    """A member's status prefix from its channel modes (`Channel.prefix_of`, from a snapshot)."""
    if multi:
        return ("@" if "o" in modes else "") + ("+" if "v" in modes else "")
    return "@" if "o" in modes else "+" if "v" in modes else ""


def _statuses(chan: Channel) -> dict[User, frozenset[str]]:
    """The channel modes (`o`, `v`) of the members who have some, as they are now."""
    return {member: frozenset(modes) for member, modes in chan.members.items() if modes}


_NONE: frozenset[str] = frozenset()
_NICK = operator.attrgetter("nick")
_PREFIX = operator.attrgetter("prefix")
_MODES = operator.attrgetter("modes")
_WHO_FIELDS = operator.attrgetter("username", "host", "nick", "away", "realname")


def _middle(param: str) -> str:
    """`param` as a middle parameter: its first word, without leading colons, or `*`."""
    if param and " " not in param and not param.startswith(":"):
        return param
    return param.lstrip(":").split(" ", 1)[0].lstrip(":") or "*"


def _mode_param_ok(param: str, mode: str) -> bool:
    """Whether a ban or quiet mask or a key (`mode`) can be kept: sendable as a middle parameter,
    and for a key, a JOIN's key list can hold it."""
    if not param or " " in param or param[0] == ":":
        return False
    return mode != "k" or "," not in param


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: max(0, limit)].decode("utf-8", "ignore")


def _chunks(items: Iterable[str], head_len: int, limit: int = 510) -> list[str]:
    """Join `items` with spaces into strings that fit in a line after `head_len` bytes."""
    out: list[str] = []
    current = ""
    room = limit - head_len
    for item in items:
        if current and len((current + " " + item).encode()) > room:
            out.append(current)
            current = item
        else:
            current = f"{current} {item}" if current else item
    if current:
        out.append(current)
    return out


Handler = Callable[[User, Line, float, Outbox], None]

# commands allowed before registration completes
_PRE_REGISTRATION = frozenset(
    {"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT", "AUTHENTICATE", "REGISTER", "VERIFY"}
)
# the fewest parameters each command takes (461 below that)
_MIN_PARAMS = {
    "USER": 4,
    "PASS": 1,
    "CAP": 1,
    "JOIN": 1,
    "PART": 1,
    "TOPIC": 1,
    "INVITE": 2,
    "KICK": 2,
    "MODE": 1,
    "OPER": 2,
    "KILL": 2,
    "ISON": 1,
    "USERHOST": 1,
    "TAGMSG": 1,
    "AUTHENTICATE": 1,
    "REGISTER": 3,
    "VERIFY": 2,
    "CHATHISTORY": 1,
    "SETNAME": 1,
    "MARKREAD": 1,
    "UNKLINE": 1,
}


class State:
    """All users and channels of one server."""

    def __init__(self, config: Config | None = None, store: Store | None = None) -> None:
        self.config = config or Config()
        self.store = store
        self.capabilities: dict[str, str | None] = {
            "account-notify": None,
            "account-tag": None,
            "away-notify": None,
            "batch": None,
            "cap-notify": None,
            "draft/account-registration": "before-connect",
            "draft/read-marker": None,
            "echo-message": None,
            "extended-join": None,
            "invite-notify": None,
            "labeled-response": None,
            "message-tags": None,
            "multi-prefix": None,
            "sasl": "PLAIN",
            "server-time": None,
            "setname": None,
            "userhost-in-names": None,
        }
        if store is not None:
            # the spec is a draft: its unprefixed cap name must not be used yet
            self.capabilities["draft/chathistory"] = None
        if store is None or not self.config.open_registration:
            del self.capabilities["draft/account-registration"]
        self._batches = itertools.count(1)
        self.closing = False  # the server is shutting down
        # server bans by user@host mask: mask -> (reason, setter, expires or 0)
        self.klines: dict[str, tuple[str, str, float]] = dict(store.klines()) if store else {}
        self.sts_port: int | None = None  # the TLS port, advertised with STS when set
        self.sts_duration = 0  # seconds clients keep the policy; 0: not on TLS connections
        self.clients: set[User] = set()
        self.nicks: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.whowas: deque[WhowasEntry] = deque(maxlen=self.config.whowas)
        self._guests: dict[str, User] = {}  # party -> the guest it belongs to, while connected
        c = self.config
        # wrong passwords (OPER and SASL) by account or operator name, and by address
        self._guesses_by_name = Backoff(c.login_failures, 1.0, c.login_delay_cap)
        self._guesses_by_address = Backoff(c.login_failures_per_address, 1.0, c.login_delay_cap)
        self._registrations = Quota(c.registrations_per_hour, 3600.0)  # by address
        # expired accounts whose private history is being deleted: not to be registered yet
        self.expiring: set[str] = set()
        self._history_by_account = Quota(c.history_quota_account, 86400.0)
        self._history_by_address = Quota(c.history_quota_address, 86400.0)
        if store is not None:
            for stored in store.channels():
                self.channels[casefold(stored.name)] = _restored(stored)
        self._handlers: dict[str, Handler] = {
            "CAP": self._cap,
            "PASS": self._pass,
            "NICK": self._nick,
            "USER": self._user,
            "PING": self._ping,
            "PONG": self._pong,
            "QUIT": self._quit,
            "JOIN": self._join,
            "PART": self._part,
            "PRIVMSG": self._privmsg,
            "NOTICE": self._privmsg,
            "NAMES": self._names,
            "TOPIC": self._topic,
            "LIST": self._list,
            "WHO": self._who,
            "WHOIS": self._whois,
            "WHOWAS": self._whowas,
            "AWAY": self._away,
            "INVITE": self._invite,
            "KICK": self._kick,
            "MODE": self._mode,
            "OPER": self._oper,
            "KILL": self._kill,
            "MOTD": self._motd,
            "LUSERS": self._lusers,
            "VERSION": self._version,
            "TIME": self._time,
            "ISON": self._ison,
            "USERHOST": self._userhost,
            "TAGMSG": self._tagmsg,
            "AUTHENTICATE": self._authenticate,
            "REGISTER": self._register,
            "VERIFY": self._verify,
            "CHATHISTORY": self._chathistory,
            "SETNAME": self._setname,
            "MARKREAD": self._markread,
            "KLINE": self._kline,
            "UNKLINE": self._unkline,
        }
        self._isupport = self._build_isupport()

    # -- building lines ---------------------------------------------------------------------------

    def _reply(self, out: Outbox, user: User, numeric: str, *params: str) -> None:
        """A numeric for `user`. Middle parameters that echo what a client sent are made
        sendable: `NICK :a b` earns `432 * a :Erroneous nickname`, not a malformed line."""
        middle = [_middle(param) for param in params[:-1]]
        line = Line(
            numeric, (user.nick or "*", *middle, *params[-1:]), source=self.config.server_name
        )
        out.send(user, line.encode(trailing=True))

    def _from(
        self, user: User, command: str, *params: str, trailing: bool = True
    ) -> bytes | Variants:
        """A line from `user`; with the account tag for those who asked for it (account-tag)."""
        data = Line(command, params, source=user.prefix).encode(trailing=trailing)
        if len(data) > p.MAX_BODY and params:
            # a client's longest text, relayed with its prefix, would pass the line limit: cut
            head = Line(command, (*params[:-1], ""), source=user.prefix).format(trailing=True)
            last = _truncate(params[-1], p.MAX_BODY - 2 - len(head.encode()))
            data = Line(command, (*params[:-1], last), source=user.prefix).encode(trailing=True)
        if user.account is None:
            return data
        tagged = b"@account=" + escape_tag_value(user.account).encode() + b" " + data

        def build(member: User) -> bytes:
            return tagged if member.tagmask & TAG_ACCOUNT else data

        return Variants(_account_key, build)

    def _build_isupport(self) -> list[str]:
        c = self.config
        tokens = [
            f"AWAYLEN={c.awaylen}",
            f"CASEMAPPING={p.CASEMAPPING}",
            f"CHANLIMIT=#:{c.chanlimit}",
            "CHANMODES=bq,k,l,imnst",
            f"CHANNELLEN={c.channellen}",
            "CHANTYPES=#",
            "HOSTLEN=64",
            f"KICKLEN={c.kicklen}",
            f"MAXLIST=bq:{c.maxbans}",
            f"MAXTARGETS={c.maxtargets}",
            f"MODES={c.modes}",
            f"NETWORK={c.network}",
            f"NICKLEN={c.nicklen}",
            "PREFIX=(ov)@+",
            f"TARGMAX=PRIVMSG:{c.maxtargets},NOTICE:{c.maxtargets},NAMES:{c.maxtargets},JOIN:,"
            "PART:,KICK:1,WHOIS:1",
            f"TOPICLEN={c.topiclen}",
            f"USERLEN={c.userlen}",
            f"NAMELEN={c.namelen}",
        ]
        if self.store is not None:
            tokens += [f"CHATHISTORY={c.chathistory_max}", "MSGREFTYPES=msgid,timestamp"]
        return sorted(tokens)

    def _send_isupport(self, out: Outbox, user: User) -> None:
        for i in range(0, len(self._isupport), 13):
            self._reply(
                out,
                user,
                p.RPL_ISUPPORT,
                *self._isupport[i : i + 13],
                "are supported by this server",
            )

    # -- connections ------------------------------------------------------------------------------

    def connect(self, user: User) -> None:
        """A new connection arrived."""
        self.clients.add(user)

    def handle(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """Handle one line from `user`."""
        if user.gone:
            return
        user.last_active = now
        user.ping_sent = None
        label = line.tags.get("label") if line.tags else None
        if label and "labeled-response" in user.caps and "batch" in user.caps:
            sub = Outbox(render_later=out.render_later)
            self._dispatch_command(user, line, now, sub)
            self._labeled(user, label[:64], sub, out)
        else:
            self._dispatch_command(user, line, now, out)

    def _dispatch_command(self, user: User, line: Line, now: float, out: Outbox) -> None:
        command = line.command
        handler = self._handlers.get(command)
        if handler is None:
            if user.registered:
                self._reply(out, user, p.ERR_UNKNOWNCOMMAND, command, "Unknown command")
            else:
                self._reply(out, user, p.ERR_NOTREGISTERED, "You have not registered")
            return
        if not user.registered and command not in _PRE_REGISTRATION:
            self._reply(out, user, p.ERR_NOTREGISTERED, "You have not registered")
            return
        if len(line.params) < _MIN_PARAMS.get(command, 0):
            self._reply(out, user, p.ERR_NEEDMOREPARAMS, command, "Not enough parameters")
            return
        handler(user, line, now, out)

    def _labeled(self, user: User, label: str, sub: Outbox, out: Outbox) -> None:
        """labeled-response: the user's share of `sub` goes out tagged with its label."""
        # an echo waits for its history row like every other delivery of the message
        recorded = any(isinstance(blob, Variants) and blob.recorded for _, blob, _ in sub.sends)
        lines = [line for line in sub.take(user).split(b"\r\n") if line]
        if not lines and sub.deferred:
            # the answer comes after slow work (password hashing): label it then
            deferred, sub.deferred = sub.deferred, []
            for job, then in deferred:
                sub.defer(job, self._labeled_then(user, label, then))
            out.extend(sub)
            return
        if sub.later:
            # a big reply rendered after the lock (only ever the requester's): labeled then
            later, sub.later = sub.later, []
            batch = self._batch_id()

            def render() -> bytes:
                rendered = b"".join(part() for _, part in later)
                every = lines + [line for line in rendered.split(b"\r\n") if line]
                return self._label_answer(label, every, batch)

            out.later.append((user, render))
            out.extend(sub)
            return
        answer = self._label_answer(label, lines, self._batch_id() if len(lines) > 1 else b"")
        if recorded:
            held = Variants(_same, lambda member: answer)
            held.recorded = True
            out.broadcast((user,), held)
        else:
            out.send(user, answer)
        out.extend(sub)

    def _label_answer(self, label: str, lines: list[bytes], batch: bytes) -> bytes:
        """The answer to a labeled line: ACK, the one line tagged, or a labeled-response batch
        (`batch` its id) around the lines."""
        tag = b"label=" + escape_tag_value(label).encode()
        server = self.config.server_name.encode()
        if not lines:
            answer = b"@" + tag + b" :" + server + b" ACK\r\n"
        elif len(lines) == 1:
            answer = _add_tag(lines[0], tag) + b"\r\n"
        else:
            data = [_add_tag(b":" + server + b" BATCH +" + batch + b" labeled-response", tag)]
            # a line inside a nested batch (chathistory) keeps only its own batch tag
            data += [
                line if _has_batch_tag(line) else _add_tag(line, b"batch=" + batch)
                for line in lines
            ]
            data.append(b":" + server + b" BATCH -" + batch)
            answer = b"\r\n".join(data) + b"\r\n"
        return answer

    def _labeled_then(
        self, user: User, label: str, then: Callable[[object, float, Outbox], None]
    ) -> Callable[[object, float, Outbox], None]:
        def labeled(result: object, now: float, out: Outbox) -> None:
            inner = Outbox()
            then(result, now, inner)
            self._labeled(user, label, inner, out)

        return labeled

    def _batch_id(self) -> bytes:
        return f"b{next(self._batches)}".encode()

    def input_too_long(self, user: User, out: Outbox) -> None:
        """`user` sent a line over the length limits; it was dropped."""
        self._reply(out, user, p.ERR_INPUTTOOLONG, "Input line was too long")

    def disconnect(self, user: User, reason: str, now: float, out: Outbox) -> None:
        """Remove `user` (idempotent): QUIT to those who share a channel, ERROR to the user."""
        self.disconnect_all((user,), (reason,), now, out)

    def disconnect_all(
        self, users: Sequence[User], reasons: Sequence[str], now: float, out: Outbox
    ) -> None:
        """Remove many users at once, each as `disconnect` would (idempotent): `reasons[i]` is
        why `users[i]` leaves.

        Everyone who stays is told of all the departures it shares a channel with in one blob,
        each QUIT once and in the order of `users`; each QUIT is rendered once, and each
        channel's member tuple is rebuilt once, however many of its members leave. So the cost
        is the sizes of the channels concerned, not their square (2,000 members closing at once
        would otherwise rebuild a 2,000-tuple 2,000 times and tell each who stays 2,000 times)."""
        leaving: dict[User, str] = {}
        for user, reason in zip(users, reasons, strict=True):
            if user.gone or user in leaving:
                continue
            user.gone = True
            self.clients.discard(user)
            if user.party is not None:
                self._guests.pop(user.party, None)
            leaving[user] = reason
        if not leaving:
            return
        if self.closing:  # the server is going: everyone leaves, nobody needs to be told
            for user, reason in leaving.items():
                out.close(user, f"Closing link ({reason})")
            return
        # each departure's QUIT, and who leaves each channel concerned, in departure order
        quits: dict[User, bytes | Variants] = {}
        left: dict[str, list[User]] = {}
        for user, reason in leaving.items():
            if not user.registered:
                continue
            self.whowas.append(WhowasEntry(user.nick, user.username, user.host, user.realname, now))
            quits[user] = self._from(user, "QUIT", reason)
            for key in user.channels:
                left.setdefault(key, []).append(user)
        self._tell_quits(quits, left, out)
        for key, gone in left.items():
            chan = self.channels[key]
            for user in gone:
                del chan.members[user]
                del user.channels[key]
            chan.users = tuple(chan.members)
            if not chan.members:
                self._emptied(chan, key)
        for user, reason in leaving.items():
            if user.nick and self.nicks.get(casefold(user.nick)) is user:
                del self.nicks[casefold(user.nick)]
            out.close(user, f"Closing link ({reason})")

    def _tell_quits(
        self, quits: dict[User, bytes | Variants], left: dict[str, list[User]], out: Outbox
    ) -> None:
        """Queue for each member who stays the QUITs of those in `left` it shares a channel with:
        once each, in the order of `quits`. Members of the same channels get the same blob."""
        # the channels concerned of each member who stays
        seen_in: dict[User, list[str]] = {}
        for key in left:
            for member in self.channels[key].users:
                if member not in quits and not member.gone:
                    where = seen_in.get(member)
                    if where is None:
                        seen_in[member] = [key]
                    else:
                        where.append(key)
        # the members who stay, grouped by the channels they share with the departures
        groups: dict[tuple[str, ...], list[User]] = {}
        for member, where in seen_in.items():
            groups.setdefault(tuple(where), []).append(member)
        order = {user: i for i, user in enumerate(quits)}
        for shared, members in groups.items():
            if len(shared) == 1:
                gone = left[shared[0]]
            else:  # in several channels: each departure once, in order
                gone = sorted({user for key in shared for user in left[key]}, key=order.__getitem__)
            out.broadcast(members, _joined([quits[user] for user in gone]))

    def tick(self, now: float, out: Outbox) -> None:
        """Periodic work: ping idle users, drop the silent and the never-registered (all those
        of one tick at once, `disconnect_all`)."""
        c = self.config
        leaving: list[User] = []
        reasons: list[str] = []
        for user in list(self.clients):
            if not user.registered:
                if now - user.connected_at >= c.registration_timeout:
                    leaving.append(user)
                    reasons.append("Registration timed out")
                continue
            if user.ping_sent is None:
                if now - user.last_active >= c.ping_interval:
                    user.ping_sent = now
                    out.send(user, Line("PING", (c.server_name,)).encode(trailing=True))
            elif now - user.ping_sent >= c.ping_timeout:
                leaving.append(user)
                reasons.append(f"Ping timeout: {int(now - user.last_active)} seconds")
                continue
            if user.nick_deadline is not None and now >= user.nick_deadline:
                self._rename_guest(user, now, out)
        if leaving:
            self.disconnect_all(leaving, reasons, now, out)

    def _neighbours(self, user: User) -> list[User]:
        """Every other user who shares a channel with `user`, once each."""
        seen: dict[User, None] = {}
        for chan in user.channels.values():
            for member in chan.users:
                if member is not user:
                    seen[member] = None
        return list(seen)

    def _leave(self, chan: Channel, user: User) -> None:
        key = casefold(chan.name)
        chan.remove(user)
        user.channels.pop(key, None)
        if not chan.members:
            self._emptied(chan, key)

    def _emptied(self, chan: Channel, key: str) -> None:
        """The last member of `chan` (at `key`) has left."""
        chan.invited.clear()  # invitations are its members' to give
        if not self._keep_empty(chan, key):
            del self.channels[key]

    def _keep_empty(self, chan: Channel, key: str) -> bool:
        """With history on, an emptied channel keeps its modes, bans and topic (they guard or
        describe its history) until --history-days pass unused; one that never held anything
        goes, as it always does without history."""
        if self.store is None:
            return False
        if _worth_keeping(chan) or self.store.has_messages(key):
            return True
        self.store.forget_channel(key)
        return False

    def _persist(self, chan: Channel, now: float) -> None:
        """Write a channel's state: on its creation and when its topic, modes or bans change."""
        if self.store is not None:
            self.store.save_channel(casefold(chan.name), _to_store(chan, now))

    def _founder(self, chan: Channel, user: User) -> bool:
        return (
            chan.founder is not None
            and user.account is not None
            and casefold(user.account) == chan.founder
        )

    def expire_accounts(self, before: float) -> list[str]:
        """Delete the accounts registered before `before` that nobody logged in to since, but
        those logged in now (see Store.expire_accounts); return their folded names. Their
        names cannot be registered again until `expired` says their history is gone too."""
        if self.store is None:
            return []
        in_use = {casefold(user.account) for user in self.clients if user.account is not None}
        names = self.store.expire_accounts(int(before * 1000), in_use)
        if names:
            gone = set(names)
            self.expiring |= gone
            for chan in self.channels.values():
                if chan.founder in gone:
                    chan.founder = None
        return names

    def expired(self, names: list[str]) -> None:
        """The private history of the expired accounts `names` is deleted: free the names."""
        self.expiring.difference_update(names)

    def forget_idle_channels(self, now: float, before: float) -> list[str]:
        """Forget the channels that nobody has been in since `before` and that have no history
        left (--history-days), so that names are not held forever; return their names."""
        if self.store is None:
            return []
        in_use = [key for key, chan in self.channels.items() if chan.members]
        names = []
        for key in self.store.forget_idle_channels(in_use, now, before):
            chan = self.channels.get(key)
            if chan is not None and not chan.members:
                del self.channels[key]
                names.append(chan.name)
        return names

    def find_user(self, nick: str) -> User | None:
        user = self.nicks.get(casefold(nick))
        return user if user is not None and user.registered else None

    # -- registration -----------------------------------------------------------------------------

    def _cap(self, user: User, line: Line, now: float, out: Outbox) -> None:
        sub = line.params[0].upper()
        nick = user.nick or "*"
        server = self.config.server_name
        if sub == "LS":
            if not user.registered:
                user.cap_negotiating = True
            version = line.params[1] if len(line.params) > 1 else ""
            number = p.parse_uint(version)
            if number is not None and number >= 302:
                user.cap302 = True
                user.caps.add("cap-notify")
            offered = dict(self.capabilities)
            if self.sts_port is not None:
                # plain connections: upgrade to the TLS port; TLS ones: keep to it (real certs)
                if not user.tls:
                    offered["sts"] = f"port={self.sts_port}"
                elif self.sts_duration:
                    offered["sts"] = f"duration={self.sts_duration}"
            caps = [
                f"{name}={value}" if value and user.cap302 else name
                for name, value in sorted(offered.items())
            ]
            chunks = _chunks(caps, len(f":{server} CAP {nick} LS * :"), 510)
            for i, chunk in enumerate(chunks):
                more = ("*",) if i < len(chunks) - 1 and user.cap302 else ()
                params = (nick, "LS", *more, chunk)
                out.send(user, Line("CAP", params, source=server).encode(trailing=True))
        elif sub == "LIST":
            enabled = " ".join(sorted(user.caps))
            out.send(
                user, Line("CAP", (nick, "LIST", enabled), source=server).encode(trailing=True)
            )
        elif sub == "REQ":
            if not user.registered:
                user.cap_negotiating = True
            wanted = line.params[1] if len(line.params) > 1 else ""
            names = wanted.split()
            if names and all(name.lstrip("-") in self.capabilities for name in names):
                for name in names:
                    if name.startswith("-"):
                        user.caps.discard(name[1:])
                    else:
                        user.caps.add(name)
                user.tagmask = _tagmask(user.caps)
                verdict = "ACK"
            else:
                verdict = "NAK"
            out.send(
                user, Line("CAP", (nick, verdict, wanted), source=server).encode(trailing=True)
            )
        elif sub == "END":
            if not user.registered and user.cap_negotiating:
                user.cap_negotiating = False
                self._try_register(user, now, out)
        else:
            self._reply(out, user, p.ERR_INVALIDCAPCMD, sub, "Invalid CAP command")

    def _pass(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if user.registered:
            self._reply(out, user, p.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        user.password = line.params[0]

    def _user(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if user.registered or user.username:
            self._reply(out, user, p.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        raw = "".join(ch for ch in line.params[0] if ch.isascii() and (ch.isalnum() or ch in "-._"))
        user.username = "~" + (raw or "user")[: self.config.userlen - 1]
        # as long as SETNAME allows (NAMELEN): cut rather than refused at registration, as other
        # servers do, so a client with a long default still connects
        user.realname = _truncate(line.params[3], self.config.namelen)
        self._try_register(user, now, out)

    def _try_register(self, user: User, now: float, out: Outbox) -> None:
        if user.registered or user.cap_negotiating or not user.nick or not user.username:
            return
        c = self.config
        if c.password is not None and not hmac.compare_digest(
            (user.password or "").encode(), c.password.encode()
        ):
            self._reply(out, user, p.ERR_PASSWDMISMATCH, "Password incorrect")
            self.disconnect(user, "Bad password", now, out)
            return
        ban = self._kline_for(user, now)
        if ban is not None:
            self._reply(
                out, user, p.ERR_YOUREBANNEDCREEP, f"You are banned from this server: {ban}"
            )
            self.disconnect(user, f"K-lined: {ban}", now, out)
            return
        user.registered = True
        user._update_prefix()
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(c.created))
        version = f"tuichat-{__version__}"
        self._reply(
            out, user, p.RPL_WELCOME, f"Welcome to the {c.network} IRC Network {user.prefix}"
        )
        self._reply(
            out, user, p.RPL_YOURHOST, f"Your host is {c.server_name}, running version {version}"
        )
        self._reply(out, user, p.RPL_CREATED, f"This server was created {created}")
        self._reply(
            out, user, p.RPL_MYINFO, c.server_name, version, USER_MODES, CHANNEL_MODES_ALL, "bklqov"
        )
        self._send_isupport(out, user)
        self._send_lusers(out, user)
        self._send_motd(out, user)
        self._protect_nick(user, now, out)

    # -- nicks ------------------------------------------------------------------------------------

    def _nick(
        self, user: User, line: Line, now: float, out: Outbox, *, forced: bool = False
    ) -> None:
        """NICK; `forced` when the server renames the user itself (nothing may refuse it)."""
        if not line.params or not line.params[0]:
            self._reply(out, user, p.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        new = line.params[0]
        if not p.is_valid_nick(new, self.config.nicklen):
            self._reply(out, user, p.ERR_ERRONEUSNICKNAME, new, "Erroneous nickname")
            return
        key = casefold(new)
        holder = self.nicks.get(key)
        if holder is not None and holder is not user:
            self._reply(out, user, p.ERR_NICKNAMEINUSE, new, "Nickname is already in use")
            return
        if new == user.nick:
            return
        if user.registered and not forced:
            refusal = self._nick_change_refused(user, new)
            if refusal is not None:
                chan, reason = refusal
                self._reply(out, user, p.ERR_BANONCHAN, new, chan.name, reason)
                return
        old_key = casefold(user.nick) if user.nick else None
        if user.registered:
            data = self._from(user, "NICK", new)
            out.send(user, data)
            for other in self._neighbours(user):
                out.send(other, data)
            self.whowas.append(WhowasEntry(user.nick, user.username, user.host, user.realname, now))
        if old_key is not None and self.nicks.get(old_key) is user:
            del self.nicks[old_key]
        self.nicks[key] = user
        user.nick = new
        if user.registered:
            user._update_prefix()
            self._protect_nick(user, now, out)
        else:
            self._try_register(user, now, out)

    # -- liveness ---------------------------------------------------------------------------------

    def _ping(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.ERR_NOORIGIN, "No origin specified")
            return
        server = self.config.server_name
        out.send(user, Line("PONG", (server, line.params[0]), source=server).encode(trailing=True))

    def _pong(self, user: User, line: Line, now: float, out: Outbox) -> None:
        pass  # handle() has already recorded the activity

    def _quit(self, user: User, line: Line, now: float, out: Outbox) -> None:
        reason = line.params[0] if line.params else ""
        self.disconnect(user, f"Quit: {reason}" if reason else "Quit", now, out)

    # -- channels ---------------------------------------------------------------------------------

    def _join(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params[0] == "0":
            for chan in list(user.channels.values()):
                out.broadcast(chan.users, self._from(user, "PART", chan.name, user.nick))
                self._leave(chan, user)
            return
        names = line.params[0].split(",")
        keys = line.params[1].split(",") if len(line.params) > 1 else []
        c = self.config
        for i, name in enumerate(names):
            if not name:
                continue
            if not p.is_valid_channel(name, c.channellen):
                self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")
                continue
            key = casefold(name)
            existing = self.channels.get(key)
            if existing is not None and user in existing.members:
                continue
            if len(user.channels) >= c.chanlimit:
                self._reply(
                    out, user, p.ERR_TOOMANYCHANNELS, name, "You have joined too many channels"
                )
                continue
            modes: set[str] = set()
            if existing is None:
                chan = self.channels[key] = Channel(name, now)
                modes.add("o")
                if self.store is not None:
                    chan.founder = casefold(user.account) if user.account is not None else None
                    self._persist(chan, now)
            else:
                chan = existing
                error = self._join_error(chan, user, keys[i] if i < len(keys) else None)
                if error is not None:
                    self._reply(out, user, error[0], chan.name, error[1])
                    continue
                # a kept channel's founder is its operator; into an empty one without a founder,
                # the first to get past its modes, as into a new one
                if self._founder(chan, user) or (not chan.members and chan.founder is None):
                    modes.add("o")
            chan.invited.pop(user, None)
            chan.add(user, modes)
            user.channels[key] = chan
            out.broadcast(chan.users, self._join_line(user, chan.name, now))
            if user.away is not None:  # away-notify: members learn the newcomer is away
                away = self._from(user, "AWAY", user.away)
                for member in chan.users:
                    if member is not user and "away-notify" in member.caps:
                        out.send(member, away)
            if chan.topic:
                self._send_topic(out, user, chan)
            self._send_names(out, user, chan, marker="draft/read-marker" in user.caps)
            self._replay(out, user, chan)

    def _join_line(self, user: User, channel: str, now: float) -> Variants:
        """JOIN as each member negotiated it: extended-join adds the account and real name."""
        plain = f":{user.prefix} JOIN {channel}"
        extended = f"{plain} {user.account or '*'} :{user.realname}"
        stamp = "time=" + iso_time(int(now * 1000))
        account = "account=" + escape_tag_value(user.account) if user.account else ""

        def build(member: User) -> bytes:
            text = extended if "extended-join" in member.caps else plain
            tags = [stamp] if member.tagmask & TAG_TIME else []
            if account and member.tagmask & TAG_ACCOUNT:
                tags.append(account)
            if tags:
                text = "@" + ";".join(tags) + " " + text
            return (text + "\r\n").encode("utf-8", "replace")

        return Variants(lambda member: (member.tagmask, "extended-join" in member.caps), build)

    def _replay(self, out: Outbox, user: User, chan: Channel) -> None:
        """Context for a client that cannot ask for history: the channel's last lines."""
        limit = self.config.join_replay
        if self.store is None or limit <= 0 or user.caps & {"draft/chathistory", "chathistory"}:
            return
        store, key, name = self.store, casefold(chan.name), chan.name
        # read outside the lock, and only what was written before this JOIN: what comes later,
        # the joiner gets live
        through = store.written()

        def then(rows: object, now: float, follow: Outbox) -> None:
            if rows and not user.gone:
                assert isinstance(rows, list)
                stamp_text = "server-time" not in user.caps
                self._send_history(follow, user, name, rows, stamp_text=stamp_text)

        out.defer(lambda: store.query(key, limit, through=through), then)

    def _send_history(
        self, out: Outbox, user: User, target: str, rows: list[Message], stamp_text: bool = False
    ) -> None:
        """Stored messages in a `chathistory` batch (when the client has batch)."""
        server = self.config.server_name
        batch = self._batch_id().decode() if "batch" in user.caps else None
        parts: list[bytes] = []
        if batch:
            parts.append(f":{server} BATCH +{batch} chathistory {target}\r\n".encode())
        for row in rows:
            text = row.text
            if stamp_text:  # no server-time: say when in the text, as other servers do
                text = time.strftime("[%Y-%m-%d %H:%M] ", time.gmtime(row.time // 1000)) + text
            payload = _tagged(
                row.source,
                row.account,
                row.command,
                row.target,
                text,
                row.tags or {},
                row.msgid,
                row.time,
                batch,
            )
            parts.append(payload.for_user(user))
        if batch:
            parts.append(f":{server} BATCH -{batch}\r\n".encode())
        out.send(user, b"".join(parts))

    def _join_error(self, chan: Channel, user: User, key: str | None) -> tuple[str, str] | None:
        invited = user in chan.invited
        if chan.key is not None and key != chan.key:
            return p.ERR_BADCHANNELKEY, "Cannot join channel (+k)"
        if chan.limit is not None and len(chan.members) >= chan.limit:
            return p.ERR_CHANNELISFULL, "Cannot join channel (+l)"
        # nobody is in an empty +i channel to invite anyone: its founder and operators may enter
        closed = "i" in chan.modes and not invited and not self._founder(chan, user)
        if closed and not (not chan.members and "o" in user.modes):
            return p.ERR_INVITEONLYCHAN, "Cannot join channel (+i)"
        if not invited and self._banned(chan, user):
            return p.ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"
        return None

    def _banned(self, chan: Channel, user: User) -> bool:
        return bool(chan.bans) and any(
            p.mask_matches(mask, user.prefix) for mask, _, _ in chan.bans
        )

    def _nick_change_refused(self, user: User, new: str) -> tuple[Channel, str] | None:
        """A channel where `user` may not take the nick `new`, and why: one where the user is
        banned or quieted (+b, +q) under the old or the new mask and has neither voice nor
        operator status. Otherwise a banned member would speak again under a new nick."""
        new_prefix = f"{new}!{user.username}@{user.host}"
        for chan in user.channels.values():
            if not chan.bans and not chan.quiets:
                continue
            modes = chan.members.get(user, set())
            if "o" in modes or "v" in modes:
                continue
            for masks, reason in (
                (chan.bans, "Cannot change nickname while banned on channel"),
                (chan.quiets, "Cannot change nickname while muted on channel"),
            ):
                for mask, _, _ in masks:
                    if p.mask_matches(mask, user.prefix) or p.mask_matches(mask, new_prefix):
                        return chan, reason
        return None

    def _part(self, user: User, line: Line, now: float, out: Outbox) -> None:
        reason = line.params[1] if len(line.params) > 1 else ""
        for name in line.params[0].split(","):
            if not name:
                continue
            chan = self.channels.get(casefold(name))
            if chan is None:
                self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")
            elif user not in chan.members:
                self._reply(out, user, p.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
            else:
                params = (chan.name, reason) if reason else (chan.name,)
                out.broadcast(chan.users, self._from(user, "PART", *params, trailing=bool(reason)))
                self._leave(chan, user)

    def _visible(self, chan: Channel, user: User) -> bool:
        return "s" not in chan.modes or user in chan.members

    def _visible_members(self, chan: Channel, user: User) -> list[User]:
        """The members `user` may see: all of them from inside, the visible ones from outside."""
        if user in chan.members:
            return list(chan.users)
        return [member for member in chan.users if "i" not in member.modes]

    def _names_reply(self, user: User, chan: Channel, end: bool) -> Callable[[], bytes]:
        """The 353 lines of `chan` for `user` (and 366 if `end`), to render from a snapshot taken
        now: the only work done here is one pass over the members."""
        symbol = "@" if "s" in chan.modes else "="
        multi = "multi-prefix" in user.caps
        full = "userhost-in-names" in user.caps
        members = self._visible_members(chan, user)
        # the snapshot, in loops that run in C: 2,000 members in a fraction of a millisecond
        nicks = list(map(_NICK, members))
        shown = list(map(_PREFIX, members)) if full else nicks
        statuses = _statuses(chan)
        server, nick, name = self.config.server_name, user.nick or "*", chan.name

        def render() -> bytes:
            order = sorted(range(len(nicks)), key=lambda i: casefold(nicks[i]))
            listed = [_status(statuses.get(members[i], _NONE), multi) + shown[i] for i in order]
            head = len(f":{server} 353 {nick} {symbol} {name} :")
            data = [
                _numeric(server, nick, p.RPL_NAMREPLY, symbol, name, chunk)
                for chunk in _chunks(listed, head)
            ]
            if end:
                data.append(_numeric(server, nick, p.RPL_ENDOFNAMES, name, "End of /NAMES list"))
            return b"".join(data)

        return render

    def _send_names(self, out: Outbox, user: User, chan: Channel, marker: bool = False) -> None:
        """NAMES after a JOIN (rendered at once: what follows the JOIN comes after it)."""
        data = self._names_reply(user, chan, end=False)()
        out.charge(len(data))
        out.send(user, data)
        if marker:  # read-marker: after a JOIN, the marker comes before the end of NAMES
            self._send_marker(out, user, chan.name)
        self._reply(out, user, p.RPL_ENDOFNAMES, chan.name, "End of /NAMES list")

    def _names(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.RPL_ENDOFNAMES, "*", "End of /NAMES list")
            return
        # each channel once, and a few at most: a long list of a big channel is a lot of work
        names = list(dict.fromkeys(casefold(name) for name in line.params[0].split(",") if name))
        for name in names[: self.config.maxtargets]:
            chan = self.channels.get(name)
            if chan is not None and self._visible(chan, user):
                out.reply(user, self._names_reply(user, chan, end=True))
            else:
                self._reply(out, user, p.RPL_ENDOFNAMES, name, "End of /NAMES list")

    def _send_topic(self, out: Outbox, user: User, chan: Channel) -> None:
        if not chan.topic:
            self._reply(out, user, p.RPL_NOTOPIC, chan.name, "No topic is set")
            return
        self._reply(out, user, p.RPL_TOPIC, chan.name, chan.topic)
        self._reply(
            out, user, p.RPL_TOPICWHOTIME, chan.name, chan.topic_by, str(int(chan.topic_time))
        )

    def _topic(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name = line.params[0]
        chan = self.channels.get(casefold(name))
        if chan is None or not self._visible(chan, user):
            self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")
            return
        if len(line.params) == 1:
            self._send_topic(out, user, chan)
            return
        modes = chan.members.get(user)
        if modes is None:
            self._reply(out, user, p.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
            return
        if "t" in chan.modes and "o" not in modes:
            self._reply(out, user, p.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
            return
        chan.topic = _truncate(line.params[1], self.config.topiclen)
        chan.topic_by = user.prefix
        chan.topic_time = now
        self._persist(chan, now)
        out.broadcast(chan.users, self._from(user, "TOPIC", chan.name, chan.topic))

    def _list(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params and not line.params[0].startswith((">", "<")):
            wanted = [self.channels.get(casefold(name)) for name in line.params[0].split(",")]
            chans = [chan for chan in wanted if chan is not None]
        else:
            chans = sorted(self.channels.values(), key=lambda chan: casefold(chan.name))
        self._reply(out, user, p.RPL_LISTSTART, "Channel", "Users  Name")
        for chan in chans:
            if self._visible(chan, user):
                self._reply(out, user, p.RPL_LIST, chan.name, str(len(chan.members)), chan.topic)
        self._reply(out, user, p.RPL_LISTEND, "End of /LIST")

    def _invite(self, user: User, line: Line, now: float, out: Outbox) -> None:
        nick, name = line.params[0], line.params[1]
        target = self.find_user(nick)
        if target is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, nick, "No such nick/channel")
            return
        chan = self.channels.get(casefold(name))
        if chan is None:
            self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")
            return
        modes = chan.members.get(user)
        if modes is None:
            self._reply(out, user, p.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
            return
        if "i" in chan.modes and "o" not in modes:
            self._reply(out, user, p.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
            return
        if target in chan.members:
            self._reply(
                out, user, p.ERR_USERONCHANNEL, target.nick, chan.name, "is already on channel"
            )
            return
        if len(chan.invited) >= MAX_INVITES:  # bounded: the oldest invitation goes
            del chan.invited[next(iter(chan.invited))]
        chan.invited[target] = None
        self._reply(out, user, p.RPL_INVITING, target.nick, chan.name)
        invite = self._from(user, "INVITE", target.nick, chan.name)
        out.send(target, invite)
        for member in chan.users:  # invite-notify: the channel hears of it too
            if member is not user and "invite-notify" in member.caps:
                out.send(member, invite)
        if target.away is not None:
            self._reply(out, user, p.RPL_AWAY, target.nick, target.away)

    def _kick(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name = line.params[0]
        chan = self.channels.get(casefold(name))
        if chan is None:
            self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")
            return
        modes = chan.members.get(user)
        if modes is None:
            self._reply(out, user, p.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")
            return
        if "o" not in modes:
            self._reply(out, user, p.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")
            return
        reason = (
            _truncate(line.params[2], self.config.kicklen) if len(line.params) > 2 else user.nick
        )
        for nick in line.params[1].split(","):
            target = self.find_user(nick)
            if target is None or target not in chan.members:
                self._reply(
                    out,
                    user,
                    p.ERR_USERNOTINCHANNEL,
                    nick,
                    chan.name,
                    "They aren't on that channel",
                )
                continue
            out.broadcast(chan.users, self._from(user, "KICK", chan.name, target.nick, reason))
            self._leave(chan, target)
            if not chan.members:
                break

    # -- messages ---------------------------------------------------------------------------------

    def _privmsg(self, user: User, line: Line, now: float, out: Outbox) -> None:
        command = line.command
        notice = command == "NOTICE"
        params = line.params
        if not params or not params[0]:
            if not notice:
                self._reply(out, user, p.ERR_NORECIPIENT, f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            if not notice:
                self._reply(out, user, p.ERR_NOTEXTTOSEND, "No text to send")
            return
        text = params[1]
        if not notice:
            user.last_message = now
        seen: set[str] = set()
        for target in params[0].split(","):
            key = casefold(target)
            if not target or key in seen:
                continue
            seen.add(key)
            if len(seen) > self.config.maxtargets:
                if not notice:
                    self._reply(out, user, p.ERR_TOOMANYTARGETS, target, "Too many recipients")
                continue
            if target.startswith("#"):
                chan = self.channels.get(key)
                if chan is None:
                    if not notice:
                        self._reply(out, user, p.ERR_NOSUCHCHANNEL, target, "No such channel")
                    continue
                refusal = self._cannot_send(chan, user)
                if refusal is not None:
                    if not notice:
                        self._reply(out, user, p.ERR_CANNOTSENDTOCHAN, chan.name, refusal)
                    continue
                self._deliver_message(user, command, chan.name, text, line, now, out, chan.users)
            else:
                other = self.find_user(target)
                if other is None:
                    if not notice:
                        self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
                    continue
                self._deliver_message(user, command, other.nick, text, line, now, out, (other,))
                if other.away is not None and not notice:
                    self._reply(out, user, p.RPL_AWAY, other.nick, other.away)

    def _deliver_message(
        self,
        user: User,
        command: str,
        target: str,
        text: str | None,
        line: Line,
        now: float,
        out: Outbox,
        recipients: Targets,
    ) -> None:
        """A PRIVMSG, NOTICE or TAGMSG: stored (not TAGMSG), then delivered with each
        recipient's tags; echoed to the sender when it asked for echo-message."""
        client_tags = _client_tags(line)
        if text is not None:
            # relayed with the sender's prefix, the line must still fit 512 bytes: cut the text
            head = f":{user.prefix} {command} {target} :"
            text = _truncate(text, p.MAX_BODY - 2 - len(head.encode("utf-8", "replace")))
        msgid = self.store.new_msgid() if self.store is not None else _fallback_msgid()
        time_ms = int(now * 1000)
        payload = _tagged(
            user.prefix, user.account, command, target, text, client_tags, msgid, time_ms
        )
        if self.store is not None and text is not None:
            if target[0] == "#":
                key = casefold(target)
            else:
                mine, theirs = self._party(user), self._party(recipients[0])
                key = _private_key(mine, theirs)
                _met(user, theirs)
                _met(recipients[0], mine)
            message = Message(
                msgid,
                time_ms,
                key,
                target,
                user.prefix,
                user.account,
                command,
                text,
                client_tags or None,
            )
            wait = self._history_quota(user, _stored_size(message), now)
            if wait:
                # nothing unrecorded is delivered (as when the disk is full): refused, to all
                why = f"history quota exceeded; try again in {math.ceil(wait / 60)} min"
                out.send(user, self._unstored(user, command, target, why))
                return
            if isinstance(payload, Variants):
                out.record(user, payload, self._unstored(user, command, target))
            self.store.add(message)
        echo = "echo-message" in user.caps
        if not target.startswith("#") and recipients[0] is user:
            out.broadcast(recipients, payload)  # to oneself: delivered once, echo or not
        else:
            out.broadcast(recipients, payload, None if echo else user)
            if echo and user not in recipients:
                out.broadcast((user,), payload)

    def _tagmsg(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """TAGMSG: client-only tags (+typing...) for those who negotiated message-tags."""
        target = line.params[0]
        if target.startswith("#"):
            chan = self.channels.get(casefold(target))
            if chan is None:
                self._reply(out, user, p.ERR_NOSUCHCHANNEL, target, "No such channel")
                return
            if self._cannot_send(chan, user) is not None:
                return
            self._deliver_message(user, "TAGMSG", chan.name, None, line, now, out, chan.users)
        else:
            other = self.find_user(target)
            if other is None:
                self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
                return
            self._deliver_message(user, "TAGMSG", other.nick, None, line, now, out, (other,))

    def _cannot_send(self, chan: Channel, user: User) -> str | None:
        modes = chan.members.get(user)
        if modes is None and "n" in chan.modes:
            return "Cannot send to channel (no external messages)"
        privileged = modes is not None and ("o" in modes or "v" in modes)
        if privileged:
            return None
        if "m" in chan.modes:
            return "Cannot send to channel (+m)"
        if self._banned(chan, user):
            return "Cannot send to channel (you're banned)"
        if chan.quiets and any(p.mask_matches(mask, user.prefix) for mask, _, _ in chan.quiets):
            return "Cannot send to channel (you're muted)"
        return None

    def _away(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params and line.params[0]:
            user.away = _truncate(line.params[0], self.config.awaylen)
            self._reply(out, user, p.RPL_NOWAWAY, "You have been marked as being away")
            notice = self._from(user, "AWAY", user.away)
        else:
            user.away = None
            self._reply(out, user, p.RPL_UNAWAY, "You are no longer marked as being away")
            notice = self._from(user, "AWAY")
        for other in self._neighbours(user):
            if "away-notify" in other.caps:
                out.send(other, notice)

    # -- modes ------------------------------------------------------------------------------------

    def _mode(self, user: User, line: Line, now: float, out: Outbox) -> None:
        target = line.params[0]
        if target.startswith("#"):
            self._channel_mode(user, line, now, out)
            return
        other = self.find_user(target)
        if other is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
            return
        if other is not user:
            self._reply(out, user, p.ERR_USERSDONTMATCH, "Can't change mode for other users")
            return
        if len(line.params) == 1:
            self._reply(out, user, p.RPL_UMODEIS, "+" + "".join(sorted(user.modes)))
            return
        sign = "+"
        changes: list[str] = []
        unknown = False
        for ch in line.params[1]:
            if ch in "+-":
                sign = ch
            elif ch == "i" or (ch == "o" and sign == "-"):
                if (ch in user.modes) != (sign == "+"):
                    user.modes.symmetric_difference_update(ch)
                    changes.append(sign + ch)
            elif ch != "o":
                unknown = True
        if unknown:
            self._reply(out, user, p.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
        if changes:
            out.send(
                user,
                Line("MODE", (user.nick, _compress(changes)), source=user.prefix).encode(
                    trailing=True
                ),
            )

    def _channel_mode(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name = line.params[0]
        chan = self.channels.get(casefold(name))
        if chan is None:
            self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")
            return
        modes = chan.members.get(user)
        if len(line.params) == 1:
            self._reply(
                out, user, p.RPL_CHANNELMODEIS, chan.name, *chan.mode_string(modes is not None)
            )
            self._reply(out, user, p.RPL_CREATIONTIME, chan.name, str(int(chan.created)))
            return
        is_op = modes is not None and "o" in modes
        args = list(line.params[2:])
        sign = "+"
        changes: list[str] = []
        change_args: list[str] = []
        refused = False
        listed = ""
        with_param = 0

        def allowed() -> bool:
            nonlocal refused
            if not is_op and not refused:
                refused = True
                self._reply(
                    out, user, p.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator"
                )
            return is_op

        for ch in line.params[1]:
            if ch in "+-":
                sign = ch
                continue
            if ch in "bqkovl" and not (ch == "l" and sign == "-"):
                if ch in "bq" and not args:
                    if ch not in listed:
                        listed += ch
                        entries, item, end, what = (
                            (chan.bans, p.RPL_BANLIST, p.RPL_ENDOFBANLIST, "ban")
                            if ch == "b"
                            else (chan.quiets, p.RPL_QUIETLIST, p.RPL_ENDOFQUIETLIST, "quiet")
                        )
                        extra = ("q",) if ch == "q" else ()
                        for mask, setter, when in entries:
                            self._reply(out, user, item, chan.name, *extra, mask, setter, str(when))
                        self._reply(
                            out, user, end, chan.name, *extra, f"End of channel {what} list"
                        )
                    continue
                if not args:
                    if ch != "k" or sign == "+":
                        self._reply(
                            out, user, p.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters"
                        )
                    elif allowed() and chan.key is not None:
                        chan.key = None
                        changes.append("-k")
                        change_args.append("*")
                    continue
                arg = args.pop(0)
                with_param += 1
                if with_param > self.config.modes or not allowed():
                    continue
                if ch in "bkq" and not _mode_param_ok(arg, ch):
                    # it could not be shown as a middle parameter of MODE, 324 or 367 (`:x`), and
                    # no JOIN could give such a key: refused, as modern.ircdocs.horse advises
                    self._reply(
                        out,
                        user,
                        p.ERR_INVALIDMODEPARAM,
                        chan.name,
                        ch,
                        "*",
                        "Invalid mode parameter: empty, or a space, a comma or a leading colon",
                    )
                    continue
                if ch in "bq":
                    entries = chan.bans if ch == "b" else chan.quiets
                    mask = p.normalize_mask(arg)
                    present = [ban for ban in entries if casefold(ban[0]) == casefold(mask)]
                    if sign == "+" and not present and len(entries) >= self.config.maxbans:
                        self._reply(
                            out,
                            user,
                            p.ERR_BANLISTFULL,
                            chan.name,
                            mask,
                            "Channel ban list is full",
                        )
                        continue
                    if sign == "+" and not present:
                        entries.append((mask, user.prefix, int(now)))
                    elif sign == "-" and present:
                        entries.remove(present[0])
                        mask = present[0][0]
                    else:
                        continue
                    changes.append(sign + ch)
                    change_args.append(mask)
                elif ch in "ov":
                    target = self.find_user(arg)
                    if target is None:
                        self._reply(out, user, p.ERR_NOSUCHNICK, arg, "No such nick/channel")
                        continue
                    target_modes = chan.members.get(target)
                    if target_modes is None:
                        self._reply(
                            out,
                            user,
                            p.ERR_USERNOTINCHANNEL,
                            target.nick,
                            chan.name,
                            "They aren't on that channel",
                        )
                        continue
                    if (ch in target_modes) != (sign == "+"):
                        target_modes.symmetric_difference_update(ch)
                        changes.append(sign + ch)
                        change_args.append(target.nick)
                elif ch == "k":
                    if sign == "+":
                        chan.key = arg
                        changes.append("+k")
                        change_args.append(arg)
                    elif chan.key is not None:
                        chan.key = None
                        changes.append("-k")
                        change_args.append("*")
                elif ch == "l":
                    limit = p.parse_uint(arg, MAX_LIMIT)
                    if limit is None:
                        continue
                    if limit > 0 and limit != chan.limit:
                        chan.limit = limit
                        changes.append("+l")
                        change_args.append(str(limit))
            elif ch == "l":
                if allowed() and chan.limit is not None:
                    chan.limit = None
                    changes.append("-l")
            elif ch in CHANNEL_MODES:
                if allowed() and (ch in chan.modes) != (sign == "+"):
                    chan.modes.symmetric_difference_update(ch)
                    changes.append(sign + ch)
            else:
                self._reply(out, user, p.ERR_UNKNOWNMODE, ch, "is unknown mode char to me")
        if changes:
            params = (chan.name, _compress(changes), *change_args)
            out.broadcast(chan.users, Line("MODE", params, source=user.prefix).encode())
            if any(change[1] not in "ov" for change in changes):  # member status is not kept
                self._persist(chan, now)

    # -- queries ----------------------------------------------------------------------------------

    def _who(self, user: User, line: Line, now: float, out: Outbox) -> None:
        mask = line.params[0] if line.params else "*"
        opers_only = len(line.params) > 1 and "o" in line.params[1]
        server = self.config.server_name
        members: list[User] = []
        where: list[str] = []  # the channel each row shows, when not one for all
        statuses: dict[User, frozenset[str]] | None = None  # channel status, for a channel
        multi = "multi-prefix" in user.caps
        cut = ""  # why the reply is short of what was asked
        if mask.startswith("#"):
            chan = self.channels.get(casefold(mask))
            if chan is not None and self._visible(chan, user):
                members = self._visible_members(chan, user)
                statuses = _statuses(chan)
                where = [chan.name]
        elif len(mask) > self.config.who_masklen:
            cut = "Mask too long"
            mask = mask[: self.config.who_masklen]
        else:
            # one pass over the users, each field matched in time linear in its length, and at
            # most who_limit replies: a mask matches everybody, or nobody slowly, at a bounded cost
            pattern = p.compile_mask("*" if mask in ("0", "") else mask)
            on_server = pattern.matches(server)
            limit = self.config.who_limit
            shared: set[User] | None = None  # whom an invisible user is visible to: made if needed
            scanned = 0
            for other in self.nicks.values():
                scanned += 1
                if not other.registered:
                    continue
                if "i" in other.modes:
                    if shared is None:
                        shared = set(self._neighbours(user)) | {user}
                    if other not in shared:
                        continue
                if opers_only and "o" not in other.modes:
                    continue
                if (
                    on_server
                    or pattern.matches(other.nick)
                    or pattern.matches(other.username)
                    or pattern.matches(other.host)
                    or pattern.matches(other.realname)
                ):
                    if len(members) == limit:
                        cut = f"Too many matches: only the first {limit} are shown"
                        break
                    seen = [c.name for c in other.channels.values() if self._visible(c, user)]
                    members.append(other)
                    where.append(seen[0] if seen else "*")
            out.cost += min(BIG_REPLY_MOST, scanned // WHO_SCAN)
        # the snapshot: what each row shows, as it is now (loops that run in C); the lines are
        # made from it after the state lock
        fields = list(map(_WHO_FIELDS, members))
        opers = [("o" in modes) for modes in map(_MODES, members)]
        nick = user.nick or "*"

        def render() -> bytes:
            data = []
            for i, (username, host, other_nick, away, realname) in enumerate(fields):
                if i % 100 == 99:
                    # hand the GIL over now and then: a thread holding the state lock (a
                    # snapshot, a PING) would wait out Python's 5 ms switch interval each time,
                    # and everyone waiting for the lock with it (bench/README.md, who_names.py)
                    time.sleep(0)
                if opers_only and not opers[i]:
                    continue
                flags = ("G" if away is not None else "H") + ("*" if opers[i] else "")
                if statuses is not None:
                    flags += _status(statuses.get(members[i], _NONE), multi)
                data.append(
                    _numeric(
                        server,
                        nick,
                        p.RPL_WHOREPLY,
                        where[0] if statuses is not None else where[i],
                        username,
                        host,
                        server,
                        other_nick,
                        flags,
                        f"0 {realname}",
                    )
                )
            if cut:
                data.append(_numeric(server, nick, p.ERR_TOOMANYMATCHES, "WHO", cut))
            data.append(_numeric(server, nick, p.RPL_ENDOFWHO, mask, "End of WHO list"))
            return b"".join(data)

        out.reply(user, render)

    def _whois(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = line.params[-1].split(",")[0]
        other = self.find_user(nick)
        if other is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, nick, "No such nick/channel")
            self._reply(out, user, p.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
            return
        c = self.config
        self._reply(
            out, user, p.RPL_WHOISUSER, other.nick, other.username, other.host, "*", other.realname
        )
        chans = [
            chan.prefix_of(other, "multi-prefix" in user.caps) + chan.name
            for chan in other.channels.values()
            if self._visible(chan, user)
        ]
        head = len(f":{c.server_name} 319 {user.nick} {other.nick} :")
        for chunk in _chunks(chans, head):
            self._reply(out, user, p.RPL_WHOISCHANNELS, other.nick, chunk)
        self._reply(out, user, p.RPL_WHOISSERVER, other.nick, c.server_name, f"{c.network} server")
        if other.account is not None:
            self._reply(out, user, p.RPL_WHOISACCOUNT, other.nick, other.account, "is logged in as")
        if "o" in other.modes:
            self._reply(out, user, p.RPL_WHOISOPERATOR, other.nick, "is an IRC operator")
        if other.away is not None:
            self._reply(out, user, p.RPL_AWAY, other.nick, other.away)
        self._reply(
            out,
            user,
            p.RPL_WHOISIDLE,
            other.nick,
            str(int(now - other.last_message)),
            str(int(other.connected_at)),
            "seconds idle, signon time",
        )
        self._reply(out, user, p.RPL_ENDOFWHOIS, other.nick, "End of /WHOIS list")

    def _whowas(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params or not line.params[0]:
            self._reply(out, user, p.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = line.params[0]
        count = 0
        if len(line.params) > 1:
            count = p.parse_uint(line.params[1]) or 0
        key = casefold(nick)
        found = [entry for entry in reversed(self.whowas) if casefold(entry.nick) == key]
        if count:
            found = found[:count]
        if not found:
            self._reply(out, user, p.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
        for entry in found:
            when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.when))
            self._reply(
                out,
                user,
                p.RPL_WHOWASUSER,
                entry.nick,
                entry.username,
                entry.host,
                "*",
                entry.realname,
            )
            self._reply(out, user, p.RPL_WHOISSERVER, entry.nick, self.config.server_name, when)
        self._reply(out, user, p.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")

    def _ison(self, user: User, line: Line, now: float, out: Outbox) -> None:
        nicks = " ".join(line.params).split()
        online = [other.nick for nick in nicks if (other := self.find_user(nick)) is not None]
        self._reply(out, user, p.RPL_ISON, " ".join(online))

    def _userhost(self, user: User, line: Line, now: float, out: Outbox) -> None:
        replies = []
        for nick in " ".join(line.params).split()[:5]:
            other = self.find_user(nick)
            if other is not None:
                oper = "*" if "o" in other.modes else ""
                away = "-" if other.away is not None else "+"
                replies.append(f"{other.nick}{oper}={away}{other.username}@{other.host}")
        self._reply(out, user, p.RPL_USERHOST, " ".join(replies))

    # -- operators --------------------------------------------------------------------------------

    def _guess_wait(self, user: User, name: tuple[str, str], now: float) -> int:
        """Whole seconds before `user` may try another password for `name`, by the failures
        for that name and from that address (0: now)."""
        wait = max(
            self._guesses_by_name.wait(name, now),
            self._guesses_by_address.wait(address_key(user.host), now),
        )
        return math.ceil(wait)

    def _guessed(self, user: User, name: tuple[str, str], now: float) -> None:
        """One more wrong password (or one about to be checked) for `name` from `user`."""
        self._guesses_by_name.failed(name, now)
        self._guesses_by_address.failed(address_key(user.host), now)

    def _oper(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name, password = line.params[0], line.params[1]
        key = ("oper", name)
        wait = self._guess_wait(user, key, now)
        if wait:
            # refused unchecked: no guess gets through while it waits
            text = f"Too many failed attempts; try again in {wait} seconds"
            self._reply(out, user, p.ERR_NOOPERHOST, text)
            return
        expected = self.config.opers.get(name)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            self._guessed(user, key, now)
            self._reply(out, user, p.ERR_PASSWDMISMATCH, "Password incorrect")
            return
        self._guesses_by_name.succeeded(key)
        self._reply(out, user, p.RPL_YOUREOPER, "You are now an IRC operator")
        if "o" not in user.modes:
            user.modes.add("o")
            out.send(
                user, Line("MODE", (user.nick, "+o"), source=user.prefix).encode(trailing=True)
            )

    def _kill(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if "o" not in user.modes:
            self._reply(
                out, user, p.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator"
            )
            return
        nick, reason = line.params[0], line.params[1]
        target = self.find_user(nick)
        if target is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, nick, "No such nick/channel")
            return
        out.send(target, self._from(user, "KILL", target.nick, reason))
        self.disconnect(target, f"Killed ({user.nick} ({reason}))", now, out)

    # -- server information -----------------------------------------------------------------------

    def _send_motd(self, out: Outbox, user: User) -> None:
        motd = self.config.motd
        if motd is None:
            self._reply(out, user, p.ERR_NOMOTD, "MOTD File is missing")
            return
        self._reply(
            out, user, p.RPL_MOTDSTART, f"- {self.config.server_name} Message of the day - "
        )
        for text in motd:
            for piece in p.split_text(text, 400):
                self._reply(out, user, p.RPL_MOTD, f"- {piece}")
        self._reply(out, user, p.RPL_ENDOFMOTD, "End of /MOTD command.")

    def _motd(self, user: User, line: Line, now: float, out: Outbox) -> None:
        self._send_motd(out, user)

    def _send_lusers(self, out: Outbox, user: User) -> None:
        registered = [other for other in self.clients if other.registered]
        invisible = sum(1 for other in registered if "i" in other.modes)
        opers = sum(1 for other in registered if "o" in other.modes)
        unknown = len(self.clients) - len(registered)
        total = len(registered)
        self._reply(
            out,
            user,
            p.RPL_LUSERCLIENT,
            f"There are {total - invisible} users and {invisible} invisible on 1 servers",
        )
        self._reply(out, user, p.RPL_LUSEROP, str(opers), "operator(s) online")
        self._reply(out, user, p.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
        self._reply(out, user, p.RPL_LUSERCHANNELS, str(len(self.channels)), "channels formed")
        self._reply(out, user, p.RPL_LUSERME, f"I have {total} clients and 0 servers")
        self._reply(
            out, user, p.RPL_LOCALUSERS, str(total), str(total), f"Current local users {total}"
        )
        self._reply(
            out, user, p.RPL_GLOBALUSERS, str(total), str(total), f"Current global users {total}"
        )

    def _lusers(self, user: User, line: Line, now: float, out: Outbox) -> None:
        self._send_lusers(out, user)

    def _version(self, user: User, line: Line, now: float, out: Outbox) -> None:
        self._reply(out, user, p.RPL_VERSION, f"tuichat-{__version__}", self.config.server_name, "")
        self._send_isupport(out, user)

    def _time(self, user: User, line: Line, now: float, out: Outbox) -> None:
        text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
        self._reply(out, user, p.RPL_TIME, self.config.server_name, text)

    # -- accounts (SASL PLAIN, draft/account-registration) ----------------------------------------

    def _authenticate(self, user: User, line: Line, now: float, out: Outbox) -> None:
        arg = line.params[0]
        if user.account is not None:
            self._reply(out, user, p.ERR_SASLALREADY, "You have already authenticated")
            return
        if self.store is None or "sasl" not in user.caps:
            self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
            return
        if arg == "*":
            user.sasl = None
            self._reply(out, user, p.ERR_SASLABORTED, "SASL authentication aborted")
            return
        if user.sasl is None:
            if arg.upper() != "PLAIN":
                self._reply(out, user, p.RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
                self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
                return
            if self.config.require_tls_auth and not user.tls:
                self._reply(out, user, p.ERR_SASLFAIL, "SASL PLAIN needs a TLS connection here")
                return
            user.sasl = ("PLAIN", "")
            out.send(user, b"AUTHENTICATE +\r\n")
            return
        mechanism, data = user.sasl
        if arg != "+":
            data += arg
        if len(data) > 4 * 400:
            user.sasl = None
            self._reply(out, user, p.ERR_SASLTOOLONG, "SASL message too long")
            return
        if len(arg) == 400:  # more to come
            user.sasl = (mechanism, data)
            return
        user.sasl = None
        try:
            fields = base64.b64decode(data, validate=True).split(b"\0")
            authzid, authcid, password = (field.decode("utf-8") for field in fields)
        except (binascii.Error, ValueError):
            self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
            return
        name = authcid or authzid
        if authzid and casefold(authzid) != casefold(authcid):
            self._reply(out, user, p.ERR_SASLFAIL, "SASL authentication failed")
            return
        self._check_login(user, name, password, now, out)

    def _check_login(self, user: User, name: str, password: str, now: float, out: Outbox) -> None:
        """Verify a password outside the state lock, then log in or fail."""
        assert self.store is not None
        key = ("account", casefold(name))
        wait = self._guess_wait(user, key, now)
        if wait:
            # refused unchecked, and not one of this connection's failures: nothing was guessed
            text = f"Too many failed logins; try again in {wait} seconds"
            self._reply(out, user, p.ERR_SASLFAIL, text)
            return
        # counted before the check, which runs outside the lock: a burst of attempts from many
        # connections at once cannot all pass before the first failure is known
        self._guessed(user, key, now)
        found = self.store.account(casefold(name))
        if found is None:
            # hash anyway, so a missing account takes as long as a wrong password
            salt, digest, display = new_salt(), b"", name
        else:
            display, salt, digest = found

        def verify() -> object:
            return check_password(password, salt, digest) and found is not None

        def then(ok: object, now: float, follow: Outbox) -> None:
            if ok:
                self._guesses_by_name.succeeded(key)
                self._guesses_by_address.forgive(address_key(user.host), now)
                assert self.store is not None
                self.store.logged_in(casefold(display), int(now * 1000))
            if user.gone:
                return
            if ok:
                self._login(user, display, now, follow)
                self._reply(follow, user, p.RPL_SASLSUCCESS, "SASL authentication successful")
            else:
                self._reply(follow, user, p.ERR_SASLFAIL, "SASL authentication failed")
                user.sasl_failures += 1
                if user.sasl_failures >= MAX_SASL_FAILURES:  # no guessing passwords here
                    self.disconnect(user, "Too many failed logins", now, follow)

        out.defer(verify, then)

    def _login(self, user: User, account: str, now: float, out: Outbox) -> None:
        guest = user.party
        user.account = account
        if guest is not None:
            self._adopt(user, guest, out)
        if user.nick and casefold(user.nick) == casefold(account):
            user.nick_deadline = None
        mask = user.prefix or f"{user.nick or '*'}!{user.username or '*'}@{user.host}"
        self._reply(out, user, p.RPL_LOGGEDIN, mask, account, f"You are now logged in as {account}")
        if user.registered:
            data = self._from(user, "ACCOUNT", account, trailing=False)
            for other in self._neighbours(user):
                if "account-notify" in other.caps:
                    out.send(other, data)

    def _history_quota(self, user: User, size: int, now: float) -> float:
        """Seconds before `user` may store `size` more bytes of history (0: now, and they are
        counted against its account and its address)."""
        address = address_key(user.host)
        account = casefold(user.account) if user.account is not None else None
        wait = self._history_by_address.retry_after(address, size, now)
        if account is not None:
            wait = max(wait, self._history_by_account.retry_after(account, size, now))
        if wait:
            return wait
        self._history_by_address.take(address, size, now)
        if account is not None:
            self._history_by_account.take(account, size, now)
        return 0.0

    def _unstored(
        self, user: User, command: str, target: str, why: str = "history store unavailable"
    ) -> bytes:
        """What the sender of a message is told when its history row could not be written (disk
        full, or its quota used up): a standard reply, which tuichat shows (other clients show
        FAIL as a server line). Nobody got the message, its echo neither."""
        line = Line(
            "FAIL",
            (command, "TEMPORARILY_UNAVAILABLE", _middle(target), why),
            source=self.config.server_name,
        )
        return line.encode(trailing=True)

    def _fail(self, out: Outbox, user: User, command: str, code: str, *context: str) -> None:
        """A standard reply: FAIL <command> <code> [context...] :<description>."""
        # the context may echo what a client sent; the last parameter is the description
        middle = [_middle(param) for param in context[:-1]]
        line = Line("FAIL", (command, code, *middle, *context[-1:]), source=self.config.server_name)
        out.send(user, line.encode(trailing=True))

    def _register(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name, _email, password = line.params[0], line.params[1], line.params[2]
        if name == "*":
            name = user.nick
        if self.store is None or not self.config.open_registration:
            self._fail(out, user, "REGISTER", "DISALLOWED", name or "*", "Registration is closed")
            return
        if user.account is not None:
            self._fail(
                out,
                user,
                "REGISTER",
                "ALREADY_AUTHENTICATED",
                user.account,
                "You are already logged in",
            )
            return
        if not name:
            self._fail(out, user, "REGISTER", "NEED_NICK", "*", "Choose a nick first")
            return
        if not p.is_valid_nick(name, self.config.nicklen):
            self._fail(
                out,
                user,
                "REGISTER",
                "BAD_ACCOUNT_NAME",
                name or "*",
                "Account names follow the rules for nicks",
            )
            return
        if user.nick and casefold(name) != casefold(user.nick):
            self._fail(
                out,
                user,
                "REGISTER",
                "ACCOUNT_NAME_MUST_BE_NICK",
                name,
                "Register your current nick",
            )
            return
        if len(password) < 8:
            self._fail(
                out, user, "REGISTER", "WEAK_PASSWORD", name, "Passwords need at least 8 characters"
            )
            return
        if self.store.account(casefold(name)) is not None:
            self._fail(out, user, "REGISTER", "ACCOUNT_EXISTS", name, "Account already exists")
            return
        if casefold(name) in self.expiring:
            text = "That account is being deleted; try again in a minute"
            self._fail(out, user, "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text)
            return
        address = address_key(user.host)
        if not self._registrations.take(address, 1, now):
            minutes = math.ceil(self._registrations.retry_after(address, 1, now) / 60)
            text = f"Too many accounts registered from your address; try again in {minutes} min"
            self._fail(out, user, "REGISTER", "TEMPORARILY_UNAVAILABLE", name, text)
            return
        salt = new_salt()

        def digest() -> object:
            return hash_password(password, salt)

        def then(result: object, now: float, follow: Outbox) -> None:
            assert self.store is not None and isinstance(result, bytes)
            if user.gone:
                return
            if not self.store.create_account(casefold(name), name, salt, result, int(now * 1000)):
                self._fail(
                    follow, user, "REGISTER", "ACCOUNT_EXISTS", name, "Account already exists"
                )
                return
            server = self.config.server_name
            success = Line("REGISTER", ("SUCCESS", name, "Account created"), source=server)
            follow.send(user, success.encode(trailing=True))
            self._login(user, name, now, follow)

        out.defer(digest, then)

    def _verify(self, user: User, line: Line, now: float, out: Outbox) -> None:
        # accounts need no e-mail check here, so there is never a code to verify
        self._fail(
            out,
            user,
            "VERIFY",
            "INVALID_CODE",
            line.params[0],
            "No verification is pending for this account",
        )

    def _protect_nick(self, user: User, now: float, out: Outbox) -> None:
        """A registered nick used by someone not logged in to it: a warning and a deadline."""
        user.nick_deadline = None
        if self.store is None or not user.nick:
            return
        if user.account is not None and casefold(user.account) == casefold(user.nick):
            return
        if self.store.account(casefold(user.nick)) is None:
            return
        user.nick_deadline = now + self.config.nick_grace
        grace = int(self.config.nick_grace)
        text = (
            f"The nick {user.nick} belongs to a registered account. Log in to it (SASL) within "
            f"{grace} seconds, or you will be renamed."
        )
        out.send(
            user,
            Line("NOTICE", (user.nick, text), source=self.config.server_name).encode(trailing=True),
        )

    def _rename_guest(self, user: User, now: float, out: Outbox) -> None:
        while True:
            guest = f"Guest{int(now * 1000) % 100000:05d}"
            if casefold(guest) not in self.nicks:
                break
            now += 0.001
        self._nick(user, Line("NICK", (guest,)), now, out, forced=True)

    # -- history (chathistory), read markers, setname ---------------------------------------------

    def _history_key(self, user: User, target: str) -> str | Callable[[], str] | None:
        """The history key of `target` as `user` may read it, or None; for a nick that only a
        guest who left had, a function that finds it by reading the history (to run outside the
        state lock)."""
        if target.startswith("#"):
            chan = self.channels.get(casefold(target))
            if chan is None or user not in chan.members:
                return None
            return casefold(chan.name)
        if not p.is_valid_nick(target, self.config.nicklen):
            return None
        folded = casefold(target)
        store = self.store
        if self.find_user(target) is not None or store is None or store.account(folded):
            return self._peer_key(user, target)
        me = self._party(user)
        return lambda: (
            store.guest_conversation(me, folded, reading=True) or _private_key(me, folded)
        )

    def _canonical(self, target: str) -> str:
        """A channel's or online nick's own spelling of `target`."""
        chan = self.channels.get(casefold(target))
        if chan is not None:
            return chan.name
        other = self.find_user(target)
        return other.nick if other is not None else target

    def _chathistory(self, user: User, line: Line, now: float, out: Outbox) -> None:
        params = line.params
        sub = params[0].upper()
        if self.store is None:
            self._reply(out, user, p.ERR_UNKNOWNCOMMAND, "CHATHISTORY", "Unknown command")
            return
        needed = {"LATEST": 4, "BEFORE": 4, "AFTER": 4, "AROUND": 4, "BETWEEN": 5, "TARGETS": 4}
        if sub not in needed:
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", sub, "Unknown subcommand")
            return
        limit = p.parse_uint(params[-1], self.config.chathistory_max)
        if len(params) < needed[sub] or limit is None:
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", sub, "Invalid parameters")
            return
        if sub == "TARGETS":
            self._history_targets(user, params[1], params[2], limit, out)
            return
        target = params[1]
        key = self._history_key(user, target)
        if key is None:
            self._fail(
                out,
                user,
                "CHATHISTORY",
                "INVALID_TARGET",
                sub,
                target,
                "No such target, or you may not read its history",
            )
            return
        texts = params[2 : needed[sub] - 1]
        if any(
            text.startswith("timestamp=") and parse_iso_time(text[10:]) is None for text in texts
        ):
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", sub, "Invalid timestamp")
            return

        def bad_reference(to: Outbox) -> None:
            reason = "Invalid message reference"
            self._fail(to, user, "CHATHISTORY", "INVALID_MSGREFTYPE", sub, target, reason)

        if any(
            not (text == "*" or text.startswith(("msgid=", "timestamp="))) for text in texts
        ) or (sub != "LATEST" and "*" in texts):
            bad_reference(out)
            return
        store, name = self.store, self._canonical(target)

        def then(rows: object, now: float, follow: Outbox) -> None:
            if user.gone:
                return
            if rows is None:  # a msgid not found, or of another conversation
                bad_reference(follow)
                return
            assert isinstance(rows, list)
            self._send_history(follow, user, name, rows)

        # the rows are read outside the state lock, and sent under it
        find = key if callable(key) else None
        known = key if isinstance(key, str) else ""
        out.defer(lambda: _read_history(store, find() if find else known, sub, texts, limit), then)

    def _history_targets(
        self, user: User, first: str, second: str, limit: int, out: Outbox
    ) -> None:
        assert self.store is not None
        start = parse_iso_time(first.partition("=")[2])
        end = parse_iso_time(second.partition("=")[2])
        if start is None or end is None:
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", "TARGETS", "Invalid timestamps")
            return
        channels = list(user.channels)
        # private conversations: those of the account, or of this guest connection
        store, party = self.store, self._party(user)

        def then(found: object, now: float, follow: Outbox) -> None:
            if not user.gone:
                assert isinstance(found, list)
                self._send_targets(user, found, follow)

        out.defer(lambda: store.targets(channels, party, start, end, limit), then)

    def _send_targets(self, user: User, found: list[tuple[str, str, int]], out: Outbox) -> None:
        server = self.config.server_name
        batch = self._batch_id().decode() if "batch" in user.caps else None
        parts = []
        if batch:
            parts.append(f":{server} BATCH +{batch} draft/chathistory-targets\r\n".encode())
        for key, name, latest in found:
            if key in user.channels:
                name = user.channels[key].name
            elif " " in key:
                name = self._party_nick(name)
            line = Line("CHATHISTORY", ("TARGETS", name, iso_time(latest)), source=server)
            data = line.encode()
            parts.append(
                _add_tag(data[:-2], f"batch={batch}".encode()) + b"\r\n" if batch else data
            )
        if batch:
            parts.append(f":{server} BATCH -{batch}\r\n".encode())
        out.send(user, b"".join(parts))

    def _marker_key(self, user: User, target: str) -> str:
        return casefold(target) if target.startswith("#") else self._peer_key(user, target)

    def _party(self, user: User) -> str:
        """Who owns `user`'s private history: the folded account when logged in; for a guest, a
        party of this connection alone ("nick!token", made on first use: `!` is in no nick or
        account name, and the random token in no other connection). It stays across nick
        changes and dies with the connection: no later holder of the nick can ever have it."""
        if user.account is not None:
            return casefold(user.account)
        party = user.party
        if party is None:
            party = user.party = f"{casefold(user.nick)}!{secrets.token_hex(8)}"
            self._guests[party] = user
        return party

    def _party_nick(self, party: str) -> str:
        """The nick to show for a party: a guest's current nick (once gone, the one it had when
        its party was made); an account's name."""
        nick, bang, _ = party.partition("!")
        if bang:
            guest = self._guests.get(party)
            return guest.nick if guest is not None else nick
        found = self.store.account(party) if self.store is not None else None
        return found[0] if found is not None else party

    def _peer_key(self, user: User, target: str) -> str:
        """The key of `user`'s private conversation with the nick `target`: with whoever has
        that nick now; else with the account of that name; else with the latest guest of that
        nick `user` talked with (a guest who left stays in the history of whoever they talked
        to, under the nick they came with)."""
        me = self._party(user)
        other = self.find_user(target)
        if other is not None:
            return _private_key(me, self._party(other))
        folded = casefold(target)
        if self.store is not None and self.store.account(folded) is None:
            found = self.store.guest_conversation(me, folded)
            if found is not None:
                return found
        return _private_key(me, folded)

    def _adopt(self, user: User, guest: str, out: Outbox) -> None:
        """A guest logged in: their conversations so far move to the account (the same
        connection, so the same person), in the background and in chunks."""
        self._guests.pop(guest, None)
        user.party = None
        peers, user.peers = user.peers, None
        if self.store is None or not peers or user.account is None:
            return
        mine = casefold(user.account)
        for peer in peers:  # an online guest it talked with now talks with the account
            other = self._guests.get(peer)
            if other is not None and other.peers is not None and guest in other.peers:
                other.peers.discard(guest)
                other.peers.add(mine)
        changes = [
            (_private_key(guest, peer), _private_key(mine, mine if peer == guest else peer))
            for peer in peers
        ]
        store = self.store
        store.commit()  # the job runs outside the state lock, and commits nothing itself
        out.defer(lambda: store.rekey(changes), _nothing)

    def _send_marker(self, out: Outbox, user: User, target: str) -> None:
        key = self._marker_key(user, target)
        if user.account is not None and self.store is not None:
            ms = self.store.read_marker(casefold(user.account), key)
        else:
            ms = user.markers.get(key)
        stamp = "timestamp=" + iso_time(ms) if ms is not None else "*"
        line = Line("MARKREAD", (_middle(target), stamp), source=self.config.server_name)
        out.send(user, line.encode())

    def _marker_target(self, user: User, target: str, key: str) -> bool:
        """Whether `user` has a conversation `target` (its history key `key`) to mark as read:
        a channel they are in, or a private conversation with stored history (without history,
        a nick that is online)."""
        if target.startswith("#"):
            return key in user.channels
        if not p.is_valid_nick(target, self.config.nicklen):
            return False
        if self.store is None:
            return self.find_user(target) is not None
        return self.store.has_messages(key)

    def _markread(self, user: User, line: Line, now: float, out: Outbox) -> None:
        target = line.params[0]
        if len(line.params) == 1:
            self._send_marker(out, user, target)
            return
        value = line.params[1]
        ms = parse_iso_time(value.partition("=")[2]) if value.startswith("timestamp=") else None
        if ms is None:
            self._fail(out, user, "MARKREAD", "INVALID_PARAMS", target, "Invalid timestamp")
            return
        key = self._marker_key(user, target)
        if not self._marker_target(user, target, key):
            # no rows for made-up targets: only a conversation the user has can be marked
            text = "No such conversation to mark"
            self._fail(out, user, "MARKREAD", "INVALID_PARAMS", target, text)
            return
        if user.account is not None and self.store is not None:
            self.store.set_read_marker(casefold(user.account), key, ms, MAX_MARKERS)
            account = casefold(user.account)
            sessions = [
                other
                for other in self.clients
                if other.account is not None
                and casefold(other.account) == account
                and "draft/read-marker" in other.caps
            ]
        else:
            if key not in user.markers and len(user.markers) >= MAX_MARKERS:
                del user.markers[next(iter(user.markers))]  # bounded: the oldest goes
            user.markers[key] = max(ms, user.markers.get(key, 0))
            sessions = [user]
        for session in sessions or [user]:  # every client of the account learns of it
            self._send_marker(out, session, target)

    def _setname(self, user: User, line: Line, now: float, out: Outbox) -> None:
        realname = line.params[0]
        if not realname or len(realname.encode()) > self.config.namelen:
            self._fail(out, user, "SETNAME", "INVALID_REALNAME", "That real name is not allowed")
            return
        user.realname = realname
        data = self._from(user, "SETNAME", realname)
        for other in [user, *self._neighbours(user)]:
            if "setname" in other.caps:
                out.send(other, data)

    # -- server bans (K-lines) --------------------------------------------------------------------

    def _kline_for(self, user: User, now: float) -> str | None:
        """The reason `user` is banned from the server, if a K-line matches it."""
        target = f"{user.username or '*'}@{user.host}"
        for mask, (reason, _, expires) in list(self.klines.items()):
            if expires and expires <= now:
                del self.klines[mask]
                if self.store is not None:
                    self.store.remove_kline(mask)
                continue
            if p.mask_matches(mask, target) or p.mask_matches(
                mask, f"{user.username[1:]}@{user.host}"
            ):
                return reason
        return None

    def banned_host(self, host: str, now: float | None = None) -> str | None:
        """Why a connection from `host` is refused before it says anything (a K-line on *@host)."""
        for mask, (reason, _, expires) in self.klines.items():
            user_part, _, host_part = mask.partition("@")
            live = not expires or now is None or expires > now
            if live and user_part.strip("*~") == "" and p.mask_matches(host_part, host):
                return f"K-lined: {reason}"
        return None

    def _kline(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """KLINE [seconds] user@host :reason (operators). Without parameters: the list."""
        if "o" not in user.modes:
            self._reply(
                out, user, p.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator"
            )
            return
        params = list(line.params)
        server = self.config.server_name
        if not params:
            for mask, (reason, setter, expires) in sorted(self.klines.items()):
                until = "permanent" if not expires else f"{int(expires - now)}s left"
                text = f"K-line {mask} ({until}) by {setter}: {reason}"
                out.send(
                    user, Line("NOTICE", (user.nick, text), source=server).encode(trailing=True)
                )
            out.send(
                user,
                Line("NOTICE", (user.nick, "End of K-lines"), source=server).encode(trailing=True),
            )
            return
        duration = 0.0
        seconds = p.parse_uint(params[0], MAX_KLINE_SECONDS)
        if seconds is not None and len(params) > 1:
            params.pop(0)
            duration = float(seconds)
        mask = params[0]
        if "!" in mask:
            mask = mask.split("!", 1)[1]
        if "@" not in mask:
            mask = f"*@{mask}"
        if not mask.partition("@")[2].strip("*?.:"):
            # a host part of wildcards alone bans every address (user names all start with ~)
            self._fail(out, user, "KLINE", "INVALID_MASK", mask, "That mask would ban everyone")
            return
        reason = params[1] if len(params) > 1 and params[1] else "No reason given"
        expires = now + duration if duration else 0.0
        self.klines[mask] = (reason, user.nick, expires)
        if self.store is not None:
            self.store.add_kline(mask, reason, user.nick, expires)
        text = f"K-line added for {mask}" + (f" for {int(duration)}s" if duration else "")
        out.send(user, Line("NOTICE", (user.nick, text), source=server).encode(trailing=True))
        # everyone it bans leaves at once (disconnect_all): a ban on a crowd's address must not
        # tell each who stays of each departure on its own, under the lock
        banned = [
            other
            for other in self.clients
            if other.registered and other is not user and self._kline_for(other, now) is not None
        ]
        error = Line("ERROR", (f"K-lined: {reason}",)).encode(trailing=True)
        for other in banned:
            out.send(other, error)
        self.disconnect_all(banned, [f"K-lined: {reason}"] * len(banned), now, out)

    def _unkline(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if "o" not in user.modes:
            self._reply(
                out, user, p.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator"
            )
            return
        mask = line.params[0]
        if "@" not in mask:
            mask = f"*@{mask}"
        server = self.config.server_name
        if self.klines.pop(mask, None) is None:
            text = f"No K-line for {mask}"
        else:
            text = f"K-line for {mask} removed"
            if self.store is not None:
                self.store.remove_kline(mask)
        out.send(user, Line("NOTICE", (user.nick, text), source=server).encode(trailing=True))


def _met(user: User, party: str) -> None:
    """Remember that the guest `user` talked with `party` (see State._adopt)."""
    if user.account is None:
        if user.peers is None:
            user.peers = set()
        if len(user.peers) < MAX_PEERS:
            user.peers.add(party)


def _read_history(
    store: Store, key: str, sub: str, texts: tuple[str, ...], limit: int
) -> list[Message] | None:
    """The rows a CHATHISTORY subcommand asks for (`texts`: its message references, `*`,
    `msgid=` or `timestamp=`, checked), or None when a msgid is not one of `key`'s. Reads the
    store only (run outside the state lock): at most two range scans and two msgid lookups."""
    # a reference as an upper bound: a timestamp sorts before its millisecond's messages
    refs: list[Position | None] = []
    exact: list[bool] = []
    for text in texts:
        kind, _, value = text.partition("=")
        if text == "*":
            refs.append(None)
        elif kind == "msgid":
            found = store.locate(value)
            if found is None or found[0] != key:
                return None
            refs.append(found[1])
        else:
            ms = parse_iso_time(value)
            assert ms is not None
            refs.append((ms, 0))
        exact.append(kind == "msgid")

    def lower(i: int) -> Position:  # as a lower bound, after its millisecond's messages
        ref = refs[i]
        assert ref is not None
        return ref if exact[i] else (ref[0], LAST)

    def upper(i: int) -> Position:
        ref = refs[i]
        assert ref is not None
        return ref

    if sub == "LATEST":
        return store.query(key, limit, after=lower(0) if refs[0] is not None else None)
    if sub == "BEFORE":
        return store.query(key, limit, before=upper(0))
    if sub == "AFTER":
        return store.query(key, limit, after=lower(0), newest=False)
    if sub == "AROUND":
        older = store.query(key, limit // 2, before=upper(0))
        at = upper(0)  # the reference itself, or its millisecond, and on
        return older + store.query(key, limit - len(older), after=(at[0], at[1] - 1), newest=False)
    # BETWEEN, either way round
    if upper(0) <= upper(1):
        return store.query(key, limit, after=lower(0), before=upper(1), newest=False)
    return store.query(key, limit, after=lower(1), before=upper(0))


def _stored_size(message: Message) -> int:
    """About what a message takes in the history store: its text, sender, target and tags, its
    key once in the row and twice in the indexes, and the row's bookkeeping (ids, time)."""
    size = 48 + len(message.msgid) + 3 * len(message.key.encode("utf-8", "replace"))
    for text in (message.target, message.source, message.account, message.command, message.text):
        if text:
            size += len(text.encode("utf-8", "replace"))
    if message.tags:
        size += sum(len(k) + len(v) + 6 for k, v in message.tags.items())
    return size


def _nothing(result: object, now: float, out: Outbox) -> None:
    pass


def _compress(changes: list[str]) -> str:
    """["+o", "+v", "-b"] -> "+ov-b"."""
    text = ""
    sign = ""
    for change in changes:
        if change[0] != sign:
            sign = change[0]
            text += sign
        text += change[1]
    return text
