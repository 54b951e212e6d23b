"""The state harness for unit tests: a `Net` drives one `State` the way the server does, each user's
bytes land in a `ListSink`, and small readers pick the lines a user got out of an `Outbox`.
`HistoryNet` does the same over a `Store` on ":memory:" (history, accounts), and `take` hands over
what a user's sink got so far.

No sockets, no threads, no clock: every call gets its time from the test.
"""

from __future__ import annotations

import base64

from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold, parse
from tuichat.state import Config, Outbox, State, User
from tuichat.store import Store, hash_password, new_salt

T0 = 1_000_000.0
HOST = "127.0.0.1"
SERVER = "tuichat"
PASSWORD = "correct-horse-battery"


class ListSink:
    """A connection stand-in: keeps the bytes the server would write and why it closed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: list[str | None] = []

    def deliver(self, data: bytes) -> None:
        self.data += data

    def close(self, error: str | None) -> None:
        self.closed.append(error)

    @property
    def lines(self) -> list[str]:
        return [raw.decode() for raw in bytes(self.data).split(b"\r\n") if raw]


class Net:
    """One `State` and helpers to drive it the way the server does."""

    def __init__(self, config: Config | None = None) -> None:
        self.state = State(config or Config(created=0.0))
        self.now = T0

    def connect(self, host: str = HOST, now: float | None = None) -> User:
        user = User(ListSink(), host, self.now if now is None else now)
        self.state.connect(user)
        return user

    def send(self, user: User, raw: str, now: float | None = None) -> Outbox:
        """Handle one raw line from `user` with a fresh Outbox, deliver it, return it."""
        out = Outbox()
        self.state.handle(user, parse(raw), self.now if now is None else now, out)
        dispatch(out)
        return out

    def register(self, nick: str, host: str = HOST, now: float | None = None) -> User:
        user = self.connect(host, now)
        self.send(user, f"NICK {nick}", now)
        self.send(user, f"USER {nick} 0 * :{nick.title()} Example", now)
        assert user.registered, sink_of(user).lines
        return user

    def tick(self, now: float) -> Outbox:
        out = Outbox()
        self.state.tick(now, out)
        dispatch(out)
        return out

    def disconnect(self, user: User, reason: str = "Connection reset") -> Outbox:
        out = Outbox()
        self.state.disconnect(user, reason, self.now, out)
        dispatch(out)
        return out

    def channel(self, name: str, op: User, *members: User) -> None:
        """`op` creates `name` (and gets @), then `members` join."""
        self.send(op, f"JOIN {name}")
        for member in members:
            self.send(member, f"JOIN {name}")
        chan = self.state.channels[casefold(name)]
        assert set(chan.members) == {op, *members}


def dispatch(out: Outbox, now: float = 0.0) -> None:
    """What the server does with an Outbox: deliver, then run the deferred work (password
    hashing) and deliver what it led to."""
    out.deliver()
    while out.deferred:
        jobs, out.deferred = out.deferred, []
        for job, then in jobs:
            follow = Outbox()
            then(job(), now, follow)
            dispatch(follow, now)


def sink_of(user: User) -> ListSink:
    assert isinstance(user.sink, ListSink)
    return user.sink


def lines(out: Outbox, user: User) -> list[Line]:
    return [parse(raw) for raw in out.lines_for(user)]


def commands(out: Outbox, user: User) -> list[str]:
    return [line.command for line in lines(out, user)]


def all_of(out: Outbox, user: User, command: str) -> list[Line]:
    return [line for line in lines(out, user) if line.command == command]


def only(out: Outbox, user: User, command: str) -> Line:
    """The single `command` line that `user` got (fails if there are none or several)."""
    found = all_of(out, user, command)
    assert len(found) == 1, out.lines_for(user)
    return found[0]


def numeric(out: Outbox, user: User, code: str, *params: str) -> Line:
    """The single `code` reply to `user`, from the server, addressed to the user's nick."""
    line = only(out, user, code)
    assert line.source == SERVER
    assert line.params[0] == (user.nick or "*")
    if params:
        assert line.params[1 : 1 + len(params)] == params, line
    return line


def silent(out: Outbox, *users: User) -> None:
    for user in users:
        assert out.lines_for(user) == [], (user, out.lines_for(user))


def names_of(out: Outbox, user: User) -> list[str]:
    """Every name in the 353 replies that `user` got."""
    return [name for line in all_of(out, user, p.RPL_NAMREPLY) for name in line.params[3].split()]


def isupport(out: Outbox, user: User) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for line in all_of(out, user, p.RPL_ISUPPORT):
        for token in line.params[1:-1]:
            key, _, value = token.partition("=")
            tokens[key] = value
    return tokens


def check_invariants(state: State) -> None:
    """Cross-references that every handler must keep."""
    for key, user in state.nicks.items():
        assert key == casefold(user.nick)
        assert not user.gone
    for key, chan in state.channels.items():
        assert key == casefold(chan.name)
        assert chan.members, chan.name
        assert chan.users == tuple(chan.members)
        for member in chan.members:
            assert member.channels[key] is chan
            assert member.registered and not member.gone
            assert state.nicks[casefold(member.nick)] is member
    for user in state.clients:
        assert not user.gone
        for key, chan in user.channels.items():
            assert state.channels[key] is chan
            assert user in chan.members


# with a store: history and accounts ---------------------------------------------------------------


class HistoryNet(Net):
    """A `Net` whose state keeps history and accounts in a `Store`; deferred work (password
    hashing) runs with the clock of the line that asked for it."""

    def __init__(self, config: Config | None = None, store: Store | None = None) -> None:
        self.store = store if store is not None else Store(":memory:")
        self.state = State(config or Config(created=0.0), self.store)
        self.now = T0

    def send(self, user: User, raw: str, now: float | None = None) -> Outbox:
        when = self.now if now is None else now
        out = Outbox()
        self.state.handle(user, parse(raw), when, out)
        dispatch(out, when)
        return out

    def tick(self, now: float) -> Outbox:
        out = Outbox()
        self.state.tick(now, out)
        dispatch(out, now)
        return out

    def register(self, nick: str, host: str = HOST, now: float | None = None) -> User:
        """A registered user without capabilities; its welcome is taken."""
        user = super().register(nick, host, now)
        take(user)
        return user

    def cap_user(self, nick: str, *caps: str) -> User:
        """A registered user that negotiated `caps` (CAP LS 302 first); its welcome is taken."""
        user = self.connect()
        self.send(user, "CAP LS 302")
        if caps:
            self.send(user, "CAP REQ :" + " ".join(caps))
        self.send(user, f"NICK {nick}")
        self.send(user, f"USER {nick} 0 * :{nick.title()} Example")
        self.send(user, "CAP END")
        assert user.registered, sink_of(user).lines
        assert set(caps) <= user.caps
        take(user)
        return user

    def say(self, user: User, target: str, text: str, at: float | None = None) -> None:
        self.send(user, f"PRIVMSG {target} :{text}", at)

    def account(self, name: str, password: str = PASSWORD) -> None:
        salt = new_salt()
        assert self.store.create_account(
            casefold(name), name, salt, hash_password(password, salt), 0
        )

    def login(self, nick: str, *caps: str, account: str | None = None) -> User:
        """A user that logs in with SASL PLAIN before registering."""
        user = self.connect()
        self.send(user, "CAP LS 302")
        self.send(user, "CAP REQ :" + " ".join(("sasl", *caps)))
        self.send(user, f"NICK {nick}")
        self.send(user, f"USER {nick} 0 * :{nick.title()} Example")
        self.send(user, "AUTHENTICATE PLAIN")
        self.send(user, "AUTHENTICATE " + plain(account or nick, PASSWORD))
        self.send(user, "CAP END")
        got = take(user)
        assert user.registered and user.account == (account or nick), got
        return user


def take(user: User) -> list[Line]:
    """Every line `user` got since the last take, parsed."""
    sink = sink_of(user)
    raw = bytes(sink.data).decode()
    sink.data.clear()
    return [parse(line) for line in raw.split("\r\n") if line]


def take_raw(user: User) -> list[str]:
    sink = sink_of(user)
    raw = bytes(sink.data).decode()
    sink.data.clear()
    return [line for line in raw.split("\r\n") if line]


def plain(account: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{account}\0{password}".encode()).decode()
