"""State unit tests, messages: PRIVMSG and NOTICE to channels and nicks, and AWAY."""

from __future__ import annotations

import pytest

from tests.unit.helpers import T0, Net, numeric, silent
from tuichat.net import protocol as p
from tuichat.state import Config, User

# PRIVMSG / NOTICE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["PRIVMSG", "NOTICE"])
def test_message_to_channel_reaches_others_not_sender(
    net: Net, alice: User, bob: User, carol: User, command: str
) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, f"{command} #A :hello there")
    assert out.lines_for(bob) == [f":{alice.prefix} {command} #a :hello there"]
    silent(out, alice, carol)


@pytest.mark.parametrize("command", ["PRIVMSG", "NOTICE"])
def test_message_to_nick(net: Net, alice: User, bob: User, carol: User, command: str) -> None:
    out = net.send(alice, f"{command} BOB :hi")
    assert out.lines_for(bob) == [f":{alice.prefix} {command} bob :hi"]
    silent(out, alice, carol)


def test_message_to_several_targets(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", carol)
    net.send(carol, "MODE #a -n")
    out = net.send(alice, "PRIVMSG #a,bob :hey")
    assert out.lines_for(carol) == [f":{alice.prefix} PRIVMSG #a :hey"]
    assert out.lines_for(bob) == [f":{alice.prefix} PRIVMSG bob :hey"]
    silent(out, alice)


def test_message_targets_are_deduplicated(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "PRIVMSG bob,BOB,#a,#A,bob :once")
    assert out.lines_for(bob) == [
        f":{alice.prefix} PRIVMSG bob :once",
        f":{alice.prefix} PRIVMSG #a :once",
    ]
    silent(out, alice)


def test_message_updates_idle_time(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "PRIVMSG bob :hi", now=T0 + 30)
    assert alice.last_message == T0 + 30


def test_privmsg_unknown_nick_gets_401(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PRIVMSG nobody :hi"), alice, p.ERR_NOSUCHNICK, "nobody")


def test_privmsg_unknown_channel_gets_403(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PRIVMSG #nowhere :hi"), alice, p.ERR_NOSUCHCHANNEL, "#nowhere")


def test_privmsg_from_outside_no_external_channel_gets_404(
    net: Net, alice: User, bob: User
) -> None:
    net.channel("#a", alice)
    out = net.send(bob, "PRIVMSG #a :knock")
    numeric(out, bob, p.ERR_CANNOTSENDTOCHAN, "#a")
    silent(out, alice)
    net.send(alice, "MODE #a -n")
    out = net.send(bob, "PRIVMSG #a :knock")
    assert out.lines_for(alice) == [f":{bob.prefix} PRIVMSG #a :knock"]
    silent(out, bob)


def test_privmsg_moderated_needs_voice(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", alice, bob, carol)
    net.send(alice, "MODE #a +m")
    out = net.send(bob, "PRIVMSG #a :hi")
    numeric(out, bob, p.ERR_CANNOTSENDTOCHAN, "#a")
    silent(out, alice, carol)
    net.send(alice, "MODE #a +v bob")
    out = net.send(bob, "PRIVMSG #a :hi")
    assert len(out.lines_for(carol)) == 1
    out = net.send(alice, "PRIVMSG #a :ops can talk")
    assert len(out.lines_for(carol)) == 1


def test_privmsg_banned_member_gets_404_unless_voiced(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    net.send(alice, "MODE #a +b bob!*@*")
    out = net.send(bob, "PRIVMSG #a :hi")
    numeric(out, bob, p.ERR_CANNOTSENDTOCHAN, "#a")
    silent(out, alice)
    net.send(alice, "MODE #a +v bob")
    assert len(net.send(bob, "PRIVMSG #a :hi").lines_for(alice)) == 1


def test_privmsg_too_many_targets_gets_407() -> None:
    net = Net(Config(created=0.0, maxtargets=2))
    alice, bob, carol, dave = (net.register(n) for n in ("alice", "bob", "carol", "dave"))
    out = net.send(alice, "PRIVMSG bob,carol,dave :hi")
    assert len(out.lines_for(bob)) == 1
    assert len(out.lines_for(carol)) == 1
    silent(out, dave)
    numeric(out, alice, p.ERR_TOOMANYTARGETS, "dave")


def test_privmsg_without_recipient_gets_411(net: Net, alice: User) -> None:
    line = numeric(net.send(alice, "PRIVMSG"), alice, p.ERR_NORECIPIENT)
    assert "PRIVMSG" in line.params[-1]


@pytest.mark.parametrize("raw", ["PRIVMSG bob", "PRIVMSG bob :"])
def test_privmsg_without_text_gets_412(net: Net, alice: User, bob: User, raw: str) -> None:
    out = net.send(alice, raw)
    numeric(out, alice, p.ERR_NOTEXTTOSEND)
    silent(out, bob)


def test_privmsg_to_away_user_gets_301(net: Net, alice: User, bob: User) -> None:
    net.send(bob, "AWAY :gone fishing")
    out = net.send(alice, "PRIVMSG bob :hi")
    numeric(out, alice, p.RPL_AWAY, "bob", "gone fishing")
    assert len(out.lines_for(bob)) == 1
    # channel messages do not trigger it
    net.channel("#a", alice, bob)
    assert net.send(alice, "PRIVMSG #a :hi").lines_for(alice) == []


@pytest.mark.parametrize(
    "raw",
    [
        "NOTICE",
        "NOTICE bob",
        "NOTICE bob :",
        "NOTICE nobody :hi",
        "NOTICE #nowhere :hi",
        "NOTICE #closed :hi",
        "NOTICE #moderated :hi",
        "NOTICE #banned :hi",
        "NOTICE bob,carol,dave,erin,frank :hi",
        "NOTICE away :hi",
    ],
)
def test_notice_never_gets_error_replies(raw: str) -> None:
    net = Net(Config(created=0.0, maxtargets=4))
    alice, op = net.register("alice"), net.register("op")
    for nick in ("bob", "carol", "dave", "erin", "frank"):
        net.register(nick)
    net.send(net.register("away"), "AWAY :not here")
    net.channel("#closed", op)
    net.channel("#moderated", op, alice)
    net.send(op, "MODE #moderated +m")
    net.channel("#banned", op, alice)
    net.send(op, "MODE #banned +b alice")
    out = net.send(alice, raw)
    assert out.lines_for(alice) == []
    silent(out, op)


# AWAY ---------------------------------------------------------------------------------------------


def test_away_and_back(net: Net, alice: User, bob: User) -> None:
    out = net.send(alice, "AWAY :out for lunch")
    numeric(out, alice, p.RPL_NOWAWAY)
    assert alice.away == "out for lunch"
    silent(out, bob)
    out = net.send(bob, "USERHOST alice")
    numeric(out, bob, p.RPL_USERHOST, "alice=-~alice@127.0.0.1")
    numeric(net.send(alice, "AWAY"), alice, p.RPL_UNAWAY)
    assert alice.away is None
    net.send(alice, "AWAY :again")
    numeric(net.send(alice, "AWAY :"), alice, p.RPL_UNAWAY)
    assert alice.away is None


def test_away_message_is_truncated_to_awaylen() -> None:
    net = Net(Config(created=0.0, awaylen=5))
    alice = net.register("alice")
    net.send(alice, "AWAY :abcdefgh")
    assert alice.away == "abcde"


# found in review ----------------------------------------------------------------------------------


def test_alone_in_a_channel_one_gets_no_copy_of_ones_message(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #c")
    silent(net.send(alice, "PRIVMSG #c :anyone?"), alice)
