"""State unit tests, MODE: channel modes (op, voice, bans, flags, key, limit) and user modes."""

from __future__ import annotations

import pytest

from tests.unit.helpers import T0, Net, all_of, commands, lines, names_of, numeric, only, silent
from tuichat.net import protocol as p
from tuichat.state import Config, User

# MODE (channel) -----------------------------------------------------------------------------------


def test_channel_mode_query(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #a", now=T0 + 3)
    out = net.send(alice, "MODE #A")
    assert commands(out, alice) == [p.RPL_CHANNELMODEIS, p.RPL_CREATIONTIME]
    numeric(out, alice, p.RPL_CHANNELMODEIS, "#a", "+nt")
    numeric(out, alice, p.RPL_CREATIONTIME, "#a", str(int(T0 + 3)))


def test_channel_mode_query_hides_key_from_non_members(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    net.send(alice, "MODE #a +kl sesame 5")
    mine = numeric(net.send(alice, "MODE #a"), alice, p.RPL_CHANNELMODEIS)
    assert set(mine.params[2].lstrip("+")) == set("ntkl")
    assert "sesame" in mine.params[3:]
    theirs = numeric(net.send(bob, "MODE #a"), bob, p.RPL_CHANNELMODEIS)
    assert set(theirs.params[2].lstrip("+")) == set("ntkl")
    assert "sesame" not in theirs.params


def test_channel_mode_op_and_voice(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", alice, bob, carol)
    out = net.send(alice, "MODE #a +ov bob carol")
    expected = f":{alice.prefix} MODE #a +ov bob carol"
    for user in (alice, bob, carol):
        assert out.lines_for(user) == [expected]
    assert names_of(net.send(alice, "NAMES #a"), alice) == ["@alice", "@bob", "+carol"]
    # bob is op now and can use op commands
    only(net.send(bob, "MODE #a -o alice"), carol, "MODE")
    numeric(net.send(alice, "MODE #a +m"), alice, p.ERR_CHANOPRIVSNEEDED, "#a")


def test_channel_mode_repeat_is_silent(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    assert net.send(alice, "MODE #a +o alice").sends == []
    assert net.send(alice, "MODE #a +nt").sends == []
    assert net.send(alice, "MODE #a -v bob").sends == []


def test_channel_mode_op_unknown_nick_or_not_member(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    numeric(net.send(alice, "MODE #a +o nobody"), alice, p.ERR_NOSUCHNICK, "nobody")
    out = net.send(alice, "MODE #a +v bob")
    numeric(out, alice, p.ERR_USERNOTINCHANNEL, "bob", "#a")
    silent(out, bob)


@pytest.mark.parametrize(
    ("mask", "normal"),
    [
        ("bob", "bob!*@*"),
        ("bob!*@*", "bob!*@*"),
        ("bob!u", "bob!u@*"),
        ("*@evil.example", "*!*@evil.example"),
        ("u@h", "*!u@h"),
        ("!u@", "*!u@*"),
    ],
)
def test_ban_mask_is_normalised(net: Net, alice: User, mask: str, normal: str) -> None:
    net.channel("#a", alice)
    out = net.send(alice, f"MODE #a +b {mask}")
    assert only(out, alice, "MODE").params == ("#a", "+b", normal)
    assert [ban[0] for ban in net.state.channels["#a"].bans] == [normal]


def test_ban_list(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    net.send(alice, "MODE #a +b bob", now=T0 + 1)
    net.send(alice, "MODE #a +b *@spam.example", now=T0 + 2)
    for raw in ("MODE #a +b", "MODE #a b", "MODE #a -b"):
        out = net.send(bob, raw)
        assert commands(out, bob) == [p.RPL_BANLIST, p.RPL_BANLIST, p.RPL_ENDOFBANLIST], raw
        bans = [line.params[1:] for line in all_of(out, bob, p.RPL_BANLIST)]
        assert bans == [
            ("#a", "bob!*@*", alice.prefix, str(int(T0 + 1))),
            ("#a", "*!*@spam.example", alice.prefix, str(int(T0 + 2))),
        ]
        numeric(out, bob, p.RPL_ENDOFBANLIST, "#a")
        silent(out, alice)


def test_ban_duplicate_and_removal(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    net.send(alice, "MODE #a +b bob")
    assert net.send(alice, "MODE #a +b BOB!*@*").sends == []
    out = net.send(alice, "MODE #a -b bob")
    assert only(out, bob, "MODE").params == ("#a", "-b", "bob!*@*")
    assert net.state.channels["#a"].bans == []
    assert net.send(alice, "MODE #a -b bob").sends == []


def test_ban_list_is_bounded_by_maxbans() -> None:
    net = Net(Config(created=0.0, maxbans=2))
    alice = net.register("alice")
    net.channel("#a", alice)
    net.send(alice, "MODE #a +bbb a b c")
    assert [ban[0] for ban in net.state.channels["#a"].bans] == ["a!*@*", "b!*@*"]


@pytest.mark.parametrize("flag", list("imnst"))
def test_channel_flag_modes_toggle(net: Net, alice: User, bob: User, flag: str) -> None:
    net.channel("#a", alice, bob)
    first, second = ("-", "+") if flag in "nt" else ("+", "-")
    out = net.send(alice, f"MODE #a {first}{flag}")
    assert out.lines_for(bob) == [f":{alice.prefix} MODE #a {first}{flag}"]
    assert (flag in net.state.channels["#a"].modes) == (first == "+")
    out = net.send(alice, f"MODE #a {second}{flag}")
    assert only(out, bob, "MODE").params == ("#a", f"{second}{flag}")
    assert (flag in net.state.channels["#a"].modes) == (second == "+")


def test_channel_modes_are_compressed(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "MODE #a +m+i-t+v bob")
    assert only(out, bob, "MODE").params == ("#a", "+mi-t+v", "bob")


def test_channel_key_mode(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "MODE #a +k sesame")
    assert only(out, bob, "MODE").params == ("#a", "+k", "sesame")
    assert net.state.channels["#a"].key == "sesame"
    out = net.send(alice, "MODE #a -k whatever")
    assert only(out, bob, "MODE").params == ("#a", "-k", "*")
    assert net.state.channels["#a"].key is None
    net.send(alice, "MODE #a +k again")
    only(net.send(alice, "MODE #a -k"), bob, "MODE")
    assert net.state.channels["#a"].key is None


def test_channel_mode_missing_param_gets_461(net: Net, alice: User) -> None:
    net.channel("#a", alice)
    for raw in ("MODE #a +k", "MODE #a +l", "MODE #a +o"):
        numeric(net.send(alice, raw), alice, p.ERR_NEEDMOREPARAMS, "MODE")


def test_channel_limit_mode(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "MODE #a +l 10")
    assert only(out, bob, "MODE").params == ("#a", "+l", "10")
    assert net.state.channels["#a"].limit == 10
    assert net.send(alice, "MODE #a +l ten").sends == []
    assert net.send(alice, "MODE #a +l 0").sends == []
    out = net.send(alice, "MODE #a -l")
    assert only(out, bob, "MODE").params == ("#a", "-l")
    assert net.state.channels["#a"].limit is None


def test_channel_mode_unknown_letter_gets_472(net: Net, alice: User) -> None:
    net.channel("#a", alice)
    out = net.send(alice, "MODE #a +xm")
    numeric(out, alice, p.ERR_UNKNOWNMODE, "x")
    only(out, alice, "MODE")


def test_channel_mode_non_op_gets_one_482(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(bob, "MODE #a +imo-t bob")
    numeric(out, bob, p.ERR_CHANOPRIVSNEEDED, "#a")
    silent(out, alice)
    assert net.state.channels["#a"].modes == {"n", "t"}
    assert net.state.channels["#a"].members[bob] == set()


def test_channel_mode_by_non_member_gets_482(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    numeric(net.send(bob, "MODE #a +m"), bob, p.ERR_CHANOPRIVSNEEDED, "#a")


def test_channel_mode_unknown_channel_gets_403(net: Net, alice: User) -> None:
    numeric(net.send(alice, "MODE #nowhere +m"), alice, p.ERR_NOSUCHCHANNEL, "#nowhere")


def test_channel_mode_param_count_is_limited_by_modes() -> None:
    net = Net(Config(created=0.0, modes=2))
    alice = net.register("alice")
    net.channel("#a", alice)
    out = net.send(alice, "MODE #a +bbb a b c")
    assert only(out, alice, "MODE").params == ("#a", "+bb", "a!*@*", "b!*@*")


def test_mode_without_params_gets_461(net: Net, alice: User) -> None:
    numeric(net.send(alice, "MODE"), alice, p.ERR_NEEDMOREPARAMS, "MODE")


# MODE (user) --------------------------------------------------------------------------------------


def test_user_mode_query_and_invisible(net: Net, alice: User, bob: User) -> None:
    numeric(net.send(alice, "MODE alice"), alice, p.RPL_UMODEIS, "+")
    out = net.send(alice, "MODE Alice +i")
    assert out.lines_for(alice) == [f":{alice.prefix} MODE alice :+i"]
    silent(out, bob)
    numeric(net.send(alice, "MODE alice"), alice, p.RPL_UMODEIS, "+i")
    assert net.send(alice, "MODE alice +i").sends == []
    assert only(net.send(alice, "MODE alice -i"), alice, "MODE").params == ("alice", "-i")


def test_user_mode_plus_o_is_ignored(net: Net, alice: User) -> None:
    assert net.send(alice, "MODE alice +o").sends == []
    assert "o" not in alice.modes


def test_user_mode_unknown_flag_gets_501(net: Net, alice: User) -> None:
    out = net.send(alice, "MODE alice +zi")
    numeric(out, alice, p.ERR_UMODEUNKNOWNFLAG)
    assert "i" in alice.modes


def test_user_mode_other_user_gets_502(net: Net, alice: User, bob: User) -> None:
    numeric(net.send(alice, "MODE bob"), alice, p.ERR_USERSDONTMATCH)
    numeric(net.send(alice, "MODE bob +i"), alice, p.ERR_USERSDONTMATCH)
    assert "i" not in bob.modes


def test_user_mode_unknown_nick_gets_401(net: Net, alice: User) -> None:
    numeric(net.send(alice, "MODE nobody"), alice, p.ERR_NOSUCHNICK, "nobody")


# found in review ----------------------------------------------------------------------------------


def test_a_ban_mask_with_a_space_is_refused(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #c")
    out = net.send(alice, "MODE #c +b :x y")
    assert net.state.channels["#c"].bans == []
    # refused with ERR_INVALIDMODEPARAM, as modern.ircdocs.horse advises (issue 10, item 14)
    assert [line.command for line in lines(out, alice)] == [p.ERR_INVALIDMODEPARAM]
