"""Clients that stop reading cannot make the server hold more than --max-output-memory: past it,
the largest queues are cut off first, and whoever keeps reading gets everything."""

from __future__ import annotations

import re

import pytest

from tuichat.server import ServerConfig

from .helpers import Bystander, Connect, StartServer, pump

BOUND = 2 * 1024 * 1024
CHANNELS = ["#c1", "#c2", "#c3", "#c4"]
MESSAGE = re.compile(r"^:sender!\S+ PRIVMSG (#c\d) :(\d+) ")
QUIT = re.compile(r"^:(stuck\d)!\S+ QUIT :(.*)$")


@pytest.mark.timeout(60)
def test_the_largest_queues_are_cut_off_first_when_all_output_passes_the_bound(
    connect: Connect, start_server: StartServer
) -> None:
    # the per-client send queue is far away: only the bound on all of them together can act
    server = start_server(
        ServerConfig(sendq=64 * 1024 * 1024, max_output_memory=BOUND, flood_rate=0)
    )
    sender = connect("sender", server=server)
    watcher = connect("watcher", server=server)
    for channel in CHANNELS:
        sender.join(channel)
        watcher.join(channel)
    # stuckN is in the first N channels, so gets N times as much as stuck1; none of them reads
    stuck_clients = {}
    for n in range(1, len(CHANNELS) + 1):
        stuck = stuck_clients[n] = connect(f"stuck{n}", server=server, rcvbuf=4096)
        for channel in CHANNELS[:n]:
            stuck.join(channel)
            watcher.expect(rf"^:stuck{n}!\S+ JOIN {channel}$")

    sent = 0
    received: dict[str, list[int]] = {channel: [] for channel in CHANNELS}
    quits: list[tuple[str, str]] = []
    most = 0

    def collect() -> bool:
        for line in watcher.take():
            if (match := MESSAGE.match(line)) is not None:
                received[match[1]].append(int(match[2]))
            elif (quit_ := QUIT.match(line)) is not None:
                quits.append((quit_[1], quit_[2]))
        return all(len(numbers) == sent for numbers in received.values())

    filler = "x" * 400
    with Bystander(server.port) as bystander:
        # 25 lines to each channel a round: ~110 KB more for the four to hold, 16 MB in all
        for _ in range(150):
            sender.send_raw(
                b"".join(
                    f"PRIVMSG {channel} :{sent + i} {filler}\r\n".encode()
                    for i in range(25)
                    for channel in CHANNELS
                )
            )
            sent += 25
            pump([watcher], collect, timeout=10)
            most = max(most, server.output.total())
            if len(quits) >= 2:
                break

    assert [who for who, _ in quits] == ["stuck4", "stuck3"], (quits, sent)
    assert all("SendQ exceeded" in reason for _, reason in quits), quits
    # what the server held stayed near the bound (it passes it by what a round adds before the
    # cut queues are freed), far under the 16 MB the stuck clients were sent
    assert most < BOUND * 1.5, most
    # the two cut off find their connections closed once they read what had reached them
    for n in (4, 3):
        stuck_clients[n].expect_closed(timeout=10)
    # the two smallest stay: the cut stops under 90% of the bound
    watcher.send("NAMES #c1")
    names = watcher.expect(r"^:\S+ 353 watcher = #c1 :(.*)$")[1].split()
    assert {"stuck1", "stuck2"} <= set(names) and "stuck3" not in names, names
    # whoever reads got everything, in order, and the bystander never waited
    for channel in CHANNELS:
        assert received[channel] == list(range(sent)), channel
    assert bystander.lost == 0, bystander
    assert bystander.worst < 2, bystander
