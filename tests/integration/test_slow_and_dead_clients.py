"""A client that stops reading, and one that dies mid-line, must not hurt anybody else."""

from __future__ import annotations

import re
import socket
import struct
import time

import pytest

from tuichat.net.protocol import parse
from tuichat.server import ServerConfig

from .helpers import Client, Connect, StartServer, pump

MESSAGE = re.compile(r"^:(\w+)!\S+ PRIVMSG #flood :(\w+) (\d+) ")
QUIT = re.compile(r"^:slow!\S+ QUIT :(.*)$")


class Chatter:
    """One of the two clients that keep talking: what it sent and what it got from the other."""

    def __init__(self, client: Client, other: str) -> None:
        self.client = client
        self.other = other
        self.sent = 0
        self.received: list[int] = []
        self.quits: list[str] = []

    def send_batch(self, count: int) -> None:
        filler = "x" * 300
        data = b"".join(
            f"PRIVMSG #flood :{self.client.nick} {self.sent + i} {filler}\r\n".encode()
            for i in range(count)
        )
        self.client.send_raw(data)
        self.sent += count

    def collect(self) -> None:
        for line in self.client.take():
            if (match := MESSAGE.match(line)) is not None:
                assert match[1] == match[2] == self.other, line
                self.received.append(int(match[3]))
            elif (quit_ := QUIT.match(line)) is not None:
                self.quits.append(quit_[1])

    def has_all_from(self, other: Chatter) -> bool:
        self.collect()
        return len(self.received) >= other.sent


@pytest.mark.timeout(30)
def test_a_client_that_stops_reading_is_dropped_and_the_others_get_everything(
    connect: Connect, start_server: StartServer
) -> None:
    sendq = 64 * 1024
    server = start_server(ServerConfig(sendq=sendq, flood_rate=0))
    alice = Chatter(connect("alice", server=server), "bob")
    bob = Chatter(connect("bob", server=server), "alice")
    alice.client.join("#flood")
    bob.client.join("#flood")
    slow = connect("slow", server=server, rcvbuf=4096)
    slow.join("#flood")
    alice.client.expect(r"^:slow!\S+ JOIN #flood$")
    bob.client.expect(r"^:slow!\S+ JOIN #flood$")
    # from here on `slow` never reads again

    started = time.monotonic()
    batch = 50
    rounds_after_quit = 0
    # stop well short of anything a kernel could buffer for `slow` (a few MB at most)
    while rounds_after_quit < 3 and alice.sent < 20_000:
        alice.send_batch(batch)
        bob.send_batch(batch)
        pump(
            [alice.client, bob.client],
            lambda: alice.has_all_from(bob) and bob.has_all_from(alice),
            timeout=10,
        )
        if alice.quits and bob.quits:
            rounds_after_quit += 1
    elapsed = time.monotonic() - started

    assert alice.quits, f"slow was never dropped after {alice.sent * 2} lines"
    for chatter, other in ((alice, bob), (bob, alice)):
        assert chatter.received == list(range(other.sent))
        assert len(chatter.quits) == 1
        assert "SendQ exceeded" in chatter.quits[0]
    assert elapsed < 10
    # and the server goes on serving: a newcomer talks to both
    newcomer = connect("newcomer", server=server)
    newcomer.join("#flood")
    newcomer.send("PRIVMSG #flood :hello")
    alice.client.expect(r"^:newcomer!\S+ PRIVMSG #flood :hello$")
    bob.client.expect(r"^:newcomer!\S+ PRIVMSG #flood :hello$")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", ["reset", "close"])
def test_a_client_killed_mid_line_is_seen_to_quit(connect: Connect, how: str) -> None:
    alice = connect("alice")
    bob = connect("bob")
    victim = connect("victim")
    for client in (alice, bob, victim):
        client.join("#c")
    victim.send("PRIVMSG #c :a whole line")
    alice.expect(r"^:victim!\S+ PRIVMSG #c :a whole line$")
    victim.send_raw(b"PRIVMSG #c :half a li")
    if how == "reset":
        victim.reset()
        reason = r"Read error: Connection reset by peer"
    else:
        victim.close()
        reason = r"Remote host closed the connection"
    for peer in (alice, bob):
        match = peer.expect(r"^:victim!~victim@127\.0\.0\.1 QUIT :(.*)$")
        assert re.fullmatch(reason, match[1])
        # the half line was never delivered (it would have come before the QUIT)
        assert not any("half" in line for line in peer.seen)
    # the server keeps serving: a new client registers, joins and talks
    carol = connect("carol")
    carol.join("#c")
    carol.send("PRIVMSG #c :hi")
    alice.expect(r"^:carol!\S+ PRIVMSG #c :hi$")
    bob.send("NAMES #c")
    assert sorted(bob.expect(r"^:tuichat 353 bob = #c :(.*)$")[1].split()) == [
        "@alice",
        "bob",
        "carol",
    ]


@pytest.mark.parametrize("size", [511, 512, 700])
def test_lines_before_a_reset_are_still_read(start_server: StartServer, size: int) -> None:
    """A client that sends a line and resets the connection at once: the line counts. (An idle
    reader waits with a 512-byte recv and takes the rest without blocking; a reset found by
    that second recv must not throw away the first 512 bytes.)"""
    from tuichat.server import Connection, Reader

    server = start_server(ServerConfig())  # for its settings and writers
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    try:
        # one line of `size` bytes, or (past a line's limit) one of 500 and the rest in a second
        sizes = [size] if size <= 512 else [500, size - 500]
        sent = [b"PRIVMSG #c :" + b"x" * (n - len("PRIVMSG #c :") - 2) + b"\r\n" for n in sizes]
        assert sum(map(len, sent)) == size
        client.sendall(b"".join(sent))
        # SO_LINGER with a zero timeout: close() sends a reset instead of a FIN
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        reader = Reader(Connection(accepted, "test", server), server.config)
        lines: list[object] = []
        while not reader.ended:
            reader.read(block=True)
            lines.extend(reader.waiting)
            reader.waiting.clear()
        assert lines == [parse(line.decode().rstrip("\r\n")) for line in sent]
        assert "reset" in reader.reason.lower()
    finally:
        accepted.close()
