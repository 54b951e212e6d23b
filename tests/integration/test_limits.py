"""The abuse limits of SECURITY.md, each with its own test: flood control, connection limits, the
registration timeout, channels per user, targets per message, name and text lengths, K-lines and
channel quiets.

Clients "from another address" bind to 127.0.0.2 or 127.0.0.3 (all of 127/8 is the loopback on
Linux), so per-address limits can be told from global ones.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import types
from pathlib import Path

import pytest

import tuichat.server
import tuichat.server.admission
from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import END_OF_WELCOME, OPER, Client, Connect, ConnectionClosed, StartServer

pytestmark = pytest.mark.timeout(30)

ELSEWHERE = "127.0.0.2"
THIRD = "127.0.0.3"


def isupport(client: Client, nick: str) -> dict[str, str]:
    """Register as `nick` and return the 005 tokens of the welcome burst."""
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    tokens: dict[str, str] = {}
    while True:
        line = client.readline()
        if re.match(END_OF_WELCOME, line):
            client.nick = nick
            return tokens
        match = re.match(rf"^:\S+ 005 {nick} (.*) :are supported by this server$", line)
        if match:
            for token in match[1].split():
                name, _, value = token.partition("=")
                tokens[name] = value


def refused(client: Client) -> str:
    """The reason in the ERROR line of a connection the server refused; it must then close."""
    reason = client.expect(r"^ERROR :Closing link \((.*)\)$")[1]
    assert client.expect_closed() == []
    return reason


def accepted(client: Client) -> bool:
    """Whether the server took this connection (it answers a PING) or refused it (ERROR)."""
    client.send("PING probe")
    try:
        line = client.readline()
    except ConnectionClosed:
        return False
    return re.match(r"^:\S+ PONG ", line) is not None


def quit_and_wait(client: Client) -> None:
    """QUIT and wait for the server to close: by then it has forgotten the connection."""
    client.send("QUIT")
    client.expect_closed()


def send_quietly(client: Client, data: bytes) -> None:
    """Send `data` (from a thread: it may block for long) until the connection is closed."""
    with contextlib.suppress(OSError):
        client.send_raw(data)


def privmsgs(lines: list[str], nick: str) -> list[str]:
    return [line for line in lines if re.match(rf"^:{nick}!\S+ PRIVMSG ", line)]


# flood control ------------------------------------------------------------------------------------


def test_a_pasted_20_lines_all_arrive_in_order_only_slowed(
    server: Server, connect: Connect
) -> None:
    burst, rate = server.config.flood_burst, server.config.flood_rate
    assert (burst, rate) == (10, 2.0)  # the defaults that SECURITY.md promises
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#c")
    bob.join("#c")
    alice.sync()
    started = time.monotonic()
    alice.send_raw(b"".join(f"PRIVMSG #c :line {i:02}\r\n".encode() for i in range(20)))
    # alice is made to wait, bob is not: his line overtakes the end of her paste
    bob.send("PRIVMSG #c :bob is not slowed")
    alice.expect(r"^:bob!\S+ PRIVMSG #c :bob is not slowed$", timeout=2)
    arrived: list[float] = []
    for i in range(20):
        assert int(bob.expect(r"^:alice!\S+ PRIVMSG #c :line (\d+)$", timeout=10)[1]) == i
        arrived.append(time.monotonic() - started)
    # the bucket held at most `burst` lines when the paste came; each later line waits its turn
    for i in range(burst, 20):
        assert arrived[i] >= (i + 1 - burst) / rate - 0.05, (i, arrived)
    assert arrived[-1] >= (20 - burst) / rate - 0.05
    assert arrived[4] < 1.0, arrived  # the start of the paste goes through at once
    assert alice.sync() == []  # slowed, not punished


def test_a_client_far_over_the_flood_queue_is_cut_off(server: Server, connect: Connect) -> None:
    assert server.config.flood_queue == 100
    bob = connect("bob")
    carol = connect("carol")
    flooder = connect("flooder")
    for client in (bob, carol, flooder):
        client.join("#c")
    bob.sync()
    # about 1000 lines in one write: one read of the server's sees far more than 100 waiting
    flooder.send_raw(b"".join(f"PRIVMSG #c :{i}\r\n".encode() for i in range(1000)))
    flooder.expect(r"^ERROR :Closing link \(Excess Flood\)$")
    flooder.expect_closed()
    lines = bob.sync()
    assert any(re.match(r"^:flooder!\S+ QUIT :Excess Flood$", line) for line in lines), lines
    # cut off on reading them: none of the thousand was handled
    assert privmsgs(lines, "flooder") == []
    bob.send("PRIVMSG #c :the server goes on")
    carol.expect(r"^:bob!\S+ PRIVMSG #c :the server goes on$")
    assert connect("dave").sync() == []


def test_a_client_that_keeps_flooding_long_lines_is_cut_off(
    server: Server, connect: Connect
) -> None:
    bob = connect("bob")
    flooder = connect("flooder")
    bob.join("#c")
    flooder.join("#c")
    bob.sync()
    # 400 lines of 300 bytes at once (120 KB): four times flood_queue, as in the test above
    line = b"PRIVMSG #c :" + b"x" * 286 + b"\r\n"
    assert len(line) == 300
    sender = threading.Thread(target=send_quietly, args=(flooder, line * 400), daemon=True)
    sender.start()
    flooder.expect(r"^ERROR :Closing link \(Excess Flood\)$", timeout=3)


def test_an_operator_is_not_throttled(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(state=Config(opers=dict([OPER]))))
    oper = connect("oper", server=server).oper()
    bob = connect("bob", server=server)
    oper.join("#c")
    bob.join("#c")
    oper.sync()
    bob.sync()
    # three times the flood queue at once: a normal user would be cut off, then wait 2.5 minutes
    count = 3 * server.config.flood_queue
    started = time.monotonic()
    oper.send_raw(b"".join(f"PRIVMSG #c :{i}\r\n".encode() for i in range(count)))
    for i in range(count):
        assert int(bob.expect(r"^:oper!\S+ PRIVMSG #c :(\d+)$")[1]) == i
    # throttled, the same would take (300 - 10) / 2 = 145 s
    assert time.monotonic() - started < 5
    assert oper.sync() == []


# connection limits --------------------------------------------------------------------------------


def test_max_clients(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(max_clients=3))
    alice = connect("alice", server=server)
    bob = connect("bob", server=server, source=ELSEWHERE)
    idle = connect(server=server)
    assert accepted(idle)
    for source in (None, THIRD):  # full for everybody, from any address
        assert refused(connect(server=server, source=source)) == "Server is full"
    # the three inside carry on
    alice.send("PRIVMSG bob :still here")
    bob.expect(r"^:alice!\S+ PRIVMSG bob :still here$")
    # a place that frees up is taken again
    quit_and_wait(idle)
    assert accepted(connect(server=server, source=THIRD))
    assert refused(connect(server=server)) == "Server is full"


def test_max_clients_per_address(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(max_per_ip=2))
    alice = connect("alice", server=server)
    idle = connect(server=server)
    assert accepted(idle)
    assert refused(connect(server=server)) == "Too many connections from your address"
    # another address has its own count
    bob = connect("bob", server=server, source=ELSEWHERE)
    assert accepted(connect(server=server, source=ELSEWHERE))
    assert refused(connect(server=server, source=ELSEWHERE)) == (
        "Too many connections from your address"
    )
    alice.send("PRIVMSG bob :hi from 127.0.0.1")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG bob :hi from 127\.0\.0\.1$")
    quit_and_wait(idle)
    assert accepted(connect(server=server))


def test_connects_per_minute(
    start_server: StartServer, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the limit counts on the monotonic clock: a shifted one lets the test skip a minute
    shift = [0.0]
    shifted = types.SimpleNamespace(**vars(time))
    shifted.monotonic = lambda: time.monotonic() + shift[0]
    monkeypatch.setattr(tuichat.server.admission, "time", shifted)
    server = start_server(ServerConfig(connects_per_minute=3))
    bob = connect("bob", server=server, source=ELSEWHERE)
    for _ in range(3):  # one at a time: never more than one open
        client = connect(server=server)
        assert accepted(client)
        quit_and_wait(client)
    assert refused(connect(server=server)) == "Connecting too fast; try again in a minute"
    # other addresses are not concerned, and those inside carry on
    alice = connect("alice", server=server, source=ELSEWHERE)
    alice.send("PRIVMSG bob :hello")
    bob.expect(r"^:alice!~alice@127\.0\.0\.2 PRIVMSG bob :hello$")
    # a minute later the address may connect again
    shift[0] = 61.0
    assert accepted(connect(server=server))


def test_registration_timeout_also_ends_an_endless_cap_negotiation(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(ServerConfig(state=Config(registration_timeout=0.5)))
    early = connect("early", server=server)
    # CAP LS holds registration until CAP END, which never comes; PINGs do not help either
    stuck = connect(server=server)
    stuck.send("CAP LS 302")
    stuck.send("NICK stuck")
    stuck.send("USER stuck 0 * :stuck")
    deadline = time.monotonic() + 5
    pings = 0
    while True:
        stuck.send(f"PING {pings}")
        line = stuck.expect(rf"^(:\S+ PONG \S+ :?{pings}|ERROR :.*)$")[0]
        if line.startswith("ERROR"):
            break
        pings += 1
        assert time.monotonic() < deadline, "the negotiating client was never dropped"
    assert line == "ERROR :Closing link (Registration timed out)"
    assert stuck.expect_closed() == []
    assert pings > 0
    assert early.sync() == []  # registered in time: untouched
    assert connect("stuck", server=server).sync() == []  # the nick is free again


# channels and targets -----------------------------------------------------------------------------


def test_max_channels_per_user(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(state=Config(chanlimit=3)))
    alice = connect(server=server)
    assert isupport(alice, "alice")["CHANLIMIT"] == "#:3"
    alice.send("JOIN #a,#b,#c,#d")
    alice.expect(r"^:tuichat 405 alice #d :You have joined too many channels$")
    alice.send("WHOIS alice")
    channels = alice.expect(r"^:tuichat 319 alice alice :(.*)$")[1]
    assert sorted(channels.split()) == ["@#a", "@#b", "@#c"]
    alice.send("PART #a")
    alice.join("#d")
    alice.send("JOIN #e")
    alice.expect(r"^:tuichat 405 alice #e ")


def test_max_targets(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(state=Config(maxtargets=2)))
    alice = connect(server=server)
    tokens = isupport(alice, "alice")
    assert tokens["MAXTARGETS"] == "2"
    assert "PRIVMSG:2" in tokens["TARGMAX"].split(",")
    bob, carol, dave = (connect(nick, server=server) for nick in ("bob", "carol", "dave"))
    alice.send("PRIVMSG bob,carol,dave :to three")
    alice.expect(r"^:tuichat 407 alice dave :Too many recipients$")
    bob.expect(r"^:alice!\S+ PRIVMSG bob :to three$")
    carol.expect(r"^:alice!\S+ PRIVMSG carol :to three$")
    assert privmsgs(dave.sync(), "alice") == []
    # the same target twice counts once; notices are cut the same way, silently
    alice.send("PRIVMSG bob,BOB,dave :twice")
    alice.send("NOTICE carol,dave,bob :noticed")
    dave.expect(r"^:alice!\S+ PRIVMSG dave :twice$")
    assert alice.sync() == []
    assert [line for line in dave.sync() if "noticed" in line] != []
    assert [line for line in bob.sync() if "noticed" in line] == []


# lengths ------------------------------------------------------------------------------------------

SHORT = Config(nicklen=9, channellen=12, topiclen=20, awaylen=15, kicklen=10)


@pytest.fixture
def short_server(start_server: StartServer) -> Server:
    return start_server(ServerConfig(state=SHORT))


def test_nicklen(short_server: Server, connect: Connect) -> None:
    alice = connect(server=short_server)
    assert isupport(alice, "alice")["NICKLEN"] == "9"
    alice.send("NICK " + "n" * 10)
    alice.expect(rf"^:tuichat 432 alice {'n' * 10} :Erroneous nickname$")
    alice.send("NICK " + "n" * 9)
    alice.expect(rf"^:alice!\S+ NICK :?{'n' * 9}$")
    newcomer = connect(server=short_server)
    newcomer.send("NICK " + "m" * 40)
    newcomer.expect(r"^:tuichat 432 \* m+ :Erroneous nickname$")


def test_channellen(short_server: Server, connect: Connect) -> None:
    alice = connect(server=short_server)
    assert isupport(alice, "alice")["CHANNELLEN"] == "12"
    longest, too_long = "#" + "c" * 11, "#" + "c" * 12
    alice.send(f"JOIN {too_long}")
    alice.expect(rf"^:tuichat 403 alice {too_long} :No such channel$")
    alice.join(longest)
    alice.send("LIST")
    listed = []
    while (line := alice.readline()) and " 323 " not in line:
        if " 322 " in line:
            listed.append(line.split()[3])
    assert listed == [longest]


def test_topiclen(short_server: Server, connect: Connect) -> None:
    alice = connect(server=short_server)
    assert isupport(alice, "alice")["TOPICLEN"] == "20"
    bob = connect("bob", server=short_server)
    alice.join("#c")
    bob.join("#c")
    alice.send("TOPIC #c :" + "t" * 30)
    assert bob.expect(r"^:alice!\S+ TOPIC #c :(.*)$")[1] == "t" * 20
    # cut in bytes, never inside a character
    alice.send("TOPIC #c :" + "é" * 15)
    assert bob.expect(r"^:alice!\S+ TOPIC #c :(.*)$")[1] == "é" * 10
    bob.send("TOPIC #c")
    assert bob.expect(r"^:tuichat 332 bob #c :(.*)$")[1] == "é" * 10


def test_awaylen(short_server: Server, connect: Connect) -> None:
    alice = connect(server=short_server)
    assert isupport(alice, "alice")["AWAYLEN"] == "15"
    bob = connect("bob", server=short_server)
    bob.send("AWAY :" + "a" * 40)
    bob.expect(r"^:tuichat 306 bob ")
    alice.send("PRIVMSG bob :are you there?")
    assert alice.expect(r"^:tuichat 301 alice bob :(.*)$")[1] == "a" * 15
    alice.send("WHOIS bob")
    assert alice.expect(r"^:tuichat 301 alice bob :(.*)$")[1] == "a" * 15


def test_kicklen(short_server: Server, connect: Connect) -> None:
    alice = connect(server=short_server)
    assert isupport(alice, "alice")["KICKLEN"] == "10"
    bob = connect("bob", server=short_server)
    carol = connect("carol", server=short_server)
    for client in (alice, bob, carol):
        client.join("#c")
    alice.send("KICK #c bob :" + "k" * 50)
    assert bob.expect(r"^:alice!\S+ KICK #c bob :(.*)$")[1] == "k" * 10
    assert carol.expect(r"^:alice!\S+ KICK #c bob :(.*)$")[1] == "k" * 10


# K-lines ------------------------------------------------------------------------------------------


@pytest.fixture
def oper_server(start_server: StartServer, db_path: Path) -> Server:
    """A server with a database (K-lines are kept there) and the `OPER` login."""
    return start_server(ServerConfig(db=str(db_path), state=Config(opers=dict([OPER]))))


def banned_at_registration(client: Client, nick: str, username: str | None = None) -> str:
    """Try to register; return the reason of the 465 that refuses it (and check the close)."""
    client.send(f"NICK {nick}")
    client.send(f"USER {username or nick} 0 * :{nick}")
    reason = client.expect(r"^:tuichat 465 \S+ :You are banned from this server: (.*)$")[1]
    client.expect(r"^ERROR :Closing link \(K-lined: .*\)$")
    assert client.expect_closed() == []
    return reason


def kline_list(oper: Client) -> list[str]:
    oper.send("KLINE")
    entries = []
    while True:
        text = oper.expect(r"^:tuichat NOTICE \S+ :(.*)$")[1]
        if text == "End of K-lines":
            return entries
        entries.append(text)


def test_kline_on_a_user_disconnects_and_refuses_them(
    oper_server: Server, connect: Connect
) -> None:
    oper = connect("oper", server=oper_server).oper()
    bob = connect("bob", server=oper_server)
    carol = connect("carol", server=oper_server)
    for client in (oper, bob, carol):
        client.join("#c")
    oper.send("KLINE bob@127.0.0.1 :spamming")
    oper.expect(r"^:tuichat NOTICE oper :K-line added for bob@127\.0\.0\.1$")
    bob.expect(r"^ERROR :.*K-lined: spamming")
    bob.expect_closed()
    carol.expect(r"^:bob!~bob@127\.0\.0\.1 QUIT :K-lined: spamming$")
    oper.expect(r"^:bob!~bob@127\.0\.0\.1 QUIT :K-lined: spamming$")
    # the mask is on the user name: a new nick does not help, another user is welcome
    assert banned_at_registration(connect(server=oper_server), "bob") == "spamming"
    assert banned_at_registration(connect(server=oper_server), "robert", "bob") == "spamming"
    assert connect("dave", server=oper_server).sync() == []
    assert carol.sync() == []
    (entry,) = kline_list(oper)
    assert re.fullmatch(r"K-line bob@127\.0\.0\.1 \(permanent\) by oper: spamming", entry)
    oper.send("UNKLINE bob@127.0.0.1")
    oper.expect(r"^:tuichat NOTICE oper :K-line for bob@127\.0\.0\.1 removed$")
    assert kline_list(oper) == []
    connect("bob", server=oper_server).join("#c")
    carol.expect(r"^:bob!~bob@127\.0\.0\.1 JOIN #c$")


def test_kline_with_a_duration_expires(oper_server: Server, connect: Connect) -> None:
    offset = [0.0]
    oper_server.clock = lambda: time.time() + offset[0]
    oper = connect("oper", server=oper_server).oper()
    bob = connect("bob", server=oper_server)
    oper.send("KLINE 60 bob@127.0.0.1 :cool off")
    oper.expect(r"^:tuichat NOTICE oper :K-line added for bob@127\.0\.0\.1 for 60s$")
    bob.expect(r"^ERROR :.*K-lined: cool off")
    bob.expect_closed()
    (entry,) = kline_list(oper)
    match = re.fullmatch(r"K-line bob@127\.0\.0\.1 \((\d+)s left\) by oper: cool off", entry)
    assert match is not None, entry
    assert 55 <= int(match[1]) <= 60
    offset[0] = 30.0
    assert banned_at_registration(connect(server=oper_server), "bob") == "cool off"
    offset[0] = 61.0
    assert connect("bob", server=oper_server).sync() == []
    assert kline_list(oper) == []


def test_kline_on_an_address_refuses_connections_before_registration(
    oper_server: Server, connect: Connect
) -> None:
    oper = connect("oper", server=oper_server, source=ELSEWHERE).oper()
    alice = connect("alice", server=oper_server)
    unregistered = connect(server=oper_server)
    assert accepted(unregistered)
    oper.send("KLINE *@127.0.0.1 :go away")
    oper.expect(r"^:tuichat NOTICE oper :K-line added for \*@127\.0\.0\.1$")
    alice.expect(r"^ERROR :.*K-lined: go away")
    alice.expect_closed()
    # a new connection from the address hears the reason before it says a word
    assert refused(connect(server=oper_server)) == "K-lined: go away"
    # one that was already there is refused when it registers
    assert banned_at_registration(unregistered, "late") == "go away"
    # other addresses are welcome
    carol = connect("carol", server=oper_server, source=THIRD)
    oper.send("UNKLINE *@127.0.0.1")
    oper.expect(r"^:tuichat NOTICE oper :K-line for \*@127\.0\.0\.1 removed$")
    alice = connect("alice", server=oper_server)
    alice.send("PRIVMSG carol :back")
    carol.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG carol :back$")


def test_klines_survive_a_restart(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    def restart() -> Server:
        return start_server(ServerConfig(db=str(db_path), state=Config(opers=dict([OPER]))))

    first = restart()
    oper = connect("oper", server=first, source=ELSEWHERE).oper()
    oper.send("KLINE bob@127.0.0.1 :forever")
    oper.expect(r"K-line added for bob@127\.0\.0\.1$")
    oper.send("KLINE 3600 *@127.0.0.3 :an hour")
    oper.expect(r"K-line added for \*@127\.0\.0\.3 for 3600s$")
    first.stop()

    second = restart()
    assert banned_at_registration(connect(server=second), "bob") == "forever"
    assert refused(connect(server=second, source=THIRD)) == "K-lined: an hour"
    oper = connect("oper", server=second, source=ELSEWHERE).oper()
    entries = kline_list(oper)
    assert len(entries) == 2
    assert any(
        re.fullmatch(r"K-line \*@127\.0\.0\.3 \(\d+s left\) by oper: an hour", e) for e in entries
    )
    oper.send("UNKLINE bob@127.0.0.1")
    oper.expect(r"K-line for bob@127\.0\.0\.1 removed$")
    second.stop()

    third = restart()
    assert connect("bob", server=third).sync() == []  # the removal was kept too
    assert refused(connect(server=third, source=THIRD)) == "K-lined: an hour"


def test_kline_needs_an_operator(oper_server: Server, connect: Connect) -> None:
    alice = connect("alice", server=oper_server)
    bob = connect("bob", server=oper_server)
    for command in (
        "KLINE bob@127.0.0.1 :no",
        "KLINE 60 bob@127.0.0.1 :no",
        "KLINE",
        "UNKLINE x@y",
    ):
        alice.send(command)
        alice.expect(r"^:tuichat 481 alice :Permission Denied- You're not an IRC operator$")
    alice.send(f"OPER {OPER[0]} wrong-password")
    alice.expect(r"^:tuichat 464 alice :Password incorrect$")
    alice.send("KLINE bob@127.0.0.1 :still no")
    alice.expect(r"^:tuichat 481 alice ")
    assert bob.sync() == []


@pytest.mark.parametrize(
    "mask",
    [
        "*@*",
        "*",
        "*!*@*",
        "*@*.*",
        "?*@*?",
        "~*@*",
        "^*@*",
    ],
)
def test_a_kline_that_would_ban_everyone_is_refused(
    oper_server: Server, connect: Connect, mask: str
) -> None:
    oper = connect("oper", server=oper_server).oper()
    bob = connect("bob", server=oper_server)
    oper.send(f"KLINE {mask} :everyone out")
    answer = oper.expect(r"^:tuichat (FAIL KLINE|NOTICE) .*$")[0]
    assert re.fullmatch(r":tuichat FAIL KLINE INVALID_MASK \S+ :.*ban everyone", answer), answer
    assert kline_list(oper) == []
    assert bob.sync() == []
    assert connect("carol", server=oper_server).sync() == []


# quiets -------------------------------------------------------------------------------------------


@pytest.fixture
def quiet_channel(connect: Connect) -> tuple[Client, Client, Client]:
    """alice (channel operator), bob and carol on #c, with bob quieted."""
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for client in (alice, bob, carol):
        client.join("#c")
    alice.send("MODE #c +q bob")
    for client in (alice, bob, carol):
        client.expect(r"^:alice!\S+ MODE #c \+q bob!\*@\*$")
    return alice, bob, carol


def test_a_quieted_user_is_not_heard(quiet_channel: tuple[Client, Client, Client]) -> None:
    alice, bob, carol = quiet_channel
    bob.send("PRIVMSG #c :can you hear me?")
    bob.expect(r"^:tuichat 404 bob #c :Cannot send to channel \(you're muted\)$")
    bob.send("NOTICE #c :a notice")  # no error for a notice, and no delivery either
    assert bob.sync() == []
    assert privmsgs(alice.sync(), "bob") == []
    assert [line for line in carol.sync() if line.startswith(":bob!")] == []
    # the quiet is about the channel: bob may still talk in private, and stays a member
    bob.send("PRIVMSG carol :psst")
    carol.expect(r"^:bob!\S+ PRIVMSG carol :psst$")
    alice.send("NAMES #c")
    assert "bob" in alice.expect(r"^:tuichat 353 alice = #c :(.*)$")[1].split()
    # lifting the quiet lets him speak
    alice.send("MODE #c -q bob!*@*")
    bob.expect(r"^:alice!\S+ MODE #c -q bob!\*@\*$")
    bob.send("PRIVMSG #c :thanks")
    carol.expect(r"^:bob!\S+ PRIVMSG #c :thanks$")


@pytest.mark.parametrize("mode", ["v", "o"])
def test_voice_or_ops_outrank_a_quiet(
    quiet_channel: tuple[Client, Client, Client], mode: str
) -> None:
    alice, bob, carol = quiet_channel
    alice.send(f"MODE #c +{mode} bob")
    bob.expect(rf"^:alice!\S+ MODE #c \+{mode} bob$")
    bob.send("PRIVMSG #c :privileged")
    carol.expect(r"^:bob!\S+ PRIVMSG #c :privileged$")
    alice.expect(r"^:bob!\S+ PRIVMSG #c :privileged$")
    alice.send(f"MODE #c -{mode} bob")
    bob.expect(rf"^:alice!\S+ MODE #c -{mode} bob$")
    bob.send("PRIVMSG #c :and now?")
    bob.expect(r"^:tuichat 404 bob #c ")
    assert privmsgs(carol.sync(), "bob") == []


def test_a_host_quiet_spares_the_channel_operator(
    quiet_channel: tuple[Client, Client, Client],
) -> None:
    alice, bob, carol = quiet_channel
    alice.send("MODE #c +q *!*@127.0.0.1")
    carol.expect(r"^:alice!\S+ MODE #c \+q \*!\*@127\.0\.0\.1$")
    carol.send("PRIVMSG #c :me too?")
    carol.expect(r"^:tuichat 404 carol #c ")
    alice.send("PRIVMSG #c :ops speak")
    bob.expect(r"^:alice!\S+ PRIVMSG #c :ops speak$")
    carol.expect(r"^:alice!\S+ PRIVMSG #c :ops speak$")


def test_the_quiet_list(quiet_channel: tuple[Client, Client, Client]) -> None:
    alice, bob, carol = quiet_channel
    alice.send("MODE #c +q *!*@example.com")
    alice.expect(r"MODE #c \+q \*!\*@example\.com$")
    bob.send("MODE #c +q carol")  # only channel operators set quiets
    bob.expect(r"^:tuichat 482 bob #c ")
    for client in (alice, bob):  # any member may read the list
        client.send("MODE #c q")
        entries = []
        while True:
            line = client.readline()
            if re.match(r"^:tuichat 729 ", line):
                assert re.fullmatch(
                    rf":tuichat 729 {client.nick} #c q :End of channel quiet list", line
                )
                break
            match = re.fullmatch(rf":tuichat 728 {client.nick} #c q (\S+) (\S+) :?(\d+)", line)
            assert match, line
            assert match[2] == "alice!~alice@127.0.0.1"
            assert abs(int(match[3]) - time.time()) < 60
            entries.append(match[1])
        assert entries == ["bob!*@*", "*!*@example.com"]
    assert privmsgs(carol.sync(), "bob") == []
