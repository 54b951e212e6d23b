"""The declared command specs and the one place that checks them (`Core._dispatch_command`): the
table of what each command needs is the one the handlers had before, and dispatch refuses with
the right numeric in the right order."""

from __future__ import annotations

import pytest

from tuichat.net import protocol as p
from tuichat.net.protocol import parse
from tuichat.server import FREE_COMMANDS
from tuichat.state import Config, Outbox, State, User

T0 = 1_000_000.0

# command -> (fewest parameters, allowed before registration, operators only), as dispatch and the
# handlers enforced them before the specs existed (and the commands added since: INFO)
EXPECTED = {
    "CAP": (1, True, False),
    "PASS": (1, True, False),
    "NICK": (0, True, False),
    "USER": (4, True, False),
    "PING": (0, True, False),
    "PONG": (0, True, False),
    "QUIT": (0, True, False),
    "AUTHENTICATE": (1, True, False),
    "REGISTER": (3, True, False),
    "VERIFY": (2, True, False),
    "JOIN": (1, False, False),
    "PART": (1, False, False),
    "PRIVMSG": (0, False, False),
    "NOTICE": (0, False, False),
    "NAMES": (0, False, False),
    "TOPIC": (1, False, False),
    "LIST": (0, False, False),
    "WHO": (0, False, False),
    "WHOIS": (0, False, False),
    "WHOWAS": (0, False, False),
    "AWAY": (0, False, False),
    "INVITE": (2, False, False),
    "KICK": (2, False, False),
    "MODE": (1, False, False),
    "OPER": (2, False, False),
    "KILL": (2, False, True),
    "MOTD": (0, False, False),
    "LUSERS": (0, False, False),
    "VERSION": (0, False, False),
    "TIME": (0, False, False),
    "INFO": (0, False, False),
    "ISON": (1, False, False),
    "USERHOST": (1, False, False),
    "TAGMSG": (1, False, False),
    "CHATHISTORY": (1, False, False),
    "SETNAME": (1, False, False),
    "MARKREAD": (1, False, False),
    "KLINE": (0, False, True),
    "UNKLINE": (1, False, True),
}


class ListSink:
    def __init__(self) -> None:
        self.data = bytearray()

    def deliver(self, data: bytes) -> None:
        self.data += data

    def close(self, error: str | None) -> None:
        pass

    def hold(self) -> None:
        pass

    def release(self, data: bytes) -> None:
        self.data += data


def send(state: State, user: User, raw: str) -> list[str]:
    """Handle one line from `user`; the lines it gets back."""
    out = Outbox()
    state.handle(user, parse(raw), T0, out)
    return out.lines_for(user)


def connect(state: State) -> User:
    user = User(ListSink(), "127.0.0.1", T0)
    state.connect(user)
    return user


def register(state: State, nick: str) -> User:
    user = connect(state)
    send(state, user, f"NICK {nick}")
    send(state, user, f"USER {nick} 0 * :{nick}")
    assert user.registered
    return user


def numeric_of(lines: list[str]) -> str:
    assert lines, "no reply"
    return lines[0].split(" ")[1]


def test_the_specs_are_the_table_of_before() -> None:
    found = {
        name: (spec.min_params, spec.before_registration, spec.oper)
        for name, spec in State.commands.items()
    }
    assert found == EXPECTED
    assert all(spec.name == name for name, spec in State.commands.items())


def test_notice_shares_privmsgs_handler() -> None:
    assert State.commands["NOTICE"].handler is State.commands["PRIVMSG"].handler


def test_free_commands_come_from_the_specs() -> None:
    assert {"PING", "PONG", "CAP"} == FREE_COMMANDS
    assert {name for name, spec in State.commands.items() if spec.free} == FREE_COMMANDS


@pytest.mark.parametrize("command", sorted(name for name, e in EXPECTED.items() if e[0]))
def test_too_few_parameters_get_461(command: str) -> None:
    state = State(Config(created=0.0))
    alice = register(state, "alice")
    needed = EXPECTED[command][0]
    raw = " ".join([command, *["x"] * (needed - 1)])
    lines = send(state, alice, raw)
    assert lines == [f":tuichat 461 alice {command} :Not enough parameters"]


@pytest.mark.parametrize("command", sorted(name for name, e in EXPECTED.items() if not e[1]))
def test_commands_after_registration_get_451_before(command: str) -> None:
    state = State(Config(created=0.0))
    guest = connect(state)
    assert send(state, guest, f"{command} a b c d e") == [":tuichat 451 * :You have not registered"]


def test_unknown_commands_get_421_or_451() -> None:
    state = State(Config(created=0.0))
    assert send(state, connect(state), "FROB") == [":tuichat 451 * :You have not registered"]
    alice = register(state, "alice")
    assert send(state, alice, "FROB x") == [":tuichat 421 alice FROB :Unknown command"]


@pytest.mark.parametrize(
    ("raw", "numeric"),
    [
        ("KILL", p.ERR_NEEDMOREPARAMS),  # too few parameters first, as before
        ("KILL bob", p.ERR_NEEDMOREPARAMS),
        ("KILL bob :go", p.ERR_NOPRIVILEGES),
        ("KLINE", p.ERR_NOPRIVILEGES),  # KLINE alone lists the K-lines: no parameter needed
        ("KLINE *@example.org :go", p.ERR_NOPRIVILEGES),
        ("UNKLINE", p.ERR_NEEDMOREPARAMS),
        ("UNKLINE *@example.org", p.ERR_NOPRIVILEGES),
    ],
)
def test_operator_commands_from_a_non_operator(raw: str, numeric: str) -> None:
    state = State(Config(created=0.0))
    alice = register(state, "alice")
    bob = register(state, "bob")
    lines = send(state, alice, raw)
    assert numeric_of(lines) == numeric
    assert len(lines) == 1
    if numeric == p.ERR_NOPRIVILEGES:
        assert lines == [":tuichat 481 alice :Permission Denied- You're not an IRC operator"]
    assert bob.registered and not bob.gone


def test_operator_commands_reach_their_handler_for_an_operator() -> None:
    state = State(Config(created=0.0, opers={"root": "secret"}))
    alice = register(state, "alice")
    bob = register(state, "bob")
    assert numeric_of(send(state, alice, "OPER root secret")) == p.RPL_YOUREOPER
    assert send(state, alice, "KLINE") == [":tuichat NOTICE alice :End of K-lines"]
    send(state, alice, "KILL bob :go")
    assert bob.gone
