"""IRCv3 over real sockets: CAP 302, tags, echo, notifications, accounts (REGISTER, SASL, nick
protection), labeled-response, read markers; a client that asks for none of it; and a third-party
IRCv3 client library (ircrobots, with ircstates tracking the state) against the real server."""

from __future__ import annotations

import asyncio
import base64
import calendar
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ircrobots.bot import Bot
from ircrobots.ircv3 import Capability
from ircrobots.params import ConnectionParams, SASLUserPass
from ircrobots.sasl import SASLResult
from ircrobots.server import Server as RobotServer
from irctokens.line import Line as TokenLine
from irctokens.line import build

from tuichat.net.protocol import Line, parse
from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import HOST, Client, Connect, StartServer

ALL_CAPS = [
    "account-notify",
    "account-tag",
    "away-notify",
    "batch",
    "draft/chathistory",
    "draft/read-marker",
    "echo-message",
    "extended-join",
    "invite-notify",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "sasl",
    "server-time",
    "setname",
    "userhost-in-names",
]
PASSWORD = "correct-horse-battery"


def modern(connect: Connect, server: Server, nick: str, caps: list[str] = ALL_CAPS) -> Client:
    return connect(server=server).register_with_caps(nick, caps)


def got(client: Client, pattern: str, timeout: float = 5) -> Line:
    """The next line matching `pattern`, parsed."""
    return parse(client.expect(pattern, timeout).string)


def epoch_ms(stamp: str) -> int:
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000 + int(stamp[20:23])


def sasl_plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


# CAP ----------------------------------------------------------------------------------------------


def test_cap_ls_302_with_values_and_plain_cap_ls_without(
    history_server: Server, connect: Connect
) -> None:
    client = connect(server=history_server)
    client.send("CAP LS 302")
    caps = client.expect(r"^:tuichat CAP \* LS :(.*)$")[1].split()
    values = {cap.partition("=")[0]: cap.partition("=")[2] for cap in caps}
    assert values["sasl"] == "PLAIN"
    assert values["draft/account-registration"] == "before-connect"
    assert set(ALL_CAPS) <= set(values)
    old = connect(server=history_server)
    old.send("CAP LS")
    old_caps = old.expect(r"^:tuichat CAP \* LS :(.*)$")[1].split()
    assert sorted(old_caps) == sorted(values)
    client.send("CAP REQ :" + " ".join(ALL_CAPS))
    client.expect(r"^:tuichat CAP \* ACK :" + re.escape(" ".join(ALL_CAPS)) + "$")
    client.send("CAP LIST")
    listed = client.expect(r"^:tuichat CAP \* LIST :(.*)$")[1].split()
    assert set(listed) == {*ALL_CAPS, "cap-notify"}  # cap-notify comes with CAP LS 302
    client.send("NICK capper")
    client.send("USER capper 0 * :Capper")
    assert client.sync() == []  # registration waits for CAP END
    client.send("CAP END")
    client.expect(r"^:tuichat 001 capper ")


# tags, echo -----------------------------------------------------------------------------------


def test_typing_time_msgid_and_echo(history_server: Server, connect: Connect) -> None:
    typist = modern(connect, history_server, "typist")
    watcher = modern(connect, history_server, "watcher")
    plain = connect("plain", server=history_server)
    for client in (typist, watcher, plain):
        client.join("#t")
    typist.sync()
    watcher.sync()
    plain.sync()

    typist.send("@+typing=active TAGMSG #t")
    typing = got(watcher, r" TAGMSG #t$")
    assert typing.source == "typist!~typist@127.0.0.1"
    assert typing.tags["+typing"] == "active"
    assert {"msgid", "time", "+typing"} <= set(typing.tags)

    before = int(time.time() * 1000)
    typist.send("PRIVMSG #t :hello")
    message = got(watcher, r" PRIVMSG #t :hello$")
    echo = got(typist, r" PRIVMSG #t :hello$")
    after = int(time.time() * 1000)
    assert echo.tags["msgid"] == message.tags["msgid"]
    assert echo.tags["time"] == message.tags["time"]
    assert before - 1 <= epoch_ms(message.tags["time"]) <= after + 1
    assert history_server.store is not None
    assert history_server.store.find(message.tags["msgid"]) is not None
    # the client without capabilities: no TAGMSG, a plain PRIVMSG
    assert plain.sync() == [":typist!~typist@127.0.0.1 PRIVMSG #t :hello"]
    # private TAGMSG to someone without message-tags is dropped, to someone with it arrives
    typist.send("@+typing=paused TAGMSG plain")
    typist.send("@+typing=paused TAGMSG watcher")
    assert got(watcher, r" TAGMSG watcher$").tags["+typing"] == "paused"
    assert plain.sync() == []


# notifications ------------------------------------------------------------------------------------


def test_away_setname_invite_and_names(history_server: Server, connect: Connect) -> None:
    op = connect("op", server=history_server)
    op.join("#n")
    op.send("MODE #n +v op")
    watcher = modern(connect, history_server, "watcher")
    watcher.send("JOIN #n")
    names = got(watcher, r"^:\S+ 353 watcher = #n :")
    assert sorted(names.params[-1].split()) == [
        "@+op!~op@127.0.0.1",
        "watcher!~watcher@127.0.0.1",
    ]
    op.expect(r" JOIN #n$")
    op.send("AWAY :lunch")
    watcher.expect(r"^:op!~op@127\.0\.0\.1 AWAY :lunch$")
    op.send("AWAY")
    watcher.expect(r"^:op!~op@127\.0\.0\.1 AWAY$")
    op.send("SETNAME :Op Erator")  # op has no setname cap, watcher does
    watcher.expect(r"^:op!~op@127\.0\.0\.1 SETNAME :Op Erator$")
    friend = connect("friend", server=history_server)
    op.send("INVITE friend #n")
    friend.expect(r"^:op!~op@127\.0\.0\.1 INVITE friend :?#n$")
    watcher.expect(r"^:op!~op@127\.0\.0\.1 INVITE friend :?#n$")
    assert not any(" AWAY" in line or " SETNAME " in line for line in op.sync())


# accounts -----------------------------------------------------------------------------------------


def test_register_then_sasl_login(history_server: Server, connect: Connect) -> None:
    watcher = modern(connect, history_server, "watcher")
    watcher.join("#acc")
    newcomer = connect("newcomer", server=history_server)
    newcomer.join("#acc")
    watcher.expect(r":newcomer!~newcomer@127\.0\.0\.1 JOIN #acc \* :newcomer the tester$")
    newcomer.send("REGISTER * * short")
    newcomer.expect(r"^:\S+ FAIL REGISTER WEAK_PASSWORD newcomer :")
    newcomer.send(f"REGISTER * newcomer@example.com {PASSWORD}")
    newcomer.expect(r"^:\S+ REGISTER SUCCESS newcomer :")
    newcomer.expect(r"^:\S+ 900 newcomer newcomer!~newcomer@127\.0\.0\.1 newcomer :")
    # the account tag rides along: the watcher asked for account-tag
    watcher.expect(r"^@account=newcomer :newcomer!~newcomer@127\.0\.0\.1 ACCOUNT newcomer$")
    newcomer.send("PRIVMSG #acc :signed")
    assert got(watcher, r" PRIVMSG #acc :signed$").tags["account"] == "newcomer"
    newcomer.send("QUIT")
    newcomer.expect_closed()

    back = connect(server=history_server)
    back.send("CAP LS 302")
    back.send("CAP REQ :sasl")
    back.send("NICK newcomer")
    back.send("USER newcomer 0 * :newcomer the tester")
    back.send("AUTHENTICATE PLAIN")
    back.expect(r"^AUTHENTICATE \+$")
    back.send("AUTHENTICATE " + sasl_plain("newcomer", "wrong-password"))
    back.expect(r"^:\S+ 904 newcomer :")
    back.send("AUTHENTICATE PLAIN")
    back.expect(r"^AUTHENTICATE \+$")
    back.send("AUTHENTICATE *")
    back.expect(r"^:\S+ 906 newcomer :")
    back.send("AUTHENTICATE PLAIN")
    back.expect(r"^AUTHENTICATE \+$")
    back.send("AUTHENTICATE " + sasl_plain("newcomer", PASSWORD))
    back.expect(r"^:\S+ 900 newcomer newcomer!~newcomer@127\.0\.0\.1 newcomer :")
    back.expect(r"^:\S+ 903 newcomer :")
    back.send("CAP END")
    back.expect(r"^:\S+ 001 newcomer ")
    back.expect(r"^:\S+ 422 newcomer ")
    back.join("#acc")
    watcher.expect(r":newcomer!~newcomer@127\.0\.0\.1 JOIN #acc newcomer :newcomer the tester$")
    # logged in to its own nick: no warning, no renaming
    assert not any("NOTICE" in line for line in back.sync())


def test_registration_closed(start_server: StartServer, connect: Connect, db_path: Path) -> None:
    server = start_server(ServerConfig(db=str(db_path), state=Config(open_registration=False)))
    client = connect("hopeful", server=server)
    client.send(f"REGISTER * * {PASSWORD}")
    client.expect(r"^:\S+ FAIL REGISTER DISALLOWED hopeful :")


def test_require_tls_auth_refuses_plain(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    server = start_server(ServerConfig(db=str(db_path), state=Config(require_tls_auth=True)))
    client = connect(server=server)
    client.send("CAP REQ :sasl")
    client.send("NICK careful")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^:\S+ 904 careful :.*TLS")
    assert client.sync() == []  # no "AUTHENTICATE +": the password is never asked for


def test_a_registered_nick_is_taken_back(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    server = start_server(ServerConfig(db=str(db_path), state=Config(nick_grace=0.3)))
    owner = connect("owner", server=server)
    owner.send(f"REGISTER * * {PASSWORD}")
    owner.expect(r"^:\S+ REGISTER SUCCESS owner ")
    owner.send("QUIT")
    owner.expect_closed()
    witness = connect("witness", server=server)
    witness.join("#w")
    impostor = connect("owner", server=server)
    impostor.expect(r"^:\S+ NOTICE owner :.*registered")
    impostor.join("#w")
    renamed = got(impostor, r"^:owner!~owner@127\.0\.0\.1 NICK :?Guest\d+$")
    assert got(witness, r" NICK ") == renamed
    witness.send("WHOIS owner")
    witness.expect(r"^:\S+ 401 witness owner ")


# labeled-response, read markers -------------------------------------------------------------------


def test_labeled_responses(history_server: Server, connect: Connect) -> None:
    lab = modern(connect, history_server, "lab")
    lab.send("@label=p1 PING hello")
    lab.expect(r"^@label=p1 :tuichat PONG tuichat :hello$")
    lab.send("@label=a1 PONG :nothing")
    lab.expect(r"^@label=a1 :tuichat ACK$")
    lab.send("@label=w1 WHOIS lab")
    start = got(lab, r" BATCH \+\S+ labeled-response$")
    assert start.tags == {"label": "w1"}
    ref = start.params[0][1:]
    whois = []
    while (line := parse(lab.readline())).command != "BATCH":
        assert line.tags == {"batch": ref} and "label" not in line.tags
        whois.append(line.command)
    assert line.params == ("-" + ref,)
    assert whois[0] == "311" and whois[-1] == "318"
    # a nested chathistory batch: its lines carry only their own batch tag
    lab.join("#lh")
    lab.send("PRIVMSG #lh :one")
    lab.send("PRIVMSG #lh :two")
    lab.sync()
    lab.send("@label=h1 CHATHISTORY LATEST #lh * 5")
    outer = got(lab, r" BATCH \+\S+ labeled-response$")
    assert outer.tags == {"label": "h1"}
    inner = parse(lab.readline())
    assert inner.params[1:] == ("chathistory", "#lh")
    assert inner.tags == {"batch": outer.params[0][1:]}
    lines = [parse(lab.readline()), parse(lab.readline())]
    assert [line.params[1] for line in lines] == ["one", "two"]
    assert all(line.tags["batch"] == inner.params[0][1:] for line in lines)
    assert all("label" not in line.tags for line in lines)
    assert parse(lab.readline()).params == ("-" + inner.params[0][1:],)
    assert parse(lab.readline()).params == ("-" + outer.params[0][1:],)


def test_read_markers(history_server: Server, connect: Connect) -> None:
    reader = modern(connect, history_server, "reader")
    reader.send("MARKREAD #rm")
    reader.expect(r"^:tuichat MARKREAD #rm \*$")
    reader.join("#rm")  # markers are for conversations one has (a channel one is in)
    reader.send("MARKREAD #rm timestamp=2026-01-02T03:04:05.678Z")
    reader.expect(r"^:tuichat MARKREAD #rm timestamp=2026-01-02T03:04:05\.678Z$")
    reader.send("MARKREAD #rm timestamp=2020-01-01T00:00:00.000Z")
    reader.expect(r"^:tuichat MARKREAD #rm timestamp=2026-01-02T03:04:05\.678Z$")
    reader.send("PART #rm")
    reader.send("JOIN #rm")
    markers = [line for line in reader.sync() if " MARKREAD " in line]
    assert markers == [":tuichat MARKREAD #rm timestamp=2026-01-02T03:04:05.678Z"]


# a client that asks for nothing -------------------------------------------------------------------


def test_an_old_style_client_gets_plain_irc(history_server: Server, connect: Connect) -> None:
    """Whatever the modern clients around it do, a client that negotiated nothing gets plain
    lines: no tags, no batches, none of the IRCv3-only commands; and a join replay it can read."""
    plain = connect("plain", server=history_server)
    plain.join("#mix")
    modern_one = modern(connect, history_server, "modern")
    modern_one.send(f"REGISTER * * {PASSWORD}")
    modern_one.expect(r"^:\S+ REGISTER SUCCESS ")
    modern_one.join("#mix")
    modern_one.send("@+typing=active TAGMSG #mix")
    modern_one.send("@+typing=active TAGMSG plain")
    modern_one.send("@+draft/reply=x;label=l1 PRIVMSG #mix :hello everyone")
    modern_one.send("@label=l2 PRIVMSG plain :hello you")
    modern_one.send("NOTICE plain :a notice")
    modern_one.send("AWAY :away for a bit")
    modern_one.send("SETNAME :Modern Client")
    modern_one.send("MARKREAD #mix timestamp=2026-01-02T03:04:05.678Z")
    modern_one.send("CHATHISTORY LATEST #mix * 10")
    modern_one.sync()
    plain.send("PRIVMSG #mix :hi back")
    plain.send("PRIVMSG modern :private reply")
    plain.send("WHOIS modern")
    lines = plain.sync()
    assert not [line for line in lines if line.startswith("@")]
    assert {line.split()[1] for line in lines} <= {
        "JOIN",
        "PRIVMSG",
        "NOTICE",
        "301",  # RPL_AWAY for the private message and in WHOIS
        "311",
        "312",
        "317",
        "318",
        "319",
        "330",  # RPL_WHOISACCOUNT
    }, lines
    assert ":modern!~modern@127.0.0.1 JOIN #mix" in lines
    assert ":modern!~modern@127.0.0.1 PRIVMSG #mix :hello everyone" in lines
    assert ":modern!~modern@127.0.0.1 PRIVMSG plain :hello you" in lines
    assert ":modern!~modern@127.0.0.1 NOTICE plain :a notice" in lines
    # another old-style client joining gets the channel's past, stamped in the text
    late = connect("late", server=history_server)
    late.send("JOIN #mix")
    late.expect(r"^:\S+ 366 late #mix ")
    replay = late.sync()
    assert [re.sub(r"^(\S+ \S+ \S+ :)\[[-0-9: ]+\] ", r"\1", line) for line in replay] == [
        ":modern!~modern@127.0.0.1 PRIVMSG #mix :hello everyone",
        ":plain!~plain@127.0.0.1 PRIVMSG #mix :hi back",
    ]
    assert all(re.search(r" :\[\d{4}-\d\d-\d\d \d\d:\d\d\] ", line) for line in replay)


# a third-party IRCv3 client library ---------------------------------------------------------------


class RecordingServer(RobotServer):
    """An ircrobots connection that asks for more than its defaults and keeps what it reads."""

    def __init__(self, bot: Bot, name: str) -> None:
        super().__init__(bot, name)
        self.desired_caps.update(
            {
                Capability("server-time"),
                Capability("echo-message"),
                Capability("labeled-response"),
                Capability(None, "draft/chathistory"),
            }
        )
        self.read: list[TokenLine] = []

    async def line_read(self, line: TokenLine) -> None:
        self.read.append(line)

    def set_throttle(self, rate: int, time: float) -> None:
        # the library throttles to 4 lines per 2 s after the welcome; a local test server
        # needs no flood protection
        super().set_throttle(max(rate, 100), time)


class RecordingBot(Bot):
    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def create_server(self, name: str) -> RecordingServer:
        return RecordingServer(self, name)


async def until(condition: Callable[[], object], what: str, timeout: float = 10) -> None:
    """Let the event loop run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.timeout(30)
async def test_ircrobots_negotiates_and_tracks_state(
    history_server: Server, connect: Connect
) -> None:
    maker = connect("robot", server=history_server)
    maker.send("REGISTER * * robot-password")
    maker.expect(r" REGISTER SUCCESS robot ")
    maker.send("QUIT")
    maker.expect_closed()

    bot = RecordingBot()
    params = ConnectionParams(
        "robot",
        HOST,
        history_server.port,
        tls=None,
        sasl=SASLUserPass("robot", "robot-password"),
        autojoin=["#robots"],
    )
    robot = await bot.add_server("tuichat", params)
    assert isinstance(robot, RecordingServer)
    running = asyncio.create_task(bot.run())  # type: ignore[no-untyped-call]
    try:
        await until(lambda: "#robots" in robot.channels, "the autojoin")
        assert {
            "sasl",
            "server-time",
            "echo-message",
            "labeled-response",
            "draft/chathistory",
            "message-tags",
            "batch",
            "multi-prefix",
            "away-notify",
            "account-notify",
            "account-tag",
            "extended-join",
            "invite-notify",
            "setname",
            "cap-notify",
        } <= set(robot.agreed_caps)
        assert robot.sasl_state == SASLResult.SUCCESS
        assert robot.account == "robot"
        assert robot.isupport.network == "tuichat"
        assert robot.nickname == "robot"  # logged in: not renamed

        friend = connect("friend", server=history_server)
        friend.send(f"REGISTER * * {PASSWORD}")
        friend.expect(r" REGISTER SUCCESS friend ")
        friend.join("#robots")
        await until(lambda: "friend" in robot.users, "friend's join")
        assert robot.users["friend"].account == "friend"  # extended-join
        assert robot.users["friend"].realname == "friend the tester"
        friend.send("AWAY :lunch")
        await until(lambda: robot.users["friend"].away == "lunch", "away-notify")
        friend.send("SETNAME :Friendly Name")
        await until(lambda: robot.users["friend"].realname == "Friendly Name", "setname")

        friend.send("PRIVMSG #robots :hello robot")
        await until(
            lambda: any(line.params[-1:] == ["hello robot"] for line in robot.read),
            "friend's message",
        )
        [hello] = [line for line in robot.read if line.params[-1:] == ["hello robot"]]
        assert hello.tags is not None
        assert {"time", "msgid"} <= set(hello.tags)
        assert hello.tags["account"] == "friend"

        # the library labels what it sends; its echo comes back labeled
        await robot.send(build("PRIVMSG", ["#robots", "hello friend"]))
        await asyncio.to_thread(friend.expect, r"^:robot!~robot@127\.0\.0\.1 PRIVMSG #robots")
        await until(
            lambda: any(
                line.command == "PRIVMSG" and line.tags and "label" in line.tags
                for line in robot.read
            ),
            "the labeled echo",
        )
        # history through the library's connection (its label wraps the chathistory batch)
        await robot.send(build("CHATHISTORY", ["LATEST", "#robots", "*", "10"]))

        def history() -> list[str] | None:
            starts = [
                line.params[0][1:]
                for line in robot.read
                if line.command == "BATCH" and line.params[1:] == ["chathistory", "#robots"]
            ]
            if not starts or ["-" + starts[0]] not in [line.params for line in robot.read]:
                return None
            return [
                line.params[1]
                for line in robot.read
                if line.command == "PRIVMSG" and (line.tags or {}).get("batch") == starts[0]
            ]

        await until(history, "the history batch")
        assert history() == ["hello robot", "hello friend"]
    finally:
        # cancelled, the library leaves its reader tasks behind: reap every task, so that none
        # ends later (at garbage collection) with an exception nobody retrieved
        leftovers = {running, *asyncio.all_tasks()} - {asyncio.current_task()}
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        await robot.disconnect()  # type: ignore[no-untyped-call]
