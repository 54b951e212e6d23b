"""State unit tests, operators: OPER and KILL."""

from __future__ import annotations

import pytest

from tests.unit.helpers import Net, check_invariants, commands, numeric, only, silent
from tuichat.net import protocol as p
from tuichat.net.protocol import Line
from tuichat.state import User

# OPER / KILL --------------------------------------------------------------------------------------


def test_oper(opnet: Net) -> None:
    alice = opnet.register("alice")
    out = opnet.send(alice, "OPER admin hunter2")
    assert commands(out, alice) == [p.RPL_YOUREOPER, "MODE"]
    assert out.lines_for(alice)[1] == f":{alice.prefix} MODE alice :+o"
    assert "o" in alice.modes
    numeric(opnet.send(alice, "MODE alice"), alice, p.RPL_UMODEIS, "+o")
    numeric(opnet.send(alice, "LUSERS"), alice, p.RPL_LUSEROP, "1")
    # again: no second MODE
    assert commands(opnet.send(alice, "OPER admin hunter2"), alice) == [p.RPL_YOUREOPER]
    # and dropping it
    assert only(opnet.send(alice, "MODE alice -o"), alice, "MODE").params == ("alice", "-o")
    assert "o" not in alice.modes


@pytest.mark.parametrize("raw", ["OPER admin wrong", "OPER nobody hunter2", "OPER admin HUNTER2"])
def test_oper_wrong_gets_464(opnet: Net, raw: str) -> None:
    alice = opnet.register("alice")
    out = opnet.send(alice, raw)
    assert commands(out, alice) == [p.ERR_PASSWDMISMATCH]
    assert "o" not in alice.modes
    assert out.closes == []


def test_oper_missing_params_gets_461(opnet: Net) -> None:
    alice = opnet.register("alice")
    numeric(opnet.send(alice, "OPER admin"), alice, p.ERR_NEEDMOREPARAMS, "OPER")


def test_kill_by_non_oper_gets_481(net: Net, alice: User, bob: User) -> None:
    out = net.send(alice, "KILL bob :bye")
    numeric(out, alice, p.ERR_NOPRIVILEGES)
    silent(out, bob)
    assert out.closes == []
    assert not bob.gone


def test_kill(opnet: Net) -> None:
    alice, bob, carol, dave = (opnet.register(n) for n in ("alice", "bob", "carol", "dave"))
    opnet.send(alice, "OPER admin hunter2")
    opnet.channel("#a", bob, carol)
    prefix = bob.prefix
    out = opnet.send(alice, "KILL Bob :spamming")
    assert only(out, bob, "KILL") == Line("KILL", ("bob", "spamming"), source=alice.prefix)
    assert out.closes == [(bob, "Closing link (Killed (alice (spamming)))")]
    assert out.lines_for(carol) == [f":{prefix} QUIT :Killed (alice (spamming))"]
    silent(out, alice, dave)
    assert bob.gone
    assert opnet.state.find_user("bob") is None
    assert set(opnet.state.channels["#a"].members) == {carol}
    check_invariants(opnet.state)


def test_kill_unknown_nick_gets_401(opnet: Net) -> None:
    alice = opnet.register("alice")
    opnet.send(alice, "OPER admin hunter2")
    numeric(opnet.send(alice, "KILL nobody :x"), alice, p.ERR_NOSUCHNICK, "nobody")
    numeric(opnet.send(alice, "KILL nobody"), alice, p.ERR_NEEDMOREPARAMS, "KILL")
