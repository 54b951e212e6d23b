"""Attacks on a live server: slowloris, a thousand idle connections, a client that never reads,
huge lines, invalid UTF-8 and NUL bytes, floods. In each, well-behaved users keep chatting.

The server runs in this process, so its memory is this process's VmRSS (Linux).
"""

from __future__ import annotations

import contextlib
import gc
import random
import re
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuichat.net.protocol import MAX_BODY, LineBuffer
from tuichat.server import ServerConfig
from tuichat.state import Config

from .helpers import HOST, OPER, Client, Connect, StartServer, read_until_closed

pytestmark = pytest.mark.timeout(60)


def rss_kb() -> int:
    """This process's resident set size, in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def chat_round_trips(alice: Client, bob: Client, channel: str, count: int) -> float:
    """alice and bob take turns saying numbered lines on `channel`; each must get every line of
    the other's, in order. Returns the slowest round trip, in seconds."""
    slowest = 0.0
    for i in range(count):
        for speaker, listener in ((alice, bob), (bob, alice)):
            started = time.monotonic()
            speaker.send(f"PRIVMSG {channel} :{speaker.nick} says {i}")
            match = listener.expect(rf"^:{speaker.nick}!\S+ PRIVMSG {channel} :\S+ says (\d+)$")
            assert int(match[1]) == i
            slowest = max(slowest, time.monotonic() - started)
    return slowest


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    """Raw sockets opened by a test, closed at teardown."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


# slowloris ----------------------------------------------------------------------------------------


def test_slowloris_connections_never_block_others_and_are_dropped(
    start_server: StartServer, connect: Connect, sockets: list[socket.socket]
) -> None:
    # without flood control: the round trips below measure the server, not alice's fakelag
    server = start_server(ServerConfig(flood_rate=0, state=Config(registration_timeout=1.0)))
    alice = connect("alice", server=server)
    alice.join("#c")
    slow = [socket.create_connection((HOST, server.port), timeout=5) for _ in range(20)]
    sockets.extend(slow)
    stop = threading.Event()
    closed: set[int] = set()

    def dribble() -> None:
        # one byte of a registration every 0.1 s on each: 3.5 s for a whole one, the server
        # gives 1 s; the waits pace the attack, they synchronise nothing
        for i in range(1000):
            for n, sock in enumerate(slow):
                payload = f"NICK slow{n}\r\nUSER slow 0 * :slow\r\n".encode()
                if n in closed or i >= len(payload):
                    continue
                try:
                    sock.send(payload[i : i + 1])
                except OSError:
                    closed.add(n)
            if stop.wait(0.1):
                return

    attacker = threading.Thread(target=dribble, daemon=True)
    attacker.start()
    try:
        # meanwhile people connect, register and talk as if nothing happened
        bob = connect("bob", server=server)
        bob.join("#c")
        assert chat_round_trips(alice, bob, "#c", 20) < 0.5
        for sock in slow:
            received = read_until_closed(sock, timeout=5)
            assert received.endswith(b"ERROR :Closing link (Registration timed out)\r\n")
            assert b" 001 " not in received
        assert chat_round_trips(alice, bob, "#c", 3) < 0.5
    finally:
        stop.set()
        attacker.join(5)


# a thousand idle connections --------------------------------------------------------------------


def test_a_thousand_idle_unregistered_connections(
    start_server: StartServer, connect: Connect, sockets: list[socket.socket]
) -> None:
    count = 1000
    # all from 127.0.0.1, so the per-address limits go up; no fakelag for the watcher's polling
    server = start_server(
        ServerConfig(max_per_ip=2 * count, connects_per_minute=2 * count, flood_rate=0)
    )
    # the server raised the file limit as far as it could: a client and a server end each
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * count + 200:
        pytest.skip(f"{soft} file descriptors are too few for {count} connections")
    watcher = connect("watcher", server=server)
    gc.collect()
    before = rss_kb()
    for _ in range(count):
        sockets.append(socket.create_connection((HOST, server.port), timeout=10))
    # the server holds them all (LUSERS counts the unregistered as unknown connections)
    deadline = time.monotonic() + 20
    while True:
        watcher.send("LUSERS")
        unknown = int(watcher.expect(r"^:tuichat 253 watcher (\d+) :unknown connection")[1])
        if unknown == count:
            break
        assert time.monotonic() < deadline, f"only {unknown} of {count} connections held"
    gc.collect()
    per_connection = (rss_kb() - before) / count
    print(f"\n{count} idle connections: {per_connection:.1f} KiB of RSS each")
    assert per_connection < 100
    # and a newcomer is served at once
    started = time.monotonic()
    alice = connect("alice", server=server)
    registered_in = time.monotonic() - started
    assert registered_in < 1.0
    watcher.join("#c")
    alice.join("#c")
    assert chat_round_trips(watcher, alice, "#c", 10) < 0.5
    # when they all go, the server is back to its users only
    for sock in sockets:
        sock.close()
    sockets.clear()
    deadline = time.monotonic() + 20
    while True:
        watcher.send("LUSERS")
        if int(watcher.expect(r"^:tuichat 253 watcher (\d+) ")[1]) == 0:
            break
        assert time.monotonic() < deadline, "the closed connections were not noticed"


# a client that never reads ----------------------------------------------------------------------


def test_a_client_that_never_reads_cannot_pile_up_history(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    """The strongest amplifier a client has: CHATHISTORY answers ~50 KB for a 35-byte line.
    One that asks again and again and never reads is cut off at its send queue."""
    sendq = 64 * 1024
    server = start_server(
        ServerConfig(db=str(db_path), sendq=sendq, state=Config(opers=dict([OPER])))
    )
    talker = connect("talker", server=server).oper()  # not throttled: fills the history fast
    reader = connect("reader", server=server)
    talker.join("#c")
    reader.join("#c")
    filler = "h" * 400
    talker.send_raw(b"".join(f"PRIVMSG #c :{i} {filler}\r\n".encode() for i in range(100)))
    reader.expect(rf"^:talker!\S+ PRIVMSG #c :99 {filler}$")
    sleeper = connect("sleeper", server=server, rcvbuf=4096)
    sleeper.join("#c")
    talker.sync()
    reader.sync()
    # 30 requests, within the flood queue: 1.5 MB of answers to a client that reads nothing
    started = time.monotonic()
    sleeper.send_raw(b"CHATHISTORY LATEST #c * 100\r\n" * 30)
    reader.expect(r"^:sleeper!\S+ QUIT :SendQ exceeded$", timeout=15)
    # cut off as soon as the queue was full: well before its 30 requests were answered
    assert time.monotonic() - started < (30 - server.config.flood_burst) / 2
    talker.send("PRIVMSG #c :unaffected")
    reader.expect(r"^:talker!\S+ PRIVMSG #c :unaffected$")
    assert connect("newcomer", server=server).sync() == []


# huge lines ---------------------------------------------------------------------------------------


def test_huge_lines_get_417_and_the_connection_stays_usable(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#c")
    bob.join("#c")
    bob.sync()
    gc.collect()
    before = rss_kb()
    # 32 MiB without a line end: the server keeps at most one line's worth of it
    chunk = b"PRIVMSG #c :" + b"x" * (64 * 1024 - 12)
    for _ in range(512):
        alice.send_raw(chunk)
    alice.send_raw(b"\r\n")
    alice.expect(r"^:tuichat 417 alice :Input line was too long$")
    grown = rss_kb() - before
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB while 32 MiB came in"
    # a tag section over 8191 bytes, and a body over 512 with a valid tag section
    alice.send("@+a=" + "t" * 9000 + " PRIVMSG #c :tags")
    alice.expect(r"^:tuichat 417 alice ")
    alice.send("@+a=b PRIVMSG #c :" + "y" * 600)
    alice.expect(r"^:tuichat 417 alice ")
    alice.send("PRIVMSG #c :after the huge lines")
    bob.expect(r"^:alice!\S+ PRIVMSG #c :after the huge lines$")
    assert [line for line in bob.sync() if "x" * 20 in line or "y" * 20 in line] == []
    assert alice.sync() == []


@pytest.mark.parametrize(
    ("command", "pattern"),
    [("PRIVMSG #c :", r"^:alice!\S+ PRIVMSG #c :w+$"), ("QUIT :", r"^:alice!\S+ QUIT :")],
)
def test_a_relayed_longest_line_still_fits_the_line_limit(
    connect: Connect, command: str, pattern: str
) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#c")
    bob.join("#c")
    bob.sync()
    alice.send(command + "w" * (510 - len(command)))  # exactly 512 bytes with CRLF: accepted
    line = bob.expect(pattern).string
    wire = (line + "\r\n").encode()
    assert list(LineBuffer().feed(wire)) == [line]  # what a tuichat client would read
    assert len(wire) <= MAX_BODY


# invalid UTF-8 and NUL ----------------------------------------------------------------------------

BAD = [b"\xff", b"\xc3", b"\x00", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xfe\xfe"]


def valid_wire_text(line: str) -> bool:
    """The server sent valid UTF-8 (no surrogate escapes) without NUL or CR."""
    return not re.search(r"[\udc80-\udcff\x00\r\n]", line)


def test_invalid_utf8_and_nul_in_every_field(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(flood_rate=0))  # a hundred lines in a row: no fakelag
    alice = connect("alice", server=server)
    bob = connect("bob", server=server)
    for client in (alice, bob):
        client.send("CAP REQ :message-tags")
        client.join("#c")
    alice.send("MODE #c +v bob")
    bob.sync()
    for bad in BAD:
        for line in (
            b"NICK al" + bad + b"ice",
            b"JOIN #c" + bad,
            b"PRIVMSG #c :text " + bad + b" text",
            b"PRIVMSG b" + bad + b"ob :to a mangled nick",
            b"NOTICE #c :" + bad,
            b"TOPIC #c :topic " + bad,
            b"AWAY :away " + bad,
            b"@+tag" + bad + b"=v" + bad + b" TAGMSG #c",
            b"@+draft/reply=" + bad + b" PRIVMSG #c :tagged",
            b"PART #c" + bad + b" :part " + bad,
            b"SETNAME :real " + bad,
            b"KICK #c b" + bad + b"ob :kick " + bad,
            b"MODE #c +b " + bad,
            b"WHOIS " + bad,
            b"PRIV" + bad + b"MSG #c :mangled command",
            bad + b" PRIVMSG #c :leading",
        ):
            alice.send(line)
    alice.send("PRIVMSG #c :still alive")
    bob.expect(r"^(@\S+ )?:alice!\S+ PRIVMSG #c :still alive$")
    lines = list(bob.seen) + bob.sync() + alice.sync()
    assert [line for line in lines if not valid_wire_text(line)] == []
    # nobody took a nick or a channel name with NUL or a replacement character in it
    alice.send("NAMES #c")
    names = alice.expect(r"^:tuichat 353 alice = #c :(.*)$")[1]
    assert sorted(names.split()) == ["+bob", "@alice"]
    alice.send("LIST")
    listed = []
    while " 323 " not in (line := alice.readline()):
        if " 322 " in line:
            listed.append(line.split()[3])
    assert all("\x00" not in name for name in listed)
    # the TOPIC with a NUL in it arrived as a replacement character
    bob.send("TOPIC #c")
    assert "\x00" not in bob.expect(r"^:tuichat 332 bob #c :(.*)$")[1]


def test_binary_garbage_from_an_unregistered_connection(
    start_server: StartServer, connect: Connect, sockets: list[socket.socket]
) -> None:
    server = start_server(ServerConfig(flood_rate=0))  # ~500 garbage lines: no fakelag
    alice = connect("alice", server=server)
    bob = connect("bob", server=server)
    alice.join("#c")
    bob.join("#c")
    sock = socket.create_connection((HOST, server.port), timeout=5)
    sockets.append(sock)
    sock.sendall(random.Random(2024).randbytes(64 * 1024))
    sock.sendall(b"\r\nNICK late\r\nUSER late 0 * :late\r\n")
    deadline = time.monotonic() + 10
    received = b""
    while b" 001 late " not in received:
        assert time.monotonic() < deadline, received[-300:]
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        assert data, received[-300:]
        received += data
    assert received.decode("utf-8")  # valid UTF-8 all along
    alice.send("PRIVMSG #c :unbothered")
    bob.expect(r"^:alice!\S+ PRIVMSG #c :unbothered$")


# floods -------------------------------------------------------------------------------------------


def test_a_flood_from_many_clients_does_not_disturb_a_conversation(
    start_server: StartServer, connect: Connect
) -> None:
    # a bucket roomy enough for alice and bob's quick exchange below; the floods exceed it
    server = start_server(ServerConfig(flood_burst=50, flood_rate=20))
    alice = connect("alice", server=server)
    bob = connect("bob", server=server)
    alice.join("#talk")
    bob.join("#talk")
    short = [connect(f"short{i}", server=server) for i in range(4)]
    long = [connect(f"long{i}", server=server) for i in range(3)]
    pinger = connect("pinger", server=server)
    for client in (*short, *long):
        client.join("#talk")
        client.join("#flood")
    alice.join("#flood")
    for client in (alice, bob):
        client.sync()
    stop = threading.Event()

    def ping_flood() -> None:
        with contextlib.suppress(OSError, AssertionError):
            while not stop.is_set() and not pinger.eof:
                pinger.send_raw(b"".join(b"PING %d\r\n" % i for i in range(50)))
                pinger.fill_nowait()
                pinger.take()

    flooding = threading.Thread(target=ping_flood, daemon=True)
    flooding.start()
    try:
        for client in short:  # a thousand lines each at once: cut off
            client.send_raw(b"".join(b"PRIVMSG #talk :%d\r\n" % i for i in range(1000)))
        for client in long:  # long lines: throttled (see test_limits)
            client.send_raw((b"PRIVMSG #flood :" + b"w" * 280 + b"\r\n") * 200)
        started = time.monotonic()
        slowest = chat_round_trips(alice, bob, "#talk", 20)
        print(f"\nslowest round trip under the flood: {slowest * 1000:.1f} ms")
        assert slowest < 0.5
        assert time.monotonic() - started < 10
        for client in short:
            client.expect(r"^ERROR :Closing link \(Excess Flood\)$")
        seen = [*bob.seen, *bob.sync()]
    finally:
        stop.set()
        flooding.join(5)
    quits = {line.split("!")[0][1:] for line in seen if re.match(r"^:short\d!\S+ QUIT ", line)}
    assert quits == {f"short{i}" for i in range(4)}
    # their thousand lines were dropped with them, not handed on
    assert [line for line in seen if re.match(r"^:short\d!\S+ PRIVMSG ", line)] == []
