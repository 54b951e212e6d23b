"""Issue 10, items 4 and 7: no WHO or NAMES, however many connections send it, keeps the server
from everybody else. A bystander (two users chatting and PINGing from another process) measures it
while many connections of one address flood the server with slow WHO masks or with NAMES and WHO
of a big channel."""

from __future__ import annotations

import re

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
