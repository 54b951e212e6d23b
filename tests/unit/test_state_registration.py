"""State unit tests, registration: the welcome burst, CAP negotiation, PASS, NICK and USER."""

from __future__ import annotations

import pytest

from tests.unit.helpers import (
    SERVER,
    Net,
    all_of,
    check_invariants,
    commands,
    isupport,
    lines,
    names_of,
    numeric,
    only,
    silent,
    sink_of,
)
from tuichat import __version__
from tuichat.net import protocol as p
from tuichat.state import Config, User

# registration -------------------------------------------------------------------------------------


def test_nick_then_user_registers_with_welcome_burst(net: Net) -> None:
    user = net.connect()
    assert lines(net.send(user, "NICK alice"), user) == []
    out = net.send(user, "USER alice 0 * :Alice Liddell")
    got = commands(out, user)
    assert got[:5] == ["001", "002", "003", "004", "005"]
    assert user.registered
    assert user.prefix == "alice!~alice@127.0.0.1"
    welcome = numeric(out, user, p.RPL_WELCOME)
    assert welcome.params[-1].endswith("alice!~alice@127.0.0.1")
    assert f"tuichat-{__version__}" in numeric(out, user, p.RPL_YOURHOST).params[-1]
    numeric(out, user, p.RPL_CREATED)
    myinfo = numeric(out, user, p.RPL_MYINFO)
    assert myinfo.params[1:3] == (SERVER, f"tuichat-{__version__}")
    assert net.state.find_user("ALICE") is user


def test_user_then_nick_registers(net: Net) -> None:
    user = net.connect()
    assert lines(net.send(user, "USER alice 0 * :Alice"), user) == []
    assert not user.registered
    out = net.send(user, "NICK alice")
    numeric(out, user, p.RPL_WELCOME)
    assert user.realname == "Alice"


def test_username_is_sanitised_and_marked_unidented(net: Net) -> None:
    user = net.connect()
    net.send(user, "NICK alice")
    net.send(user, "USER a*l!i@ce 0 * :Alice")
    assert user.username == "~alice"


def test_ipv6_host_does_not_start_with_colon(net: Net) -> None:
    user = net.register("alice", host="::1")
    assert user.prefix == "alice!~alice@0::1"


def test_isupport_advertises_limits_from_config() -> None:
    config = Config(
        created=0.0,
        network="ExampleNet",
        nicklen=9,
        channellen=32,
        topiclen=300,
        kicklen=180,
        awaylen=150,
        maxtargets=3,
    )
    net = Net(config)
    user = net.connect()
    net.send(user, "NICK alice")
    out = net.send(user, "USER alice 0 * :Alice")
    tokens = isupport(out, user)
    assert tokens["CASEMAPPING"] == "rfc1459"
    assert tokens["CHANTYPES"] == "#"
    assert tokens["CHANMODES"] == "bq,k,l,imnst"
    assert tokens["PREFIX"] == "(ov)@+"
    assert tokens["NICKLEN"] == "9"
    assert tokens["CHANNELLEN"] == "32"
    assert tokens["TOPICLEN"] == "300"
    assert tokens["KICKLEN"] == "180"
    assert tokens["AWAYLEN"] == "150"
    assert tokens["NETWORK"] == "ExampleNet"
    assert tokens["MAXTARGETS"] == "3"
    for line in all_of(out, user, p.RPL_ISUPPORT):
        assert line.params[-1] == "are supported by this server"
        assert len(line.params) <= 15  # client + at most 13 tokens + text


def test_registration_sends_lusers_and_no_motd_without_config(net: Net) -> None:
    user = net.connect()
    net.send(user, "NICK alice")
    out = net.send(user, "USER alice 0 * :Alice")
    got = commands(out, user)
    for code in ("251", "252", "253", "254", "255", "265", "266"):
        assert got.count(code) == 1, code
    numeric(out, user, p.ERR_NOMOTD)
    assert p.RPL_MOTDSTART not in got
    assert got[-1] == p.ERR_NOMOTD


def test_registration_sends_configured_motd() -> None:
    net = Net(Config(created=0.0, motd=["Hello there", "", "Be nice"]))
    user = net.connect()
    net.send(user, "NICK alice")
    out = net.send(user, "USER alice 0 * :Alice")
    got = commands(out, user)
    assert p.ERR_NOMOTD not in got
    start = got.index(p.RPL_MOTDSTART)
    assert got[start:] == ["375", "372", "372", "372", "376"]
    motd = [line.params[-1] for line in all_of(out, user, p.RPL_MOTD)]
    assert motd == ["- Hello there", "- ", "- Be nice"]


def test_long_motd_line_is_split() -> None:
    net = Net(Config(created=0.0, motd=["word " * 200]))
    alice = net.register("alice")
    out = net.send(alice, "MOTD")
    pieces = all_of(out, alice, p.RPL_MOTD)
    assert len(pieces) > 1
    assert all(len(line.format().encode()) <= 510 for line in pieces)


@pytest.mark.parametrize(
    "raw", ["JOIN #a", "PRIVMSG bob :hi", "MODE alice", "WHOIS bob", "LUSERS", "AWAY :x"]
)
def test_commands_before_registration_get_451(net: Net, raw: str) -> None:
    user = net.connect()
    net.send(user, "NICK alice")
    out = net.send(user, raw)
    numeric(out, user, p.ERR_NOTREGISTERED)
    assert not user.registered


def test_unknown_command_before_registration_gets_451(net: Net) -> None:
    user = net.connect()
    out = net.send(user, "FOO bar")
    assert commands(out, user) == [p.ERR_NOTREGISTERED]
    assert lines(out, user)[0].params[0] == "*"


def test_unregistered_user_is_not_visible_by_nick(net: Net, alice: User) -> None:
    pending = net.connect()
    net.send(pending, "NICK bob")
    assert net.state.find_user("bob") is None
    numeric(net.send(alice, "PRIVMSG bob :hi"), alice, p.ERR_NOSUCHNICK, "bob")
    silent(net.send(alice, "PRIVMSG bob :hi"), pending)


# CAP ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "values"), [("CAP LS", False), ("CAP LS 302", True), ("cap ls 302", True)]
)
def test_cap_ls_lists_the_capabilities(net: Net, raw: str, values: bool) -> None:
    user = net.connect()
    out = net.send(user, raw)
    line = only(out, user, "CAP")
    assert line.params[:2] == ("*", "LS")
    caps = line.params[-1].split()
    assert "message-tags" in caps and "server-time" in caps and "batch" in caps
    # values (sasl=PLAIN) only for CAP LS 302
    assert ("sasl=PLAIN" in caps) is values
    assert ("sasl" in caps) is not values


def test_registration_waits_for_cap_end(net: Net) -> None:
    user = net.connect()
    net.send(user, "CAP LS 302")
    net.send(user, "NICK alice")
    out = net.send(user, "USER alice 0 * :Alice")
    assert out.lines_for(user) == []
    assert not user.registered
    out = net.send(user, "CAP END")
    assert commands(out, user)[0] == p.RPL_WELCOME
    assert user.registered


def test_cap_req_of_an_unknown_cap_is_nakked_whole_and_holds_registration(net: Net) -> None:
    user = net.connect()
    out = net.send(user, "CAP REQ :multi-prefix frobnicate")
    line = only(out, user, "CAP")
    assert line.source == SERVER
    assert line.params == ("*", "NAK", "multi-prefix frobnicate")
    net.send(user, "NICK alice")
    net.send(user, "USER alice 0 * :Alice")
    assert not user.registered
    assert user.caps == set()
    out = net.send(user, "CAP LIST")
    assert only(out, user, "CAP").params == ("alice", "LIST", "")
    numeric(net.send(user, "CAP END"), user, p.RPL_WELCOME)


def test_cap_req_without_names_is_nakked(net: Net) -> None:
    user = net.connect()
    out = net.send(user, "CAP REQ")
    assert only(out, user, "CAP").params == ("*", "NAK", "")


def test_cap_end_without_negotiation_is_harmless(net: Net) -> None:
    user = net.connect()
    assert net.send(user, "CAP END").lines_for(user) == []
    net.send(user, "NICK alice")
    numeric(net.send(user, "USER alice 0 * :Alice"), user, p.RPL_WELCOME)


def test_cap_after_registration_does_not_block(net: Net, alice: User) -> None:
    out = net.send(alice, "CAP LS 302")
    assert only(out, alice, "CAP").params[:2] == ("alice", "LS")
    assert alice.registered
    assert net.send(alice, "CAP END").lines_for(alice) == []
    numeric(net.send(alice, "LUSERS"), alice, p.RPL_LUSERCLIENT)


def test_cap_unknown_subcommand_gets_410(net: Net) -> None:
    user = net.connect()
    numeric(net.send(user, "CAP FROB"), user, p.ERR_INVALIDCAPCMD, "FROB")


def test_cap_without_subcommand_gets_461(net: Net) -> None:
    user = net.connect()
    numeric(net.send(user, "CAP"), user, p.ERR_NEEDMOREPARAMS, "CAP")


# PASS ---------------------------------------------------------------------------------------------


@pytest.fixture
def locked() -> Net:
    return Net(Config(created=0.0, password="sesame"))


def test_pass_correct_registers(locked: Net) -> None:
    user = locked.connect()
    locked.send(user, "PASS sesame")
    locked.send(user, "NICK alice")
    out = locked.send(user, "USER alice 0 * :Alice")
    numeric(out, user, p.RPL_WELCOME)
    assert out.closes == []


@pytest.mark.parametrize("password", ["wrong", None, "SESAME"])
def test_pass_wrong_or_missing_gets_464_and_close(locked: Net, password: str | None) -> None:
    user = locked.connect()
    if password is not None:
        assert locked.send(user, f"PASS {password}").lines_for(user) == []
    locked.send(user, "NICK alice")
    out = locked.send(user, "USER alice 0 * :Alice")
    assert commands(out, user) == [p.ERR_PASSWDMISMATCH]
    assert not user.registered
    assert user.gone
    assert [u for u, _ in out.closes] == [user]
    assert "Bad password" in out.closes[0][1]
    assert sink_of(user).closed == [out.closes[0][1]]
    # the nick is free again and later lines are ignored
    other = locked.connect()
    locked.send(other, "PASS sesame")
    assert locked.send(other, "NICK alice").lines_for(other) == []
    assert locked.send(user, "NICK carol").sends == []


def test_pass_after_registration_gets_462(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PASS sesame"), alice, p.ERR_ALREADYREGISTERED)


def test_pass_without_param_gets_461(net: Net) -> None:
    user = net.connect()
    numeric(net.send(user, "PASS"), user, p.ERR_NEEDMOREPARAMS, "PASS")


# NICK ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["NICK", "NICK :"])
def test_nick_missing_gets_431(net: Net, raw: str) -> None:
    user = net.connect()
    numeric(net.send(user, raw), user, p.ERR_NONICKNAMEGIVEN)


@pytest.mark.parametrize("nick", ["1abc", "-abc", "ab!c", "ab@c", "#chan", "a.b", "é", "x" * 31])
def test_nick_erroneous_gets_432(net: Net, nick: str) -> None:
    user = net.connect()
    numeric(net.send(user, f"NICK {nick}"), user, p.ERR_ERRONEUSNICKNAME, nick)
    assert user.nick == ""


@pytest.mark.parametrize("nick", ["[a]", "a-1", "_x_", "`b^{|}\\", "x" * 30])
def test_nick_valid_specials_and_max_length(net: Net, nick: str) -> None:
    user = net.register(nick)
    assert user.nick == nick


def test_nicklen_from_config() -> None:
    net = Net(Config(created=0.0, nicklen=5))
    user = net.connect()
    numeric(net.send(user, "NICK abcdef"), user, p.ERR_ERRONEUSNICKNAME, "abcdef")
    assert net.send(user, "NICK abcde").lines_for(user) == []


@pytest.mark.parametrize(
    ("taken", "wanted"),
    [("alice", "alice"), ("alice", "ALICE"), ("[a]", "{A}"), ("a\\b", "A|B"), ("x{y}", "X[Y]")],
)
def test_nick_in_use_gets_433_with_rfc1459_casemapping(net: Net, taken: str, wanted: str) -> None:
    net.register(taken)
    user = net.connect()
    numeric(net.send(user, f"NICK {wanted}"), user, p.ERR_NICKNAMEINUSE, wanted)
    assert user.nick == ""


def test_nick_held_by_unregistered_user_is_in_use(net: Net) -> None:
    first = net.connect()
    net.send(first, "NICK alice")
    second = net.connect()
    numeric(net.send(second, "NICK Alice"), second, p.ERR_NICKNAMEINUSE, "Alice")


def test_nick_change_before_registration_frees_old_nick(net: Net) -> None:
    user = net.connect()
    net.send(user, "NICK alice")
    net.send(user, "NICK alicia")
    other = net.register("alice")
    assert net.state.find_user("alice") is other


def test_registered_user_gets_433_and_keeps_nick(net: Net, alice: User, bob: User) -> None:
    out = net.send(alice, "NICK BOB")
    numeric(out, alice, p.ERR_NICKNAMEINUSE, "BOB")
    silent(out, bob)
    assert alice.nick == "alice"


def test_nick_change_seen_once_by_everyone_sharing_a_channel(net: Net) -> None:
    alice, bob, carol, dave = (net.register(n) for n in ("alice", "bob", "carol", "dave"))
    net.channel("#a", alice, bob, carol)
    net.channel("#b", alice, bob)
    net.channel("#c", dave)
    old_prefix = alice.prefix
    out = net.send(alice, "NICK alicia")
    for user in (alice, bob, carol):
        assert out.lines_for(user) == [f":{old_prefix} NICK :alicia"], user
    silent(out, dave)
    assert alice.prefix == "alicia!~alice@127.0.0.1"
    assert net.state.find_user("alicia") is alice
    assert net.state.find_user("alice") is None
    out = net.send(bob, "NAMES #a")
    assert "@alicia" in names_of(out, bob)
    check_invariants(net.state)


def test_nick_change_without_channels_only_tells_the_user(net: Net, alice: User, bob: User) -> None:
    out = net.send(alice, "NICK alicia")
    assert commands(out, alice) == ["NICK"]
    silent(out, bob)


def test_nick_change_case_only_is_allowed(net: Net, alice: User) -> None:
    out = net.send(alice, "NICK ALICE")
    assert only(out, alice, "NICK").params == ("ALICE",)
    assert net.state.find_user("alice") is alice
    assert alice.nick == "ALICE"


def test_nick_same_is_a_no_op(net: Net, alice: User) -> None:
    assert net.send(alice, "NICK alice").sends == []


def test_old_nick_is_free_after_change(net: Net, alice: User) -> None:
    net.send(alice, "NICK alicia")
    other = net.register("alice")
    assert net.state.find_user("alice") is other


# USER ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["USER", "USER alice", "USER alice 0 *"])
def test_user_too_few_params_gets_461(net: Net, raw: str) -> None:
    user = net.connect()
    net.send(user, "NICK alice")
    numeric(net.send(user, raw), user, p.ERR_NEEDMOREPARAMS, "USER")
    assert not user.registered


def test_user_twice_before_registration_gets_462(net: Net) -> None:
    user = net.connect()
    net.send(user, "CAP LS")
    net.send(user, "USER alice 0 * :Alice")
    numeric(net.send(user, "USER bob 0 * :Bob"), user, p.ERR_ALREADYREGISTERED)
    assert user.username == "~alice"


def test_user_after_registration_gets_462(net: Net, alice: User) -> None:
    numeric(net.send(alice, "USER x 0 * :X"), alice, p.ERR_ALREADYREGISTERED)
    assert alice.realname == "Alice Example"
