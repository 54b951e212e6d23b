"""Many members closing their connections at once (issue 10, item 8): the server handles their
departures together, each member who stays gets one QUIT per departed user it shared a channel
with, and a bystander is kept waiting only briefly."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tuichat.server import ServerConfig

from .helpers import ROOT, Bystander, Client, Connect, StartServer

LEAVERS = 600
# Disconnected one at a time (each departure told to every member on its own, and rebuilding the
# member tuple, under the state lock), 600 departures took 3.0-3.4 s to handle here and the
# bystander waited 2.3-3.3 s; together, 0.13-0.34 s and 0.1-0.25 s
BOUND = 1.5
CROWD = ROOT / "tests" / "integration" / "crowd.py"
QUIT = re.compile(r"^:([^!\s]+)!\S+ QUIT :")


def test_members_closing_at_once_are_told_once_each_and_quickly(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(ServerConfig(max_per_ip=0, connects_per_minute=0))
    stayers = {nick: connect(nick, server=server) for nick in ("plain", "both", "side")}
    stayers["plain"].join("#mass")
    stayers["both"].join("#mass")
    stayers["both"].join("#other")
    stayers["side"].join("#other")
    # the leavers: in a process of their own, which ends (its sockets closed by the kernel at
    # once); one in three is in #other too
    crowd = subprocess.Popen(
        [sys.executable, str(CROWD), str(server.port), str(LEAVERS), "q", "#mass", "#other", "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert crowd.stdout is not None and crowd.stdin is not None
        assert crowd.stdout.readline().strip() == "ready"
        measured = _leave_together(crowd, stayers, server.port)
    finally:
        if crowd.poll() is None:
            crowd.kill()
        crowd.wait()
    got, handled, bystander = measured
    expected = _expected()
    for nick, stayer in stayers.items():
        # exactly one QUIT each: none missing, none twice, and nothing more came
        assert sorted(got[nick]) == sorted(expected[nick]), nick
        assert [line for line in stayer.sync() if " QUIT " in line] == []
    # in the same order for everyone
    assert got["both"] == got["plain"]
    assert got["side"] == [nick for nick in got["both"] if nick in expected["side"]]
    # everyone is gone from the server's view too
    stayers["plain"].send("NAMES #other")
    names = stayers["plain"].expect(r"^:\S+ 353 plain \S #other :(.*)$").group(1)
    assert sorted(name.lstrip("@+") for name in names.split()) == ["both", "side"]
    assert handled < BOUND, f"{handled:.2f} s to handle {LEAVERS} departures"
    assert bystander.worst < BOUND and bystander.lost == 0, bystander


def _expected() -> dict[str, set[str]]:
    """The departures each member who stays shares a channel with."""
    return {
        "plain": {f"q{i}" for i in range(LEAVERS)},
        "both": {f"q{i}" for i in range(LEAVERS)},
        "side": {f"q{i}" for i in range(0, LEAVERS, 3)},
    }


def _leave_together(
    crowd: subprocess.Popen[str], stayers: dict[str, Client], port: int
) -> tuple[dict[str, list[str]], float, Bystander]:
    """End the crowd while the bystander measures; the QUITs each stayer read, in order, and
    how long until all had read all of theirs."""
    for stayer in stayers.values():
        stayer.sync(timeout=30)  # past everyone's JOIN
    expected = _expected()
    got: dict[str, list[str]] = {nick: [] for nick in stayers}
    assert crowd.stdin is not None
    with Bystander(port) as bystander:
        started = time.monotonic()
        crowd.stdin.write("go\n")
        crowd.stdin.flush()
        for nick, stayer in stayers.items():
            while len(got[nick]) < len(expected[nick]):
                match = QUIT.match(stayer.readline(timeout=30))
                if match is not None:
                    got[nick].append(match.group(1))
        handled = time.monotonic() - started
    print(f"handled in {handled:.2f} s; {bystander}")
    return got, handled, bystander
