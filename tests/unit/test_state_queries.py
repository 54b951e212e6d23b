"""State unit tests, queries: NAMES, LIST, WHO, WHOIS, WHOWAS and the server information
commands (MOTD, LUSERS, VERSION, TIME, INFO, ISON, USERHOST), unknown and oversize lines."""

from __future__ import annotations

import time

from tests.unit.helpers import (
    HOST,
    SERVER,
    T0,
    Net,
    all_of,
    commands,
    isupport,
    lines,
    names_of,
    numeric,
    only,
)
from tuichat import __version__
from tuichat.net import protocol as p
from tuichat.state import Config, Outbox, User

# NAMES --------------------------------------------------------------------------------------------


def test_names_lists_members_with_prefixes(net: Net, alice: User, bob: User, carol: User) -> None:
    net.channel("#a", alice, bob, carol)
    net.send(alice, "MODE #a +v carol")
    out = net.send(bob, "NAMES #a")
    assert commands(out, bob) == [p.RPL_NAMREPLY, p.RPL_ENDOFNAMES]
    numeric(out, bob, p.RPL_NAMREPLY, "=", "#a")
    assert names_of(out, bob) == ["@alice", "bob", "+carol"]
    numeric(out, bob, p.RPL_ENDOFNAMES, "#a")


def test_names_from_outside_public_channel(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice)
    out = net.send(bob, "NAMES #a")
    assert names_of(out, bob) == ["@alice"]


def test_names_secret_channel(net: Net, alice: User, bob: User) -> None:
    net.channel("#s", alice)
    net.send(alice, "MODE #s +s")
    out = net.send(bob, "NAMES #s")
    assert commands(out, bob) == [p.RPL_ENDOFNAMES]
    out = net.send(alice, "NAMES #s")
    numeric(out, alice, p.RPL_NAMREPLY, "@", "#s")


def test_names_unknown_channel_and_no_params(net: Net, alice: User) -> None:
    out = net.send(alice, "NAMES #nowhere")
    assert commands(out, alice) == [p.RPL_ENDOFNAMES]
    numeric(out, alice, p.RPL_ENDOFNAMES, "#nowhere")
    numeric(net.send(alice, "NAMES"), alice, p.RPL_ENDOFNAMES, "*")


def test_names_shows_invisible_members_to_members(net: Net, alice: User, bob: User) -> None:
    net.send(bob, "MODE bob +i")
    net.channel("#a", alice, bob)
    assert names_of(net.send(alice, "NAMES #a"), alice) == ["@alice", "bob"]


def test_names_hides_invisible_members_from_outsiders(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.send(bob, "MODE bob +i")
    net.channel("#a", alice, bob)
    out = net.send(carol, "NAMES #a")
    assert names_of(out, carol) == ["@alice"]


def test_names_are_chunked_to_fit_lines(net: Net) -> None:
    users = [net.register(f"user{i:03d}{'x' * 20}") for i in range(60)]
    net.channel("#big", users[0], *users[1:])
    out = net.send(users[0], "NAMES #big")
    replies = all_of(out, users[0], p.RPL_NAMREPLY)
    assert len(replies) > 1
    assert all(len(line.format(trailing=True).encode()) <= 510 for line in replies)
    assert len(names_of(out, users[0])) == 60


# LIST ---------------------------------------------------------------------------------------------


def test_list_channels(net: Net, alice: User, bob: User) -> None:
    net.channel("#b", alice, bob)
    net.channel("#a", alice)
    net.send(alice, "TOPIC #b :the b channel")
    out = net.send(bob, "LIST")
    assert commands(out, bob) == [p.RPL_LISTSTART, p.RPL_LIST, p.RPL_LIST, p.RPL_LISTEND]
    rows = [line.params[1:] for line in all_of(out, bob, p.RPL_LIST)]
    assert rows == [("#a", "1", ""), ("#b", "2", "the b channel")]


def test_list_named_channels(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #a,#b,#c")
    out = net.send(alice, "LIST #c,#nowhere,#A")
    assert [line.params[1] for line in all_of(out, alice, p.RPL_LIST)] == ["#c", "#a"]


def test_list_hides_secret_channels_from_outsiders(net: Net, alice: User, bob: User) -> None:
    net.channel("#s", alice)
    net.channel("#p", alice)
    net.send(alice, "MODE #s +s")
    out = net.send(bob, "LIST")
    assert [line.params[1] for line in all_of(out, bob, p.RPL_LIST)] == ["#p"]
    assert all_of(net.send(bob, "LIST #s"), bob, p.RPL_LIST) == []
    out = net.send(alice, "LIST")
    assert [line.params[1] for line in all_of(out, alice, p.RPL_LIST)] == ["#p", "#s"]


# WHO ----------------------------------------------------------------------------------------------


def test_who_channel(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    net.send(bob, "AWAY :brb")
    out = net.send(alice, "WHO #a")
    assert commands(out, alice) == [p.RPL_WHOREPLY, p.RPL_WHOREPLY, p.RPL_ENDOFWHO]
    rows = {line.params[5]: line.params[1:] for line in all_of(out, alice, p.RPL_WHOREPLY)}
    assert rows["alice"] == ("#a", "~alice", HOST, SERVER, "alice", "H@", "0 Alice Example")
    assert rows["bob"] == ("#a", "~bob", HOST, SERVER, "bob", "G", "0 Bob Example")
    numeric(out, alice, p.RPL_ENDOFWHO, "#a")


def test_who_shows_oper_flag_and_o_filter() -> None:
    net = Net(Config(created=0.0, opers={"admin": "pw"}))
    alice, bob = net.register("alice"), net.register("bob")
    net.channel("#a", alice, bob)
    net.send(bob, "OPER admin pw")
    net.send(alice, "MODE #a +v bob")
    out = net.send(alice, "WHO #a")
    flags = {line.params[5]: line.params[6] for line in all_of(out, alice, p.RPL_WHOREPLY)}
    assert flags == {"alice": "H@", "bob": "H*+"}
    out = net.send(alice, "WHO #a o")
    assert [line.params[5] for line in all_of(out, alice, p.RPL_WHOREPLY)] == ["bob"]


def test_who_mask(net: Net, alice: User, bob: User, carol: User) -> None:
    out = net.send(alice, "WHO b*")
    assert [line.params[5] for line in all_of(out, alice, p.RPL_WHOREPLY)] == ["bob"]
    assert all_of(out, alice, p.RPL_WHOREPLY)[0].params[1] == "*"
    numeric(out, alice, p.RPL_ENDOFWHO, "b*")
    out = net.send(alice, "WHO *Example")  # realname
    assert len(all_of(out, alice, p.RPL_WHOREPLY)) == 3


def test_who_mask_hides_invisible_users_without_common_channel(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.send(bob, "MODE bob +i")
    net.send(carol, "MODE carol +i")
    net.channel("#a", alice, carol)
    net.send(alice, "MODE alice +i")
    out = net.send(alice, "WHO *")
    assert sorted(line.params[5] for line in all_of(out, alice, p.RPL_WHOREPLY)) == [
        "alice",
        "carol",
    ]
    out = net.send(alice, "WHO 0")
    assert len(all_of(out, alice, p.RPL_WHOREPLY)) == 2


def test_who_secret_channel_from_outside(net: Net, alice: User, bob: User) -> None:
    net.channel("#s", alice)
    net.send(alice, "MODE #s +s")
    out = net.send(bob, "WHO #s")
    assert commands(out, bob) == [p.RPL_ENDOFWHO]


def test_who_channel_hides_invisible_members_from_outsiders(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.send(bob, "MODE bob +i")
    net.channel("#a", alice, bob)
    out = net.send(carol, "WHO #a")
    assert [line.params[5] for line in all_of(out, carol, p.RPL_WHOREPLY)] == ["alice"]


def test_who_mask_does_not_reveal_secret_channel(net: Net, alice: User, bob: User) -> None:
    net.channel("#secret", bob)
    net.send(bob, "MODE #secret +s")
    out = net.send(alice, "WHO bob")
    row = only(out, alice, p.RPL_WHOREPLY)
    assert row.params[1] != "#secret"


# WHOIS --------------------------------------------------------------------------------------------


def test_whois(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", bob)
    net.channel("#b", alice, bob)
    net.send(bob, "PRIVMSG alice :hi", now=T0 + 10)
    out = net.send(alice, "WHOIS BOB", now=T0 + 70)
    assert commands(out, alice) == ["311", "319", "312", "317", "318"]
    numeric(out, alice, p.RPL_WHOISUSER, "bob", "~bob", HOST, "*", "Bob Example")
    chans = numeric(out, alice, p.RPL_WHOISCHANNELS, "bob").params[2].split()
    assert sorted(chans) == ["#b", "@#a"]
    numeric(out, alice, p.RPL_WHOISSERVER, "bob", SERVER)
    numeric(out, alice, p.RPL_WHOISIDLE, "bob", "60", str(int(T0)))
    numeric(out, alice, p.RPL_ENDOFWHOIS, "bob")


def test_whois_oper_and_away() -> None:
    net = Net(Config(created=0.0, opers={"admin": "pw"}))
    alice, bob = net.register("alice"), net.register("bob")
    net.send(bob, "OPER admin pw")
    net.send(bob, "AWAY :lunch")
    out = net.send(alice, "WHOIS bob")
    assert commands(out, alice) == ["311", "312", "313", "301", "317", "318"]
    numeric(out, alice, p.RPL_WHOISOPERATOR, "bob")
    numeric(out, alice, p.RPL_AWAY, "bob", "lunch")


def test_whois_hides_secret_channels_from_outsiders(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    net.channel("#s", bob, carol)
    net.send(bob, "MODE #s +s")
    assert p.RPL_WHOISCHANNELS not in commands(net.send(alice, "WHOIS bob"), alice)
    out = net.send(carol, "WHOIS bob")
    numeric(out, carol, p.RPL_WHOISCHANNELS, "bob", "@#s")


def test_whois_with_server_param_uses_last(net: Net, alice: User, bob: User) -> None:
    numeric(net.send(alice, "WHOIS tuichat bob"), alice, p.RPL_WHOISUSER, "bob")


def test_whois_unknown_gets_401_and_318(net: Net, alice: User) -> None:
    out = net.send(alice, "WHOIS nobody")
    assert commands(out, alice) == [p.ERR_NOSUCHNICK, p.RPL_ENDOFWHOIS]
    numeric(out, alice, p.ERR_NOSUCHNICK, "nobody")


def test_whois_without_params_gets_431(net: Net, alice: User) -> None:
    numeric(net.send(alice, "WHOIS"), alice, p.ERR_NONICKNAMEGIVEN)


# WHOWAS -------------------------------------------------------------------------------------------


def test_whowas_after_quit(net: Net, alice: User, bob: User) -> None:
    net.send(bob, "QUIT :bye", now=0.0)
    out = net.send(alice, "WHOWAS Bob")
    assert commands(out, alice) == [p.RPL_WHOWASUSER, p.RPL_WHOISSERVER, p.RPL_ENDOFWHOWAS]
    numeric(out, alice, p.RPL_WHOWASUSER, "bob", "~bob", HOST, "*", "Bob Example")
    numeric(out, alice, p.RPL_WHOISSERVER, "bob", SERVER, "Thu Jan 01 00:00:00 1970")
    numeric(out, alice, p.RPL_ENDOFWHOWAS, "Bob")


def test_whowas_after_nick_change_newest_first_and_count(net: Net, alice: User) -> None:
    bob = net.register("bob")
    net.send(bob, "NICK robert", now=T0 + 1)
    net.send(bob, "NICK bob", now=T0 + 2)
    net.send(bob, "NICK robert", now=T0 + 3)
    out = net.send(alice, "WHOWAS bob")
    assert len(all_of(out, alice, p.RPL_WHOWASUSER)) == 2
    out = net.send(alice, "WHOWAS bob 1")
    assert len(all_of(out, alice, p.RPL_WHOWASUSER)) == 1
    when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(T0 + 3))
    numeric(out, alice, p.RPL_WHOISSERVER, "bob", SERVER, when)


def test_whowas_unknown_gets_406_and_369(net: Net, alice: User) -> None:
    out = net.send(alice, "WHOWAS nobody")
    assert commands(out, alice) == [p.ERR_WASNOSUCHNICK, p.RPL_ENDOFWHOWAS]
    numeric(out, alice, p.ERR_WASNOSUCHNICK, "nobody")


def test_whowas_without_params_gets_431(net: Net, alice: User) -> None:
    numeric(net.send(alice, "WHOWAS"), alice, p.ERR_NONICKNAMEGIVEN)


# server information -------------------------------------------------------------------------------


def test_motd_command() -> None:
    net = Net(Config(created=0.0, motd=["one"]))
    alice = net.register("alice")
    out = net.send(alice, "MOTD")
    assert commands(out, alice) == ["375", "372", "376"]
    numeric(out, alice, p.RPL_MOTD, "- one")


def test_motd_command_without_motd_gets_422(net: Net, alice: User) -> None:
    assert commands(net.send(alice, "MOTD"), alice) == [p.ERR_NOMOTD]


def test_lusers_counts(opnet: Net) -> None:
    alice, bob, carol = (opnet.register(n) for n in ("alice", "bob", "carol"))
    opnet.connect()  # never registers
    opnet.send(bob, "MODE bob +i")
    opnet.send(carol, "OPER admin hunter2")
    opnet.channel("#a", alice)
    opnet.channel("#b", alice)
    out = opnet.send(alice, "LUSERS")
    assert commands(out, alice) == ["251", "252", "253", "254", "255", "265", "266"]
    numeric(out, alice, p.RPL_LUSERCLIENT, "There are 2 users and 1 invisible on 1 servers")
    numeric(out, alice, p.RPL_LUSEROP, "1")
    numeric(out, alice, p.RPL_LUSERUNKNOWN, "1")
    numeric(out, alice, p.RPL_LUSERCHANNELS, "2")
    numeric(out, alice, p.RPL_LUSERME, "I have 3 clients and 0 servers")
    numeric(out, alice, p.RPL_LOCALUSERS, "3", "3")
    numeric(out, alice, p.RPL_GLOBALUSERS, "3", "3")


def test_version(net: Net, alice: User) -> None:
    out = net.send(alice, "VERSION")
    got = commands(out, alice)
    assert got[0] == p.RPL_VERSION
    assert set(got[1:]) == {p.RPL_ISUPPORT}
    numeric(out, alice, p.RPL_VERSION, f"tuichat-{__version__}", SERVER)
    assert "CASEMAPPING" in isupport(out, alice)


def test_time(net: Net, alice: User) -> None:
    out = net.send(alice, "TIME", now=0.0)
    line = numeric(out, alice, p.RPL_TIME, SERVER)
    assert "1970" in line.params[-1]


def test_info(net: Net, alice: User, bob: User) -> None:
    """RFC 2812 3.4.10: RPL_INFO lines, then one RPL_ENDOFINFO (irctest's info::testInfo)."""
    for request in ("INFO", f"INFO {SERVER}", "INFO *", "INFO BOB"):
        got = lines(net.send(alice, request), alice)
        assert [line.command for line in got[:-1]] == [p.RPL_INFO] * (len(got) - 1), request
        assert len(got) > 1 and all(line.params[0] == "alice" for line in got)
        assert got[-1].command == p.RPL_ENDOFINFO
    assert f"tuichat {__version__}" in lines(net.send(alice, "INFO"), alice)[0].params[1]
    for elsewhere in ("invalid.server.example", "invalidserver"):
        out = net.send(alice, f"INFO {elsewhere}")
        assert commands(out, alice) == [p.ERR_NOSUCHSERVER]
        numeric(out, alice, p.ERR_NOSUCHSERVER, elsewhere, "No such server")


def test_info_before_registration_is_refused(net: Net) -> None:
    stranger = net.connect()
    assert commands(net.send(stranger, "INFO"), stranger) == [p.ERR_NOTREGISTERED]


def test_ison(net: Net, alice: User, bob: User, carol: User) -> None:
    out = net.send(alice, "ISON BOB nobody carol")
    numeric(out, alice, p.RPL_ISON, "bob carol")
    numeric(net.send(alice, "ISON :nobody BOB"), alice, p.RPL_ISON, "bob")
    numeric(net.send(alice, "ISON nobody"), alice, p.RPL_ISON, "")
    numeric(net.send(alice, "ISON"), alice, p.ERR_NEEDMOREPARAMS, "ISON")


def test_userhost(opnet: Net) -> None:
    alice, bob = opnet.register("alice"), opnet.register("bob")
    opnet.send(bob, "OPER admin hunter2")
    out = opnet.send(alice, "USERHOST alice BOB nobody")
    numeric(out, alice, p.RPL_USERHOST, "alice=+~alice@127.0.0.1 bob*=+~bob@127.0.0.1")
    numeric(opnet.send(alice, "USERHOST"), alice, p.ERR_NEEDMOREPARAMS, "USERHOST")


def test_unknown_command_gets_421(net: Net, alice: User) -> None:
    out = net.send(alice, "frobnicate now")
    assert commands(out, alice) == [p.ERR_UNKNOWNCOMMAND]
    numeric(out, alice, p.ERR_UNKNOWNCOMMAND, "FROBNICATE")


def test_input_too_long_gets_417(net: Net, alice: User) -> None:
    out = Outbox()
    net.state.input_too_long(alice, out)
    numeric(out, alice, p.ERR_INPUTTOOLONG)
    assert out.closes == []
    pending = net.connect()
    out = Outbox()
    net.state.input_too_long(pending, out)
    assert lines(out, pending)[0].params[0] == "*"


# found in review ----------------------------------------------------------------------------------


def test_names_answers_each_channel_once_and_a_few_at_most(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #big")
    out = net.send(alice, "NAMES " + ",".join(["#big"] * 50))
    assert commands(out, alice).count(p.RPL_ENDOFNAMES) == 1
    out = net.send(alice, "NAMES #a,#b,#c,#d,#e,#f,#g")
    assert commands(out, alice).count(p.RPL_ENDOFNAMES) == net.state.config.maxtargets


def test_who_mask_replies_are_capped() -> None:
    net = Net(Config(created=0.0, who_limit=3))
    alice = net.register("alice")
    for i in range(5):
        net.register(f"user{i}")
    out = net.send(alice, "WHO user*")
    assert commands(out, alice) == [p.RPL_WHOREPLY] * 3 + [p.ERR_TOOMANYMATCHES, p.RPL_ENDOFWHO]
    assert "only the first 3" in all_of(out, alice, p.ERR_TOOMANYMATCHES)[0].params[-1]
    out = net.send(alice, "WHO *3")  # within the cap: no 416
    assert commands(out, alice) == [p.RPL_WHOREPLY, p.RPL_ENDOFWHO]


def test_who_refuses_a_mask_too_long() -> None:
    net = Net(Config(created=0.0, who_masklen=10))
    alice = net.register("alice")
    out = net.send(alice, "WHO " + "*" + "?" * 20)
    assert commands(out, alice) == [p.ERR_TOOMANYMATCHES, p.RPL_ENDOFWHO]
    out = net.send(alice, "WHO al*")
    assert commands(out, alice) == [p.RPL_WHOREPLY, p.RPL_ENDOFWHO]
