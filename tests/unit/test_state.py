"""Unit tests for the server state: feed parsed lines to `State.handle`, assert what each user gets.

No sockets, no threads, no clock: every call gets its time from the test.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuichat import __version__
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold, parse
from tuichat.state import Config, Outbox, State, User

T0 = 1_000_000.0
HOST = "127.0.0.1"
SERVER = "tuichat"


# harness ------------------------------------------------------------------------------------------


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


@pytest.fixture
def net() -> Net:
    return Net()


@pytest.fixture
def alice(net: Net) -> User:
    return net.register("alice")


@pytest.fixture
def bob(net: Net) -> User:
    return net.register("bob")


@pytest.fixture
def carol(net: Net) -> User:
    return net.register("carol")


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


# PING / PONG --------------------------------------------------------------------------------------


def test_ping_token_is_echoed(net: Net, alice: User) -> None:
    out = net.send(alice, "PING :some token")
    assert out.lines_for(alice) == [":tuichat PONG tuichat :some token"]


def test_ping_works_before_registration(net: Net) -> None:
    user = net.connect()
    assert only(net.send(user, "PING abc"), user, "PONG").params == (SERVER, "abc")


def test_ping_without_origin_gets_409(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PING"), alice, p.ERR_NOORIGIN)


def test_pong_gets_no_reply(net: Net, alice: User) -> None:
    assert net.send(alice, "PONG :tuichat").sends == []


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


# QUIT ---------------------------------------------------------------------------------------------


def test_quit_tells_each_neighbour_once_and_closes(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    dave = net.register("dave")
    net.channel("#a", alice, bob, carol)
    net.channel("#b", alice, bob)
    net.channel("#c", alice)
    prefix = alice.prefix
    out = net.send(alice, "QUIT :so long")
    assert out.lines_for(bob) == [f":{prefix} QUIT :Quit: so long"]
    assert out.lines_for(carol) == [f":{prefix} QUIT :Quit: so long"]
    silent(out, alice, dave)
    assert out.closes == [(alice, "Closing link (Quit: so long)")]
    assert sink_of(alice).closed == ["Closing link (Quit: so long)"]
    assert alice.gone
    assert alice not in net.state.clients
    assert net.state.find_user("alice") is None
    assert set(net.state.channels) == {"#a", "#b"}
    check_invariants(net.state)
    # nothing more is handled for a user who is gone
    assert net.send(alice, "PRIVMSG bob :ghost").sends == []


def test_quit_without_reason(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "QUIT")
    assert only(out, bob, "QUIT").params == ("Quit",)


def test_quit_before_registration(net: Net, alice: User) -> None:
    user = net.connect()
    net.send(user, "NICK bob")
    out = net.send(user, "QUIT :nah")
    assert [u for u, _ in out.closes] == [user]
    silent(out, alice, user)
    assert net.send(alice, "NICK bob").lines_for(alice)[0].endswith("NICK :bob")


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


# OPER / KILL --------------------------------------------------------------------------------------


@pytest.fixture
def opnet() -> Net:
    return Net(Config(created=0.0, opers={"admin": "hunter2"}))


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


# tick ---------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Net:
    return Net(
        Config(created=0.0, ping_interval=90.0, ping_timeout=120.0, registration_timeout=60.0)
    )


def test_tick_pings_idle_user_once(clock: Net) -> None:
    alice = clock.register("alice")
    assert clock.tick(T0 + 89).sends == []
    out = clock.tick(T0 + 90)
    assert out.lines_for(alice) == ["PING :tuichat"]
    assert clock.tick(T0 + 150).sends == []
    assert out.closes == []


def test_tick_activity_postpones_ping(clock: Net) -> None:
    alice = clock.register("alice")
    clock.send(alice, "LUSERS", now=T0 + 60)
    assert clock.tick(T0 + 100).sends == []
    assert clock.tick(T0 + 150).lines_for(alice) == ["PING :tuichat"]


def test_tick_pong_keeps_the_user(clock: Net) -> None:
    alice = clock.register("alice")
    clock.tick(T0 + 90)
    clock.send(alice, "PONG :tuichat", now=T0 + 95)
    out = clock.tick(T0 + 95 + 89)
    assert out.sends == []
    assert out.closes == []
    # the next ping comes one interval after the pong, and no timeout from the first one
    assert clock.tick(T0 + 95 + 90).lines_for(alice) == ["PING :tuichat"]
    assert clock.tick(T0 + 90 + 120).closes == []
    assert not alice.gone


def test_tick_ping_timeout_disconnects(clock: Net) -> None:
    alice, bob = clock.register("alice"), clock.register("bob")
    clock.channel("#a", alice, bob)
    clock.send(bob, "PING x", now=T0 + 200)
    clock.tick(T0 + 90)
    out = clock.tick(T0 + 209)
    assert out.closes == []
    out = clock.tick(T0 + 210)
    assert [user for user, _ in out.closes] == [alice]
    assert out.closes[0][1].startswith("Closing link (Ping timeout")
    quit_line = only(out, bob, "QUIT")
    assert quit_line.source == "alice!~alice@127.0.0.1"
    assert quit_line.params == ("Ping timeout: 210 seconds",)
    assert alice.gone
    assert not bob.gone


def test_tick_registration_timeout(clock: Net) -> None:
    alice = clock.register("alice")
    pending = clock.connect()
    clock.send(pending, "NICK slow")
    assert clock.tick(T0 + 59).closes == []
    out = clock.tick(T0 + 60)
    assert out.closes == [(pending, "Closing link (Registration timed out)")]
    assert pending.gone
    assert clock.state.nicks.keys() == {"alice"}
    assert not alice.gone


# disconnect ---------------------------------------------------------------------------------------


def test_disconnect_is_idempotent(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.disconnect(alice, "Read error")
    assert only(out, bob, "QUIT").params == ("Read error",)
    assert out.closes == [(alice, "Closing link (Read error)")]
    again = net.disconnect(alice, "Read error")
    assert again.sends == []
    assert again.closes == []
    assert sink_of(alice).closed == ["Closing link (Read error)"]


def test_disconnect_removes_empty_channels_only(net: Net, alice: User, bob: User) -> None:
    net.channel("#shared", alice, bob)
    net.channel("#alone", alice)
    net.disconnect(alice)
    assert set(net.state.channels) == {"#shared"}
    assert set(net.state.channels["#shared"].members) == {bob}
    check_invariants(net.state)


def test_disconnect_records_whowas(net: Net, alice: User, bob: User) -> None:
    net.disconnect(bob)
    numeric(net.send(alice, "WHOWAS bob"), alice, p.RPL_WHOWASUSER, "bob")


def test_disconnect_unregistered_frees_nick(net: Net) -> None:
    pending = net.connect()
    net.send(pending, "NICK alice")
    out = net.disconnect(pending)
    assert out.sends == []
    assert pending not in net.state.clients
    net.register("alice")


# malformed parameters -----------------------------------------------------------------------------

CRASHERS = [
    ("NICK :a b", {p.ERR_ERRONEUSNICKNAME}),
    ("NICK ::x", {p.ERR_ERRONEUSNICKNAME}),
    ("JOIN :#a b", {p.ERR_NOSUCHCHANNEL}),
    ("PART :#a b", {p.ERR_NOSUCHCHANNEL}),
    ("TOPIC :", {p.ERR_NOSUCHCHANNEL, p.ERR_NEEDMOREPARAMS}),
    ("NAMES :#a b", {p.RPL_ENDOFNAMES}),
    ("WHO :", {p.RPL_WHOREPLY, p.RPL_ENDOFWHO}),  # an empty mask lists everyone visible
    ("WHOIS :a b", {p.ERR_NOSUCHNICK}),
    ("WHOWAS :a b", {p.ERR_WASNOSUCHNICK}),
    ("MODE :", {p.ERR_NOSUCHNICK, p.ERR_NEEDMOREPARAMS}),
    ("INVITE bob :#a b", {p.ERR_NOSUCHCHANNEL}),
    ("KICK #ops :b c", {p.ERR_USERNOTINCHANNEL}),
    ("CAP :ls x", {p.ERR_INVALIDCAPCMD}),
]


@pytest.mark.parametrize(("raw", "expected"), CRASHERS, ids=[raw for raw, _ in CRASHERS])
def test_malformed_params_get_an_error_reply(net: Net, raw: str, expected: set[str]) -> None:
    alice, _bob = net.register("alice"), net.register("bob")
    net.channel("#ops", alice)
    out = net.send(alice, raw)
    got = commands(out, alice)
    assert got, raw
    assert got[0] in expected, got


def test_well_formed_params_do_not_crash(net: Net, alice: User) -> None:
    """The same commands with ordinary bad values work (the crash above is only the echo)."""
    net.channel("#ops", alice)
    for raw in ("NICK 1x", "JOIN x", "PART #x", "WHOIS x", "WHOWAS x", "KICK #ops x", "CAP x"):
        assert net.send(alice, raw).lines_for(alice), raw


# invariants under random traffic ------------------------------------------------------------------

_NICKS = ["alice", "bob", "carol", "Alice", "[x]", "{X}"]
_CHANS = ["#a", "#A", "#b"]
_TEMPLATES = [
    "NICK {nick}",
    "JOIN {chan}",
    "JOIN {chan},{chan2}",
    "JOIN 0",
    "PART {chan}",
    "PART {chan} :bye",
    "KICK {chan} {nick}",
    "MODE {chan} +o {nick}",
    "MODE {chan} -o {nick}",
    "MODE {chan} +i",
    "MODE {chan} +b {nick}",
    "MODE {chan} -b {nick}",
    "MODE {chan} +l 2",
    "MODE {chan} +k key",
    "INVITE {nick} {chan}",
    "PRIVMSG {chan},{nick} :hi",
    "TOPIC {chan} :t",
    "AWAY :x",
    "MODE {nick} +i",
    "WHO {chan}",
    "WHOIS {nick}",
    "NAMES {chan}",
    "QUIT :q",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from(_TEMPLATES),
            st.sampled_from(_NICKS),
            st.sampled_from(_CHANS),
            st.sampled_from(_CHANS),
        ),
        max_size=40,
    )
)
def test_random_traffic_keeps_state_consistent(
    steps: list[tuple[int, str, str, str, str]],
) -> None:
    net = Net()
    users = [net.register(nick) for nick in ("u0", "u1", "u2")]
    users.append(net.connect())
    for index, template, nick, chan, chan2 in steps:
        user = users[index]
        if user.gone:
            continue
        net.send(user, template.format(nick=nick, chan=chan, chan2=chan2))
        check_invariants(net.state)
    for user in users:
        net.disconnect(user)
    assert net.state.channels == {}
    assert net.state.nicks == {}
    assert net.state.clients == set()


# found in review ----------------------------------------------------------------------------------


def test_an_invitation_does_not_outlive_its_channel(net: Net, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #secret")
    net.send(alice, "INVITE bob #secret")
    net.send(alice, "PART #secret")  # the channel is gone, and the invitation with it
    carol = net.register("carol")
    net.send(carol, "JOIN #secret")
    net.send(carol, "MODE #secret +i")
    numeric(net.send(bob, "JOIN #secret"), bob, p.ERR_INVITEONLYCHAN, "#secret")


def test_names_answers_each_channel_once_and_a_few_at_most(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #big")
    out = net.send(alice, "NAMES " + ",".join(["#big"] * 50))
    assert commands(out, alice).count(p.RPL_ENDOFNAMES) == 1
    out = net.send(alice, "NAMES #a,#b,#c,#d,#e,#f,#g")
    assert commands(out, alice).count(p.RPL_ENDOFNAMES) == net.state.config.maxtargets


def test_a_ban_mask_with_a_space_is_refused(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #c")
    out = net.send(alice, "MODE #c +b :x y")
    assert net.state.channels["#c"].bans == []
    # refused with ERR_INVALIDMODEPARAM, as modern.ircdocs.horse advises (issue 10, item 14)
    assert [line.command for line in lines(out, alice)] == [p.ERR_INVALIDMODEPARAM]


def test_alone_in_a_channel_one_gets_no_copy_of_ones_message(net: Net, alice: User) -> None:
    net.send(alice, "JOIN #c")
    silent(net.send(alice, "PRIVMSG #c :anyone?"), alice)


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
