"""Ping liveness and the registration timeout, with the timers made short."""

from __future__ import annotations

import time

import pytest

from tuichat.server import ServerConfig
from tuichat.state import Config

from .helpers import Connect, StartServer

pytestmark = pytest.mark.timeout(30)


def test_a_client_that_answers_pings_stays_and_a_silent_one_is_dropped(
    connect: Connect, start_server: StartServer
) -> None:
    server = start_server(ServerConfig(state=Config(ping_interval=0.3, ping_timeout=0.5)))
    awake = connect("awake", server=server, answer_pings=True)
    awake.join("#c")
    silent = connect("silent", server=server)
    silent.join("#c")
    # from here on `silent` sends nothing; `awake` answers every PING while it reads
    match = awake.expect(r"^:silent!~silent@127\.0\.0\.1 QUIT :Ping timeout: (\d+) seconds$")
    assert int(match[1]) >= 0
    silent.expect(r"^PING :?tuichat$")
    silent.expect(r"^ERROR :Closing link \(Ping timeout: \d+ seconds\)$")
    assert silent.expect_closed() == []
    # awake outlives several more ping rounds, longer than interval + timeout together
    for _ in range(3):
        awake.expect(r"^PING :?tuichat$")
    assert all("QUIT" not in line for line in awake.sync())
    awake.send("NAMES #c")
    assert awake.expect(r"^:tuichat 353 awake = #c :(.*)$")[1] == "@awake"


def test_activity_counts_as_liveness(connect: Connect, start_server: StartServer) -> None:
    """Traffic other than PONG also keeps a client: it is not pinged while it talks."""
    server = start_server(ServerConfig(state=Config(ping_interval=0.3, ping_timeout=0.5)))
    watcher = connect("watcher", server=server, answer_pings=True)
    watcher.join("#c")
    talker = connect("talker", server=server)
    talker.join("#c")
    silent = connect("silent", server=server)
    silent.join("#c")
    # talker talks until silent (connected at the same time) has been dropped
    count = 0
    deadline = time.monotonic() + 10
    while True:
        talker.send(f"PRIVMSG #c :{count}")
        watcher.expect(rf"^:(talker!\S+ PRIVMSG #c :{count}|silent!\S+ QUIT :Ping timeout)")
        count += 1
        if watcher.seen[-1].startswith(":silent!"):
            break
        assert time.monotonic() < deadline, "silent was never dropped"
    talker.send("PRIVMSG #c :still here")
    watcher.expect(r"^:talker!\S+ PRIVMSG #c :still here$")


def test_registration_timeout_closes_unregistered_connections(
    connect: Connect, start_server: StartServer
) -> None:
    server = start_server(ServerConfig(state=Config(registration_timeout=0.3)))
    registered = connect("early", server=server)
    lurker = connect(server=server)
    half = connect(server=server)
    half.send("NICK halfway")
    half.sync()  # the nick is taken now
    taken = connect(server=server)
    taken.send("NICK halfway")
    taken.expect(r"^:tuichat 433 \* halfway ")
    lurker.expect(r"^ERROR :Closing link \(Registration timed out\)$")
    assert lurker.expect_closed() == []
    half.expect(r"^ERROR :Closing link \(Registration timed out\)$")
    assert half.expect_closed() == []
    # the nick of the closed connection is free again
    newcomer = connect("halfway", server=server)
    # a client that registered in time is not touched, though it connected before the others
    assert registered.sync() == []
    registered.send("PRIVMSG halfway :hi")
    newcomer.expect(r"^:early!\S+ PRIVMSG halfway :hi$")
