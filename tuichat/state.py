"""The server's shared state: users, channels, members, modes.

Pure: no sockets, no threads, no clock of its own. `State.handle` takes a parsed `Line` from a user
and the current time, updates the state and records in an `Outbox` what to deliver to whom and which
connections to close. The server calls it under its state lock and does the I/O after releasing it.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from tuichat import __version__
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold

CHANNEL_MODES = "imnst"  # flags without a parameter
CHANNEL_MODES_ALL = "biklmnostv"
USER_MODES = "io"
STATUS_PREFIX = {"o": "@", "v": "+"}


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


class Sink(Protocol):
    """Where a user's outgoing bytes go (the server's connection; a list in tests)."""

    def deliver(self, data: bytes) -> None:
        """Queue `data` for the user."""

    def close(self, error: str | None) -> None:
        """Send `ERROR :error` after what is queued, then end the connection."""


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
        "members",
        "users",
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
        self.members: dict[User, set[str]] = {}
        self.users: tuple[User, ...] = ()

    def add(self, user: User, modes: set[str]) -> None:
        self.members[user] = modes
        self.users = tuple(self.members)

    def remove(self, user: User) -> None:
        del self.members[user]
        self.users = tuple(self.members)

    def prefix_of(self, user: User) -> str:
        modes = self.members.get(user, ())
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


class Outbox:
    """What handling lines produced: data for users, in order, and users to disconnect.

    Consecutive data for the same targets is joined, so that each member's share of a batch of
    lines is appended to its buffer once.
    """

    __slots__ = ("sends", "closes")

    def __init__(self) -> None:
        self.sends: list[tuple[Targets, bytearray, User | None]] = []
        self.closes: list[tuple[User, str]] = []

    def send(self, user: User, data: bytes) -> None:
        sends = self.sends
        if sends:
            targets, blob, skip = sends[-1]
            if skip is None and len(targets) == 1 and targets[0] is user:
                blob += data
                return
        sends.append(((user,), bytearray(data), None))

    def broadcast(self, users: Targets, data: bytes, skip: User | None = None) -> None:
        """`data` for each of `users` but `skip`."""
        sends = self.sends
        if sends:
            targets, blob, last_skip = sends[-1]
            if targets is users and last_skip is skip:
                blob += data
                return
        sends.append((users, bytearray(data), skip))

    def close(self, user: User, reason: str) -> None:
        self.closes.append((user, reason))

    def lines_for(self, user: User) -> list[str]:
        """The lines that `user` would receive (for tests)."""
        data = b"".join(
            bytes(blob)
            for targets, blob, skip in self.sends
            if user in targets and user is not skip
        )
        return [raw.decode() for raw in data.split(b"\r\n") if raw]


@dataclass(frozen=True, slots=True)
class WhowasEntry:
    nick: str
    username: str
    host: str
    realname: str
    when: float


def _middle(param: str) -> str:
    """`param` as a middle parameter: its first word, without leading colons, or `*`."""
    if param and " " not in param and not param.startswith(":"):
        return param
    return param.lstrip(":").split(" ", 1)[0].lstrip(":") or "*"


def _truncate(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


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
_PRE_REGISTRATION = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"})
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
}


class State:
    """All users and channels of one server."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.capabilities: dict[str, str | None] = {}
        self.clients: set[User] = set()
        self.nicks: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.whowas: deque[WhowasEntry] = deque(maxlen=self.config.whowas)
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

    def _from(self, user: User, command: str, *params: str, trailing: bool = True) -> bytes:
        return Line(command, params, source=user.prefix).encode(trailing=trailing)

    def _build_isupport(self) -> list[str]:
        c = self.config
        tokens = [
            f"AWAYLEN={c.awaylen}",
            f"CASEMAPPING={p.CASEMAPPING}",
            f"CHANLIMIT=#:{c.chanlimit}",
            "CHANMODES=b,k,l,imnst",
            f"CHANNELLEN={c.channellen}",
            "CHANTYPES=#",
            "HOSTLEN=64",
            f"KICKLEN={c.kicklen}",
            f"MAXLIST=b:{c.maxbans}",
            f"MAXTARGETS={c.maxtargets}",
            f"MODES={c.modes}",
            f"NETWORK={c.network}",
            f"NICKLEN={c.nicklen}",
            "PREFIX=(ov)@+",
            f"TARGMAX=PRIVMSG:{c.maxtargets},NOTICE:{c.maxtargets},JOIN:,PART:,KICK:1,WHOIS:1",
            f"TOPICLEN={c.topiclen}",
            f"USERLEN={c.userlen}",
        ]
        return tokens

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

    def input_too_long(self, user: User, out: Outbox) -> None:
        """`user` sent a line over the length limits; it was dropped."""
        self._reply(out, user, p.ERR_INPUTTOOLONG, "Input line was too long")

    def disconnect(self, user: User, reason: str, now: float, out: Outbox) -> None:
        """Remove `user` (idempotent): QUIT to those who share a channel, ERROR to the user."""
        if user.gone:
            return
        user.gone = True
        self.clients.discard(user)
        if user.registered:
            self.whowas.append(WhowasEntry(user.nick, user.username, user.host, user.realname, now))
            data = self._from(user, "QUIT", reason)
            for other in self._neighbours(user):
                out.send(other, data)
            for chan in list(user.channels.values()):
                self._leave(chan, user)
        if user.nick and self.nicks.get(casefold(user.nick)) is user:
            del self.nicks[casefold(user.nick)]
        out.close(user, f"Closing link ({reason})")

    def tick(self, now: float, out: Outbox) -> None:
        """Periodic work: ping idle users, drop the silent and the never-registered."""
        c = self.config
        for user in list(self.clients):
            if not user.registered:
                if now - user.connected_at >= c.registration_timeout:
                    self.disconnect(user, "Registration timed out", now, out)
            elif user.ping_sent is None:
                if now - user.last_active >= c.ping_interval:
                    user.ping_sent = now
                    out.send(user, Line("PING", (c.server_name,)).encode(trailing=True))
            elif now - user.ping_sent >= c.ping_timeout:
                idle = int(now - user.last_active)
                self.disconnect(user, f"Ping timeout: {idle} seconds", now, out)

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
            del self.channels[key]

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
            caps = " ".join(
                f"{name}={value}" if value else name for name, value in self.capabilities.items()
            )
            out.send(user, Line("CAP", (nick, "LS", caps), source=server).encode(trailing=True))
        elif sub == "LIST":
            caps = " ".join(sorted(user.caps))
            out.send(user, Line("CAP", (nick, "LIST", caps), source=server).encode(trailing=True))
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
        user.realname = line.params[3]
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
            out, user, p.RPL_MYINFO, c.server_name, version, USER_MODES, CHANNEL_MODES_ALL, "bklov"
        )
        self._send_isupport(out, user)
        self._send_lusers(out, user)
        self._send_motd(out, user)

    # -- nicks ------------------------------------------------------------------------------------

    def _nick(self, user: User, line: Line, now: float, out: Outbox) -> None:
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
            else:
                chan = existing
                error = self._join_error(chan, user, keys[i] if i < len(keys) else None)
                if error is not None:
                    self._reply(out, user, error[0], chan.name, error[1])
                    continue
            user.invites.discard(key)
            chan.add(user, modes)
            user.channels[key] = chan
            out.broadcast(chan.users, self._from(user, "JOIN", chan.name, trailing=False))
            if chan.topic:
                self._send_topic(out, user, chan)
            self._send_names(out, user, chan)

    def _join_error(self, chan: Channel, user: User, key: str | None) -> tuple[str, str] | None:
        invited = casefold(chan.name) in user.invites
        if chan.key is not None and key != chan.key:
            return p.ERR_BADCHANNELKEY, "Cannot join channel (+k)"
        if chan.limit is not None and len(chan.members) >= chan.limit:
            return p.ERR_CHANNELISFULL, "Cannot join channel (+l)"
        if "i" in chan.modes and not invited:
            return p.ERR_INVITEONLYCHAN, "Cannot join channel (+i)"
        if not invited and self._banned(chan, user):
            return p.ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"
        return None

    def _banned(self, chan: Channel, user: User) -> bool:
        return any(p.mask_matches(mask, user.prefix) for mask, _, _ in chan.bans)

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

    def _send_names(self, out: Outbox, user: User, chan: Channel) -> None:
        symbol = "@" if "s" in chan.modes else "="
        names = sorted(
            (chan.prefix_of(member) + member.nick for member in self._visible_members(chan, user)),
            key=lambda name: casefold(name.lstrip("@+")),
        )
        head = len(f":{self.config.server_name} 353 {user.nick} {symbol} {chan.name} :")
        for chunk in _chunks(names, head):
            self._reply(out, user, p.RPL_NAMREPLY, symbol, chan.name, chunk)
        self._reply(out, user, p.RPL_ENDOFNAMES, chan.name, "End of /NAMES list")

    def _names(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.RPL_ENDOFNAMES, "*", "End of /NAMES list")
            return
        for name in line.params[0].split(","):
            chan = self.channels.get(casefold(name))
            if chan is not None and self._visible(chan, user):
                self._send_names(out, user, chan)
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
        target.invites.add(casefold(chan.name))
        self._reply(out, user, p.RPL_INVITING, target.nick, chan.name)
        out.send(target, self._from(user, "INVITE", target.nick, chan.name))
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
                data = f":{user.prefix} {command} {chan.name} :{text}\r\n".encode(
                    "utf-8", "replace"
                )
                out.broadcast(chan.users, data, user)
            else:
                other = self.find_user(target)
                if other is None:
                    if not notice:
                        self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
                    continue
                data = f":{user.prefix} {command} {other.nick} :{text}\r\n".encode(
                    "utf-8", "replace"
                )
                out.send(other, data)
                if other.away is not None and not notice:
                    self._reply(out, user, p.RPL_AWAY, other.nick, other.away)

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
        return None

    def _away(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params and line.params[0]:
            user.away = _truncate(line.params[0], self.config.awaylen)
            self._reply(out, user, p.RPL_NOWAWAY, "You have been marked as being away")
        else:
            user.away = None
            self._reply(out, user, p.RPL_UNAWAY, "You are no longer marked as being away")

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
        listed = False
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
            if ch in "bkovl" and not (ch == "l" and sign == "-"):
                if ch == "b" and not args:
                    if not listed:
                        listed = True
                        for mask, setter, when in chan.bans:
                            self._reply(
                                out, user, p.RPL_BANLIST, chan.name, mask, setter, str(when)
                            )
                        self._reply(
                            out, user, p.RPL_ENDOFBANLIST, chan.name, "End of channel ban list"
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
                if ch == "b":
                    mask = p.normalize_mask(arg)
                    present = [ban for ban in chan.bans if casefold(ban[0]) == casefold(mask)]
                    if sign == "+" and not present and len(chan.bans) >= self.config.maxbans:
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
                        chan.bans.append((mask, user.prefix, int(now)))
                    elif sign == "-" and present:
                        chan.bans.remove(present[0])
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
                        if not arg or " " in arg or "," in arg:
                            continue
                        chan.key = arg
                        changes.append("+k")
                        change_args.append(arg)
                    elif chan.key is not None:
                        chan.key = None
                        changes.append("-k")
                        change_args.append("*")
                elif ch == "l":
                    try:
                        limit = int(arg)
                    except ValueError:
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

    # -- queries ----------------------------------------------------------------------------------

    def _who(self, user: User, line: Line, now: float, out: Outbox) -> None:
        mask = line.params[0] if line.params else "*"
        opers_only = len(line.params) > 1 and "o" in line.params[1]
        server = self.config.server_name
        rows: list[tuple[User, str, str]] = []
        if mask.startswith("#"):
            chan = self.channels.get(casefold(mask))
            if chan is not None and self._visible(chan, user):
                rows = [
                    (member, chan.name, chan.prefix_of(member))
                    for member in self._visible_members(chan, user)
                ]
        else:
            pattern = "*" if mask in ("0", "") else mask
            shared = set(self._neighbours(user)) | {user}
            for other in self.nicks.values():
                if not other.registered:
                    continue
                if "i" in other.modes and other not in shared:
                    continue
                fields = (other.nick, other.username, other.host, other.realname, server)
                if any(p.mask_matches(pattern, value) for value in fields):
                    seen = [c.name for c in other.channels.values() if self._visible(c, user)]
                    rows.append((other, seen[0] if seen else "*", ""))
        for other, chan_name, status in rows:
            if opers_only and "o" not in other.modes:
                continue
            flags = (
                ("G" if other.away is not None else "H")
                + ("*" if "o" in other.modes else "")
                + status
            )
            self._reply(
                out,
                user,
                p.RPL_WHOREPLY,
                chan_name,
                other.username,
                other.host,
                server,
                other.nick,
                flags,
                f"0 {other.realname}",
            )
        self._reply(out, user, p.RPL_ENDOFWHO, mask, "End of WHO list")

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
            chan.prefix_of(other) + chan.name
            for chan in other.channels.values()
            if self._visible(chan, user)
        ]
        head = len(f":{c.server_name} 319 {user.nick} {other.nick} :")
        for chunk in _chunks(chans, head):
            self._reply(out, user, p.RPL_WHOISCHANNELS, other.nick, chunk)
        self._reply(out, user, p.RPL_WHOISSERVER, other.nick, c.server_name, f"{c.network} server")
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
            try:
                count = max(0, int(line.params[1]))
            except ValueError:
                count = 0
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

    def _oper(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name, password = line.params[0], line.params[1]
        expected = self.config.opers.get(name)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            self._reply(out, user, p.ERR_PASSWDMISMATCH, "Password incorrect")
            return
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
