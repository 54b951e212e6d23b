"""Live fuzzing: several connections send thousands of random and mutated lines while two
well-behaved users chat. The server stays up, the two get every message of each other in order,
nobody receives a line that is not valid UTF-8 or that smuggles a line break, memory stays
bounded, and the server logs no error (the `start_server` fixture fails the test on one).

Random with fixed seeds, not hypothesis: one run is a few thousand lines per connection, and a
failure is reproduced by running the test again. TUICHAT_FUZZ_SEED=<n> runs other seeds.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import re
import selectors
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import HOST, Client, Connect, StartServer

pytestmark = pytest.mark.timeout(60)

SEED = int(os.environ.get("TUICHAT_FUZZ_SEED", "20260105"))
FUZZERS = 8
LINES_EACH = 4000

# Lines a client might send, with the names the well-behaved users use: mutations of these reach
# deep into the commands, random bytes test the parser.
CORPUS = [
    b"NICK fuzz",
    b"USER fuzz 0 * :Fuzz Fuzzer",
    b"JOIN #chat",
    b"JOIN #f1,#chat,#f2 key1,key2",
    b"JOIN 0",
    b"PART #chat :bye",
    b"PART #f1,#f2",
    b"PRIVMSG #chat :hello there",
    b"PRIVMSG alice,bob,#chat,#f1 :to many",
    b"PRIVMSG alice :\x01VERSION\x01",
    b"PRIVMSG alice :\x01ACTION waves\x01",
    b"NOTICE #chat :a notice",
    b"NOTICE bob :psst",
    b"@+typing=active TAGMSG #chat",
    b"@+draft/reply=abc;+draft/react=x TAGMSG alice",
    b"@label=l1 PRIVMSG #chat :labelled",
    b"@label=l2 WHO #chat",
    b"MODE #chat +o fuzz",
    b"MODE #chat +b *!*@*",
    b"MODE #chat +q alice",
    b"MODE #chat -o alice",
    b"MODE #chat",
    b"MODE #chat b",
    b"MODE #chat q",
    b"MODE #f1 +ntimslk 5 key",
    b"MODE #f1 +bbbbbbb a b c d e f g",
    b"MODE #f1 +ov-ov fuzz fuzz fuzz fuzz",
    b"MODE #f1 +l -5",
    b"MODE fuzz +i",
    b"MODE fuzz -i+o",
    b"MODE alice +i",
    b"TOPIC #chat :a new topic",
    b"TOPIC #f1 :mine",
    b"TOPIC #chat",
    b"KICK #chat alice :out",
    b"KICK #f1 fuzz,alice :bye",
    b"INVITE alice #f1",
    b"WHO #chat",
    b"WHO alice o",
    b"WHO *",
    b"WHOIS alice",
    b"WHOIS bob,alice",
    b"WHOWAS fuzz",
    b"LIST",
    b"LIST >1",
    b"LIST #chat,#f1",
    b"NAMES #chat",
    b"NAMES",
    b"AWAY :gone fishing",
    b"AWAY",
    b"ISON alice bob fuzz",
    b"USERHOST alice bob",
    b"LUSERS",
    b"MOTD",
    b"VERSION",
    b"TIME",
    b"PING :token",
    b"PONG :token",
    b"CAP LS 302",
    b"CAP LS",
    b"CAP REQ :message-tags batch server-time echo-message draft/chathistory labeled-response",
    b"CAP REQ :-echo-message",
    b"CAP REQ :nonsense",
    b"CAP LIST",
    b"CAP END",
    b"AUTHENTICATE PLAIN",
    b"AUTHENTICATE +",
    b"AUTHENTICATE AGFsaWNlAHNlY3JldHBhc3M=",
    b"AUTHENTICATE *",
    b"CHATHISTORY LATEST #chat * 50",
    b"CHATHISTORY BEFORE #chat timestamp=2030-01-01T00:00:00.000Z 20",
    b"CHATHISTORY AFTER #chat timestamp=2000-01-01T00:00:00.000Z 20",
    b"CHATHISTORY AROUND #chat msgid=abc 10",
    b"CHATHISTORY BETWEEN #chat timestamp=2000-01-01T00:00:00.000Z * 10",
    b"CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2030-01-01T00:00:00.000Z 5",
    b"CHATHISTORY LATEST alice * 5",
    b"MARKREAD #chat timestamp=2025-01-01T00:00:00.000Z",
    b"MARKREAD #chat",
    b"SETNAME :a new real name",
    b"REGISTER * fuzz@example.com",
    b"VERIFY fuzz 123456",
    b"OPER tester not-the-password",
    b"KILL alice :bye",
    b"KLINE *@* :everyone",
    b"KLINE 60 alice@127.0.0.1 :x",
    b"UNKLINE *@*",
    b"PASS secret",
    b"QUIT :fuzzed out",
    b"QUIT",
    # once closed the sender's connection with "Internal error" (issue 10, item 14)
    "CAP LS \u00b2".encode(),
    "CHATHISTORY LATEST #chat * \u00b2".encode(),
    "CHATHISTORY BEFORE #chat timestamp=2026-01-01T00:00:00.\u00b2Z 5".encode(),
    b"MODE #chat +k-k ::x",
]

SPECIAL = [
    b" ",
    b":",
    b"@",
    b";",
    b"=",
    b",",
    b"!",
    b"#",
    b"*",
    b"\\",
    b"\x00",
    b"\x01",
    b"\x03",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xae",
    b"\r",
    b"\n",
    b"\t",
    b"+",
    b"-",
    b"~",
    b"&",
]


def mutate(rng: random.Random, line: bytes) -> bytes:
    """One to three random edits of `line`."""
    data = bytearray(line)
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(9)
        at = rng.randint(0, len(data))
        if choice == 0 and data:  # flip a byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 1:  # insert special bytes
            data[at:at] = rng.choice(SPECIAL) * rng.randint(1, 4)
        elif choice == 2 and data:  # delete a range
            data[at : at + rng.randint(1, 8)] = b""
        elif choice == 3 and data:  # repeat a range
            end = min(len(data), at + rng.randint(1, 16))
            data[at:at] = data[at:end] * rng.randint(2, 40)
        elif choice == 4:  # cut short
            del data[at:]
        elif choice == 5:  # splice with another line
            other = rng.choice(CORPUS)
            data[at:] = other[rng.randint(0, len(other)) :]
        elif choice == 6:  # a long parameter
            data += b" " + bytes([rng.randrange(33, 127)]) * rng.randint(100, 700)
        elif choice == 7:  # tags in front
            tags = b";".join(
                b"+k%d=%s" % (i, bytes(rng.randrange(32, 256) for _ in range(rng.randint(0, 30))))
                for i in range(rng.randint(1, 6))
            )
            data[:0] = b"@" + tags + b" "
        else:  # a source in front
            data[:0] = b":alice!~alice@127.0.0.1 "
    return bytes(data)


def random_line(rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(0, 600))
    words = [
        rng.choice(SPECIAL) + bytes(rng.randrange(33, 127) for _ in range(rng.randint(0, 12)))
        for _ in range(rng.randint(1, 12))
    ]
    return b" ".join(words)


def bad_lines(data: bytes) -> list[bytes]:
    """Lines from the server that are not valid UTF-8, hold NUL, or hold a CR or LF that is not
    their ending (a second line smuggled into one)."""
    bad = []
    for raw in data.split(b"\r\n"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(raw)
            continue
        if b"\x00" in raw or b"\r" in raw or b"\n" in raw:
            bad.append(raw)
    return bad


class Fuzzer(threading.Thread):
    """One hostile connection (reconnecting when the server closes it) sending `count` lines.

    One that reads waits for the answer to a PING after each batch, so that every line it sent
    was handled before it goes on (a socket closed with unread data is reset, and the server
    would never see what was still in flight). One that does not read keeps its connection open
    until the test ends."""

    def __init__(self, port: int, index: int, count: int, *, reads: bool) -> None:
        super().__init__(name=f"fuzzer-{index}", daemon=True)
        self.port = port
        self.index = index
        self.count = count
        self.reads = reads
        self.rng = random.Random(SEED + index)
        self.sent = 0
        self.connections = 0
        self.bad: list[bytes] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._tail = b""
        self._lines: list[bytes] = []

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.connections += 1
        self._tail = b""
        if self.rng.random() < 0.8:  # most register first, some fuzz the unregistered state
            nick = f"fuzz{self.index}x{self.connections}"
            self._send(sock, f"NICK {nick}\r\nUSER {nick} 0 * :fuzz\r\n".encode())
        return sock

    def _send(self, sock: socket.socket, data: bytes) -> None:
        """Send it all, reading meanwhile (if this fuzzer reads) so both sides keep moving."""
        view = memoryview(data)
        while view and not self.stop.is_set():
            try:
                sent = sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                if not self._drain(sock):
                    raise ConnectionResetError("closed by the server") from None
                self.stop.wait(0.001)

    def _drain(self, sock: socket.socket) -> bool:
        """Read what there is; False once the server has closed the connection."""
        if not self.reads:
            return True
        while True:
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            data = self._tail + data
            complete, _, self._tail = data.rpartition(b"\r\n")
            self.bad += bad_lines(complete)
            self._lines += complete.split(b"\r\n")

    def _sync(self, sock: socket.socket, token: bytes) -> bool:
        """Read up to the PONG for `token`; False if the server closed the connection first."""
        deadline = time.monotonic() + 10
        while True:
            if not self._drain(sock):
                return False
            if any(line.endswith(b" :" + token) for line in self._lines if b" PONG " in line):
                return True
            assert time.monotonic() < deadline, f"{self.name}: no PONG for {token!r}"
            selectors_wait(sock)

    def _batch(self) -> bytes:
        lines = []
        for _ in range(self.rng.randint(1, 30)):
            pick = self.rng.random()
            if pick < 0.2:
                line = random_line(self.rng)
            elif pick < 0.35:
                line = self.rng.choice(CORPUS)
            else:
                line = mutate(self.rng, self.rng.choice(CORPUS))
            lines.append(line + self.rng.choice([b"\r\n", b"\n", b"\r"]))
        self.sent += len(lines)
        return b"".join(lines)

    def run(self) -> None:
        try:
            while self.sent < self.count and not self.stop.is_set():
                sock = self._connect()
                try:
                    while self.sent < self.count and not self.stop.is_set():
                        batch = self._batch()
                        token = b"sync%d" % self.sent
                        self._lines.clear()
                        self._send(sock, batch + b"PING :" + token + b"\r\n")
                        if self.reads and not self._sync(sock, token):
                            break
                    if not self.reads:
                        self.stop.wait()
                except (ConnectionResetError, BrokenPipeError):
                    pass
                finally:
                    sock.close()
        except BaseException as error:  # reported by the test
            self.error = error


def selectors_wait(sock: socket.socket) -> None:
    """Wait (at most 0.1 s) for `sock` to have something to read."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        selector.select(0.1)


def test_fuzzers_do_not_disturb_two_users_chatting(
    start_server: StartServer, connect: Connect, tmp_path: Path
) -> None:
    server: Server = start_server(
        ServerConfig(
            db=str(tmp_path / "fuzz.db"),
            flood_rate=0,  # the fuzzers send thousands of lines: no fakelag for anyone
            max_per_ip=0,
            connects_per_minute=0,
            state=Config(opers={"tester": "tester-password"}),
        )
    )
    alice = connect("alice", server=server)
    bob = connect("bob", server=server)
    alice.join("#chat")
    bob.join("#chat")
    alice.send("MODE #chat +nt")  # outsiders may not talk in it, only ops set its topic
    alice.send("MODE #chat")
    assert set("nt") <= set(alice.expect(r"^:tuichat 324 alice #chat :?\+(\w+)")[1])
    bob.sync()
    gc.collect()
    before = rss_kb()
    blocks = sys.getallocatedblocks()
    fuzzers = [Fuzzer(server.port, i, LINES_EACH, reads=i != FUZZERS - 1) for i in range(FUZZERS)]
    for fuzzer in fuzzers:
        fuzzer.start()
    rounds = 0
    started = time.monotonic()
    try:
        # the two chat until the fuzzers are done, and a while more
        while any(f.is_alive() and f.sent < f.count for f in fuzzers) or rounds < 50:
            assert time.monotonic() - started < 40, "the fuzzers never finished"
            exchange(alice, bob, "#chat", rounds)
            exchange(bob, alice, "alice", rounds)  # in private, too
            rounds += 1
            # a round per ~20 fuzz lines: the chat runs through the whole fuzz, without
            # drowning it (a bounded wait for the fuzzers' progress, no fixed sleep)
            progress = sum(f.sent for f in fuzzers) + 20
            while sum(f.sent for f in fuzzers) < progress and any(
                f.is_alive() and f.sent < f.count for f in fuzzers
            ):
                assert time.monotonic() - started < 40, "the fuzzers are stuck"
                time.sleep(0.001)
    finally:
        for fuzzer in fuzzers:
            fuzzer.stop.set()
        for fuzzer in fuzzers:
            fuzzer.join(5)
    print(f"\nlines sent: {[f.sent for f in fuzzers]}")
    print(f"connections: {[f.connections for f in fuzzers]}")
    for fuzzer in fuzzers:
        assert fuzzer.error is None, f"{fuzzer.name}: {fuzzer.error!r}"
        assert fuzzer.bad == [], f"{fuzzer.name} got bad lines: {fuzzer.bad[:5]}"
    total = sum(fuzzer.sent for fuzzer in fuzzers)
    assert total >= FUZZERS * LINES_EACH
    # everything that reached alice and bob was well-formed too
    for client in (alice, bob):
        for line in (*client.seen, *client.sync()):
            assert not re.search(r"[\udc80-\udcff\x00\r\n]", line), line
    # the server still serves newcomers, and its memory did not run away
    carol = connect("carol", server=server)
    carol.join("#chat")
    alice.send("PRIVMSG #chat :welcome carol")
    carol.expect(r"^:alice!\S+ PRIVMSG #chat :welcome carol$")
    gc.collect()
    grown = rss_kb() - before
    objects = sys.getallocatedblocks() - blocks
    print(
        f"\n{total} fuzz lines over {sum(f.connections for f in fuzzers)} connections, "
        f"{rounds} chat rounds, RSS +{grown} KiB, Python blocks +{objects}"
    )
    # Python objects: what is left is whowas entries and the like, a few per connection
    assert objects < 50_000
    # RSS: SQLite's allocations in many threads stay in glibc's per-thread arenas (a few tens of
    # MiB here, bounded by the number of arenas); it must not grow with the lines sent
    assert grown < 256 * 1024


def exchange(speaker: Client, listener: Client, target: str, n: int) -> None:
    """`speaker` says line `n` to `target`; `listener` must get it next of all that speaker's
    lines (anything the fuzzers send in between is skipped)."""
    speaker.send(f"PRIVMSG {target} :{speaker.nick} line {n}")
    match = listener.expect(rf"^:{speaker.nick}!\S+ PRIVMSG {target} :(.*)$", timeout=10)
    assert match[1] == f"{speaker.nick} line {n}"


def rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# crashes the live fuzz found ------------------------------------------------------------------


@pytest.fixture
def unchecked_server(tmp_path: Path) -> Iterator[Server]:
    """A history server whose logged errors the test checks itself (the `start_server` fixture
    would fail the teardown of an expected failure)."""
    server = Server(ServerConfig(host=HOST, port=0, db=str(tmp_path / "crash.db")))
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "text",
    ["CHATHISTORY :LATEST #chat * 10", "CHATHISTORY :", "MARKREAD :#chat x", "MARKREAD :"],
)
def test_a_malformed_history_command_is_answered(
    unchecked_server: Server, connect: Connect, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.INFO, logger="tuichat")
    alice = connect("alice", server=unchecked_server)
    alice.join("#chat")
    alice.send(text)
    answers = alice.sync()  # fails if the server closed the connection instead of answering
    assert [line for line in answers if line.startswith("ERROR")] == []
    alice.send("NAMES #chat")  # and it is still served
    assert alice.expect(r"^:tuichat 353 alice = #chat :(.*)$")[1] == "@alice"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


@pytest.mark.parametrize(
    "text",
    [
        "CAP LS \u00b2",
        "CHATHISTORY LATEST #chat * \u00b2",
        "CHATHISTORY BEFORE #chat timestamp=2026-01-01T00:00:00.\u00b2Z 5",
        "MODE #chat +k-k ::x",
        "MARKREAD #chat timestamp=2026-01-01T00:00:00.\u00b2Z",
        "MODE #chat +b-k ::x",
    ],
)
def test_digits_and_colons_that_once_closed_the_connection_are_answered(
    unchecked_server: Server, connect: Connect, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    caplog.set_level(logging.INFO, logger="tuichat")
    alice = connect("alice", server=unchecked_server)
    alice.join("#chat")  # its operator: MODE +k is hers to set
    alice.send("MODE #chat +k key")
    alice.send(text)
    answers = alice.sync()  # fails if the server closed the connection instead of answering
    assert [line for line in answers if line.startswith("ERROR")] == []
    alice.send("MODE #chat b")  # the ban list and the key, shown as middle parameters
    alice.send("MODE #chat")
    alice.expect(r"^:tuichat 324 alice #chat ")
    alice.send("NAMES #chat")  # and it is still served
    assert alice.expect(r"^:tuichat 353 alice = #chat :(.*)$")[1] == "@alice"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
