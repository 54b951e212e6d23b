"""Issue 10, items 4 and 7: no WHO or NAMES, however many connections send it, keeps the server
from everybody else. A bystander (two users chatting and PINGing from another process) measures it
while many connections of one address flood the server with slow WHO masks or with NAMES and WHO
of a big channel."""

from __future__ import annotations

import re
import time

import pytest

from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import END_OF_WELCOME, Bystander, Client, Connect, StartServer, pump

REALNAME = "a" * 100  # as long as USER allows (NAMELEN)
# a leading `*` then `?`s: a backtracking matcher tries each start and runs through the `?`s
# (50 of them on a 100-byte realname is its worst case, about 2,500 steps a field)
SLOW_MASK = "*" + "?" * 50 + "x"


def _flood_config() -> ServerConfig:
    # one address for all: no per-address limits in the way of the attack
    return ServerConfig(max_per_ip=0, connects_per_minute=0, state=Config())


def _register(connect: Connect, server: Server, nick: str) -> Client:
    client = connect(server=server)
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{REALNAME}")
    client.expect(END_OF_WELCOME)
    client.nick = nick
    return client


def _count(clients: list[Client], pattern: str, wanted: int, timeout: float) -> None:
    """Read from all `clients` until each has `wanted` lines matching `pattern`."""
    regex = re.compile(pattern)
    counts = dict.fromkeys(clients, 0)

    def done() -> bool:
        for client in clients:
            counts[client] += sum(1 for line in client.take() if regex.search(line))
        return all(count >= wanted for count in counts.values())

    pump(clients, done, timeout)


@pytest.mark.timeout(120)
def test_slow_who_masks_from_many_connections_do_not_freeze_the_server(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(_flood_config())
    attackers = [_register(connect, server, f"who{i}") for i in range(40)]
    with Bystander(server.port) as bystander:
        # the flood control lets each send its burst (10 lines) at once: 400 WHOs, each matching
        # the mask against every user's realname. Old code: about 1 ms a user each under the
        # lock, so 15 s in all; a matcher linear in the text answers at once.
        for client in attackers:
            client.send_raw(f"WHO {SLOW_MASK}\r\n".encode() * 10)
        _count(attackers, r"^:\S+ 315 ", 10, timeout=90)
    assert bystander.lost == 0 and bystander.worst < 2, bystander


def _register_many(
    connect: Connect, server: Server, nicks: list[str], channel: str
) -> list[Client]:
    """Register `nicks` and join them to `channel`, all at once (sequentially it is slow)."""
    clients = [connect(server=server) for _ in nicks]
    for client, nick in zip(clients, nicks, strict=True):
        client.nick = nick
        client.send_raw(
            f"NICK {nick}\r\nUSER {nick} 0 * :{REALNAME}\r\nJOIN {channel}\r\n".encode()
        )
    _count(clients, rf"^:\S+ 366 \S+ {re.escape(channel)} ", 1, timeout=60)
    return clients


@pytest.mark.timeout(120)
def test_names_and_who_floods_of_a_big_channel_do_not_freeze_the_server(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(_flood_config())  # the default flood control: 10 lines, then 2/s
    nicks = [f"member{i:03d}_{'x' * 20}" for i in range(300)]  # 300 members, long nicks
    members = _register_many(connect, server, nicks, "#big")
    flooders = members[:100]
    # a WHO costs its sender a burst (10 tokens), a NAMES 4 more: a second WHO waits 3.5 s at
    # 2 tokens a second (old code: no wait, the three replies come together)
    probe = members[-2]  # one that did not flood
    probe.send_raw(b"WHO #big\r\nNAMES #big\r\nWHO #big\r\n")
    probe.expect(r"^:\S+ 315 \S+ #big ", timeout=30)
    start = time.monotonic()
    probe.expect(r"^:\S+ 315 \S+ #big ", timeout=30)
    waited = time.monotonic() - start
    assert waited > 1.5, f"the second WHO came {waited:.3f} s after the first"
    with Bystander(server.port) as bystander:
        # each floods its burst: WHO (300 rows, 50 KB) and NAMES (9 KB) in turn, 10 lines. Old
        # code: all 1,000 rendered under the lock as fast as they came. Now each costs tokens
        # (WHO 10, NAMES 4): the first WHO of each comes at once, rendered after the lock, and
        # the rest wait for the flooder's own tokens.
        for client in flooders:
            client.send_raw(b"WHO #big\r\nNAMES #big\r\n" * 5)
        _count(flooders, r"^:\S+ 315 \S+ #big ", 1, timeout=90)
    assert bystander.lost == 0 and bystander.worst < 2, bystander
    # the replies are whole and in order: 300 names, then 300 rows
    client = members[-1]  # another that did not flood
    client.send("NAMES #big")
    client.send("WHO #big")
    client.send("PING :after")
    lines = []
    while not (lines and lines[-1].endswith(" :after")):
        lines.append(client.readline())
    names = [name for line in lines if " 353 " in line for name in line.split(" :", 1)[1].split()]
    assert sorted(name.lstrip("@") for name in names) == sorted(nicks)
    assert sum(" 352 " in line for line in lines) == 300
    ends = [line.split()[1] for line in lines if re.match(r"^:\S+ (366|315) ", line)]
    assert ends == ["366", "315"]
