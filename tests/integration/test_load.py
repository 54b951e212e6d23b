"""Many clients talking at once in one channel while others come and go."""

from __future__ import annotations

import selectors
import time
from collections import Counter, defaultdict

import pytest

from tuichat.server import Server, ServerConfig

from .helpers import Client, Connect, StartServer

SENDERS = 50
MESSAGES = 100
CHURNERS = 5
CHANNEL = "#load"


@pytest.fixture
def server(start_server: StartServer) -> Server:
    """These tests measure delivery under load, not flood control: no throttling here."""
    return start_server(ServerConfig(flood_rate=0))


class Churner:
    """A client that joins and parts the channel over and over while the others talk."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nick = client.nick or ""
        self.state = "out"  # out -> joining -> parting -> out
        self.cycles = 0
        self.stopping = False
        #: sequence numbers received from each sender, across all of its stays in the channel
        self.got: defaultdict[str, list[int]] = defaultdict(list)
        #: channel messages that came before its own JOIN or after its own PART
        self.outside: list[str] = []

    def step(self) -> None:
        """Start the next JOIN if the churner is out and should go on."""
        if self.state == "out" and not self.stopping:
            self.client.send(f"JOIN {CHANNEL}")
            self.state = "joining"

    def handle(self, line: str) -> None:
        words = line.split(" ", 5)
        if words[1] == "PRIVMSG":
            self.got[words[4]].append(int(words[5]))
            if self.state in ("out", "joining"):
                self.outside.append(line)
        elif words[0].startswith(f":{self.nick}!"):
            if words[1] == "JOIN" and self.state == "joining":
                self.client.send(f"PART {CHANNEL}")
                self.state = "parting"
            elif words[1] == "PART" and self.state == "parting":
                self.cycles += 1
                self.state = "out"
                self.step()


class Member:
    """A sender that stays in the channel throughout: what it got from whom."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nick = client.nick or ""
        self.got: defaultdict[str, list[int]] = defaultdict(list)
        self.count = 0
        self.joins: Counter[str] = Counter()
        self.parts: Counter[str] = Counter()

    def handle(self, line: str) -> None:
        words = line.split(" ", 5)
        command = words[1]
        if command == "PRIVMSG":
            # :s7!~s7@127.0.0.1 PRIVMSG #load :m s7 42
            self.got[words[4]].append(int(words[5]))
            self.count += 1
        elif command in ("JOIN", "PART"):
            nick = words[0][1:].split("!", 1)[0]
            (self.joins if command == "JOIN" else self.parts)[nick] += 1


@pytest.mark.timeout(60)
def test_fifty_senders_and_churn_in_one_channel(connect: Connect) -> None:
    members = [Member(connect(f"s{i}")) for i in range(SENDERS)]
    for member in members:
        member.client.join(CHANNEL)
    churners = [Churner(connect(f"c{i}")) for i in range(CHURNERS)]
    for member in members:
        member.client.sync()  # the JOINs of the later members are of no interest
    expected = (SENDERS - 1) * MESSAGES

    handlers: dict[Client, Member | Churner] = {m.client: m for m in members}
    handlers.update({c.client: c for c in churners})

    def read(selector: selectors.BaseSelector, timeout: float) -> None:
        for key, _ in selector.select(timeout):
            client: Client = key.data
            client.fill_nowait()
            assert not client.eof, f"{client!r} was disconnected"
            handle = handlers[client].handle
            for line in client.take():
                handle(line)

    started = time.monotonic()
    deadline = started + 40
    with selectors.DefaultSelector() as selector:
        for client in handlers:
            selector.register(client.sock, selectors.EVENT_READ, client)
        for churner in churners:
            churner.step()
        for seq in range(MESSAGES):
            for member in members:
                member.client.send(f"PRIVMSG {CHANNEL} :m {member.nick} {seq}")
            read(selector, 0)
        for churner in churners:
            churner.stopping = True
        while any(m.count < expected for m in members) or any(c.state != "out" for c in churners):
            assert time.monotonic() < deadline, "messages went missing"
            read(selector, 0.1)
    # whatever was still on its way (duplicates, for one) is in before each member's PONG
    for member in members:
        for line in member.client.sync():
            member.handle(line)
    elapsed = time.monotonic() - started

    cycles = {c.nick: c.cycles for c in churners}
    assert all(cycles.values()), f"some churner never got in: {cycles}"
    for member in members:
        others = [m.nick for m in members if m is not member]
        assert sorted(member.got) == sorted(others), member.nick
        for nick in others:
            assert member.got[nick] == list(range(MESSAGES)), (member.nick, nick)
        assert member.joins == Counter(cycles), member.nick
        assert member.parts == Counter(cycles), member.nick
    for churner in churners:
        for nick, seqs in churner.got.items():
            # what a churner got while it was in: in order and never twice
            assert seqs == sorted(set(seqs)), (churner.nick, nick)
    assert elapsed < 20


@pytest.mark.timeout(30)
def test_channel_messages_come_only_between_ones_own_join_and_part(connect: Connect) -> None:
    senders = [connect(f"s{i}") for i in range(10)]
    for sender in senders:
        sender.join(CHANNEL)
    churners = [Churner(connect(f"c{i}")) for i in range(4)]
    clients = senders + [c.client for c in churners]
    by_client = {c.client: c for c in churners}
    seq = 0
    # a race: when deliveries were made after the state lock was released, this showed within a
    # fraction of a second; give it 2 s
    deadline = time.monotonic() + 2
    with selectors.DefaultSelector() as selector:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        for churner in churners:
            churner.step()
        while time.monotonic() < deadline and not any(c.outside for c in churners):
            for sender in senders:
                sender.send_raw(
                    "".join(
                        f"PRIVMSG {CHANNEL} :m {sender.nick} {seq + i}\r\n" for i in range(5)
                    ).encode()
                )
            seq += 5
            # read all that has come before sending more, so that nobody's SendQ fills up
            while ready := selector.select(0):
                for key, _ in ready:
                    client = key.data
                    client.fill_nowait()
                    assert not client.eof, f"{client!r} was disconnected"
                    lines = client.take()
                    if client in by_client:
                        for line in lines:
                            by_client[client].handle(line)
    assert all(c.cycles for c in churners)
    assert [line for c in churners for line in c.outside] == []
