"""State unit tests, channel membership: JOIN, PART, TOPIC, INVITE and KICK."""

from __future__ import annotations

import pytest

from tests.unit.helpers import (
    T0,
    Net,
    all_of,
    check_invariants,
    commands,
    lines,
    names_of,
    numeric,
    only,
    silent,
)
from tuichat.net import protocol as p
from tuichat.net.protocol import Line
from tuichat.state import Config, User

# JOIN ---------------------------------------------------------------------------------------------


def test_first_joiner_creates_channel_and_gets_op(net: Net, alice: User) -> None:
    out = net.send(alice, "JOIN #Room")
    got = lines(out, alice)
    assert got[0] == Line("JOIN", ("#Room",), source=alice.prefix)
    assert [line.command for line in got[1:]] == [p.RPL_NAMREPLY, p.RPL_ENDOFNAMES]
    assert got[1].params[1:] == ("=", "#Room", "@alice")
    assert got[2].params[1] == "#Room"
    assert "#room" in net.state.channels
    assert alice.channels["#room"].created == T0


def test_second_joiner_is_announced_to_members(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #a")
    out = net.send(bob, "JOIN #A")
    join = f":{bob.prefix} JOIN #a"
    assert out.lines_for(alice) == [join]
    assert out.lines_for(bob)[0] == join
    assert names_of(out, bob) == ["@alice", "bob"]
    assert p.RPL_NOTOPIC not in commands(out, bob)


def test_join_list_of_channels(net: Net, alice: User) -> None:
    out = net.send(alice, "JOIN #a,#b,,#c")
    assert [line.params[0] for line in all_of(out, alice, "JOIN")] == ["#a", "#b", "#c"]
    assert set(alice.channels) == {"#a", "#b", "#c"}


def test_join_again_is_ignored(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(bob, "JOIN #a")
    silent(out, alice, bob)


def test_join_sends_topic_when_set(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #a")
    net.send(alice, "TOPIC #a :Hello world", now=T0 + 5)
    out = net.send(bob, "JOIN #a")
    assert commands(out, bob) == ["JOIN", "332", "333", "353", "366"]
    numeric(out, bob, p.RPL_TOPIC, "#a", "Hello world")
    numeric(out, bob, p.RPL_TOPICWHOTIME, "#a", alice.prefix, str(int(T0 + 5)))


@pytest.mark.parametrize("name", ["a", "#", "&a", "#a\x07b", "#" + "x" * 64])
def test_join_bad_name_gets_403(net: Net, alice: User, name: str) -> None:
    out = net.send(alice, f"JOIN {name}")
    numeric(out, alice, p.ERR_NOSUCHCHANNEL, name)
    assert net.state.channels == {}


def test_join_channellen_allows_exactly_the_limit(net: Net, alice: User) -> None:
    name = "#" + "x" * 63
    only(net.send(alice, f"JOIN {name}"), alice, "JOIN")


def test_join_too_many_channels_gets_405() -> None:
    net = Net(Config(created=0.0, chanlimit=2))
    alice = net.register("alice")
    out = net.send(alice, "JOIN #a,#b,#c")
    assert len(all_of(out, alice, "JOIN")) == 2
    numeric(out, alice, p.ERR_TOOMANYCHANNELS, "#c")
    assert "#c" not in net.state.channels


def test_join_zero_parts_every_channel(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    net.channel("#b", alice)
    out = net.send(alice, "JOIN 0")
    parts = all_of(out, alice, "PART")
    assert sorted(line.params[0] for line in parts) == ["#a", "#b"]
    assert [line.params[0] for line in all_of(out, bob, "PART")] == ["#a"]
    assert alice.channels == {}
    assert set(net.state.channels) == {"#a"}
    check_invariants(net.state)


def test_join_keyed_channel(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #a")
    net.send(alice, "MODE #a +k secret")
    out = net.send(bob, "JOIN #a")
    numeric(out, bob, p.ERR_BADCHANNELKEY, "#a")
    silent(out, alice)
    numeric(net.send(bob, "JOIN #a wrong"), bob, p.ERR_BADCHANNELKEY, "#a")
    out = net.send(bob, "JOIN #a secret")
    only(out, alice, "JOIN")
    assert bob in net.state.channels["#a"].members


def test_join_keys_pair_with_channels_by_position(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #a,#b")
    net.send(alice, "MODE #a +k one")
    net.send(alice, "MODE #b +k two")
    out = net.send(bob, "JOIN #a,#b two,one")
    assert commands(out, bob).count(p.ERR_BADCHANNELKEY) == 2
    out = net.send(bob, "JOIN #a,#b one,two")
    assert len(all_of(out, bob, "JOIN")) == 2


def test_join_full_channel_gets_471(net: Net, alice: User, bob: User, carol: User) -> None:
    net.send(alice, "JOIN #a")
    net.send(alice, "MODE #a +l 2")
    only(net.send(bob, "JOIN #a"), bob, "JOIN")
    numeric(net.send(carol, "JOIN #a"), carol, p.ERR_CHANNELISFULL, "#a")


def test_join_invite_only_gets_473_unless_invited(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.channel("#a", alice)
    net.send(alice, "MODE #a +i")
    numeric(net.send(bob, "JOIN #a"), bob, p.ERR_INVITEONLYCHAN, "#a")
    net.send(alice, "INVITE bob #a")
    only(net.send(bob, "JOIN #a"), alice, "JOIN")
    numeric(net.send(carol, "JOIN #a"), carol, p.ERR_INVITEONLYCHAN, "#a")
    # the invitation is used up by the join
    net.send(bob, "PART #a")
    numeric(net.send(bob, "JOIN #a"), bob, p.ERR_INVITEONLYCHAN, "#a")


def test_join_banned_gets_474_unless_invited(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    net.send(alice, "MODE #a +b bob")
    numeric(net.send(bob, "JOIN #a"), bob, p.ERR_BANNEDFROMCHAN, "#a")
    net.send(alice, "INVITE bob #a")
    only(net.send(bob, "JOIN #a"), bob, "JOIN")


def test_ban_matches_host_mask(net: Net, alice: User) -> None:
    bob = net.register("bob", host="evil.example")
    net.channel("#a", alice)
    net.send(alice, "MODE #a +b *@*.EXAMPLE")
    numeric(net.send(bob, "JOIN #a"), bob, p.ERR_BANNEDFROMCHAN, "#a")


def test_join_without_params_gets_461(net: Net, alice: User) -> None:
    numeric(net.send(alice, "JOIN"), alice, p.ERR_NEEDMOREPARAMS, "JOIN")


# PART ---------------------------------------------------------------------------------------------


def test_part_is_broadcast_and_removes_member(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(bob, "PART #A")
    assert out.lines_for(alice) == [f":{bob.prefix} PART #a"]
    assert out.lines_for(bob) == [f":{bob.prefix} PART #a"]
    assert bob not in net.state.channels["#a"].members
    assert bob.channels == {}


def test_part_with_reason(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(bob, "PART #a :see you later")
    assert only(out, alice, "PART").params == ("#a", "see you later")


def test_part_last_member_removes_channel(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #a,#b")
    net.send(alice, "PART #a,#b")
    assert net.state.channels == {}
    check_invariants(net.state)


def test_part_unknown_channel_gets_403(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PART #nowhere"), alice, p.ERR_NOSUCHCHANNEL, "#nowhere")


def test_part_not_member_gets_442(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    out = net.send(bob, "PART #a")
    numeric(out, bob, p.ERR_NOTONCHANNEL, "#a")
    silent(out, alice)


def test_part_without_params_gets_461(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PART"), alice, p.ERR_NEEDMOREPARAMS, "PART")


# TOPIC --------------------------------------------------------------------------------------------


def test_topic_query_set_and_query(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    numeric(net.send(bob, "TOPIC #a"), bob, p.RPL_NOTOPIC, "#a")
    out = net.send(alice, "TOPIC #a :New topic", now=T0 + 10)
    expected = f":{alice.prefix} TOPIC #a :New topic"
    assert out.lines_for(alice) == [expected]
    assert out.lines_for(bob) == [expected]
    out = net.send(bob, "TOPIC #A")
    assert commands(out, bob) == [p.RPL_TOPIC, p.RPL_TOPICWHOTIME]
    numeric(out, bob, p.RPL_TOPIC, "#a", "New topic")
    numeric(out, bob, p.RPL_TOPICWHOTIME, "#a", alice.prefix, str(int(T0 + 10)))


def test_topic_restricted_needs_op(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(bob, "TOPIC #a :mine")
    numeric(out, bob, p.ERR_CHANOPRIVSNEEDED, "#a")
    silent(out, alice)
    net.send(alice, "MODE #a -t")
    out = net.send(bob, "TOPIC #a :mine")
    assert only(out, alice, "TOPIC").params == ("#a", "mine")


def test_topic_can_be_cleared(net: Net, alice: User) -> None:
    net.channel("#a", alice)
    net.send(alice, "TOPIC #a :something")
    out = net.send(alice, "TOPIC #a :")
    assert only(out, alice, "TOPIC").params == ("#a", "")
    numeric(net.send(alice, "TOPIC #a"), alice, p.RPL_NOTOPIC)


def test_topic_set_by_non_member_gets_442(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    net.send(alice, "MODE #a -t")
    numeric(net.send(bob, "TOPIC #a :hi"), bob, p.ERR_NOTONCHANNEL, "#a")


def test_topic_unknown_channel_gets_403(net: Net, alice: User) -> None:
    numeric(net.send(alice, "TOPIC #nowhere"), alice, p.ERR_NOSUCHCHANNEL, "#nowhere")


def test_topic_of_secret_channel_is_hidden_from_outsiders(net: Net, alice: User, bob: User) -> None:
    net.channel("#s", alice)
    net.send(alice, "MODE #s +s")
    net.send(alice, "TOPIC #s :hidden")
    numeric(net.send(bob, "TOPIC #s"), bob, p.ERR_NOSUCHCHANNEL, "#s")


def test_topic_is_truncated_to_topiclen() -> None:
    net = Net(Config(created=0.0, topiclen=10))
    alice = net.register("alice")
    net.channel("#a", alice)
    out = net.send(alice, "TOPIC #a :0123456789abcdef")
    assert only(out, alice, "TOPIC").params[1] == "0123456789"


def test_topic_without_params_gets_461(net: Net, alice: User) -> None:
    numeric(net.send(alice, "TOPIC"), alice, p.ERR_NEEDMOREPARAMS, "TOPIC")


# INVITE -------------------------------------------------------------------------------------------


def test_invite(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", alice, carol)
    net.send(alice, "MODE #a +i")
    out = net.send(alice, "INVITE Bob #A")
    numeric(out, alice, p.RPL_INVITING, "bob", "#a")
    assert only(out, bob, "INVITE") == Line("INVITE", ("bob", "#a"), source=alice.prefix)
    silent(out, carol)


def test_invite_non_op_allowed_without_plus_i(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.channel("#a", alice, carol)
    out = net.send(carol, "INVITE bob #a")
    numeric(out, carol, p.RPL_INVITING, "bob", "#a")


def test_invite_non_op_on_invite_only_gets_482(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.channel("#a", alice, carol)
    net.send(alice, "MODE #a +i")
    out = net.send(carol, "INVITE bob #a")
    numeric(out, carol, p.ERR_CHANOPRIVSNEEDED, "#a")
    silent(out, bob)
    numeric(net.send(bob, "JOIN #a"), bob, p.ERR_INVITEONLYCHAN)


def test_invite_already_on_channel_gets_443(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "INVITE bob #a")
    numeric(out, alice, p.ERR_USERONCHANNEL, "bob", "#a")
    silent(out, bob)


def test_invite_from_outside_gets_442(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", alice)
    out = net.send(carol, "INVITE bob #a")
    numeric(out, carol, p.ERR_NOTONCHANNEL, "#a")
    silent(out, bob)


def test_invite_unknown_nick_or_channel(net: Net, alice: User, bob: User) -> None:
    numeric(net.send(alice, "INVITE nobody #a"), alice, p.ERR_NOSUCHNICK, "nobody")
    numeric(net.send(alice, "INVITE bob #nowhere"), alice, p.ERR_NOSUCHCHANNEL, "#nowhere")
    numeric(net.send(alice, "INVITE bob"), alice, p.ERR_NEEDMOREPARAMS, "INVITE")


def test_invite_away_user_gets_301(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    net.send(bob, "AWAY :busy")
    numeric(net.send(alice, "INVITE bob #a"), alice, p.RPL_AWAY, "bob", "busy")


# KICK ---------------------------------------------------------------------------------------------


def test_kick(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", alice, bob, carol)
    out = net.send(alice, "KICK #A BOB :behave")
    expected = f":{alice.prefix} KICK #a bob :behave"
    for user in (alice, bob, carol):
        assert out.lines_for(user) == [expected]
    assert bob not in net.state.channels["#a"].members
    assert "#a" not in bob.channels
    only(net.send(bob, "JOIN #a"), bob, "JOIN")
    check_invariants(net.state)


def test_kick_default_reason_and_several_targets(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.channel("#a", alice, bob, carol)
    out = net.send(alice, "KICK #a bob,carol")
    kicks = all_of(out, alice, "KICK")
    assert [line.params for line in kicks] == [("#a", "bob", "alice"), ("#a", "carol", "alice")]
    assert set(net.state.channels["#a"].members) == {alice}


def test_kick_self_as_last_member_removes_channel(net: Net, alice: User) -> None:
    net.channel("#a", alice)
    net.send(alice, "KICK #a alice")
    assert net.state.channels == {}


def test_kick_reason_is_truncated_to_kicklen() -> None:
    net = Net(Config(created=0.0, kicklen=4))
    alice, bob = net.register("alice"), net.register("bob")
    net.channel("#a", alice, bob)
    assert only(net.send(alice, "KICK #a bob :abcdefg"), bob, "KICK").params[2] == "abcd"


def test_kick_target_not_on_channel_gets_441(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    numeric(net.send(alice, "KICK #a bob"), alice, p.ERR_USERNOTINCHANNEL, "bob", "#a")
    numeric(net.send(alice, "KICK #a nobody"), alice, p.ERR_USERNOTINCHANNEL, "nobody", "#a")


def test_kick_by_non_op_gets_482(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(bob, "KICK #a alice")
    numeric(out, bob, p.ERR_CHANOPRIVSNEEDED, "#a")
    silent(out, alice)
    assert alice in net.state.channels["#a"].members


def test_kick_from_outside_gets_442(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    numeric(net.send(bob, "KICK #a alice"), bob, p.ERR_NOTONCHANNEL, "#a")


def test_kick_unknown_channel_and_missing_params(net: Net, alice: User) -> None:
    numeric(net.send(alice, "KICK #nowhere bob"), alice, p.ERR_NOSUCHCHANNEL, "#nowhere")
    numeric(net.send(alice, "KICK #a"), alice, p.ERR_NEEDMOREPARAMS, "KICK")


# found in review ----------------------------------------------------------------------------------


def test_an_invitation_does_not_outlive_its_channel(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #secret")
    net.send(alice, "INVITE bob #secret")
    net.send(alice, "PART #secret")  # the channel is gone, and the invitation with it
    carol = net.register("carol")
    net.send(carol, "JOIN #secret")
    net.send(carol, "MODE #secret +i")
    numeric(net.send(bob, "JOIN #secret"), bob, p.ERR_INVITEONLYCHAN, "#secret")
