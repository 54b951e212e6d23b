"""The client's connection thread (`tuichat.net.Client`) against real peers on 127.0.0.1 port 0
(issue 11):

- an exception while handling one received line stays with that line (or, before registration,
  that connection), and the thread goes on delivering and reconnecting. Faults are injected by
  making one method of the client under test raise once; they are logged as errors on purpose,
  so these tests check the log themselves;
- `send` only queues: against a peer that accepts and never reads, it returns at once however
  full the socket is, the lines arrive in order once the peer reads (with TLS too: the queue goes
  through the session's one write path), and past the send buffer's bound the client drops the
  connection and makes a new one."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tuichat import tls
from tuichat.net import client as net
from tuichat.net.client import ClientConfig
from tuichat.net.protocol import Line
from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import HOST, Client

pytestmark = pytest.mark.timeout(30)


class Injected(Exception):
    """The fault a test injects."""


class Events:
    """What a `net.Client` reported, collected from its thread."""

    def __init__(self) -> None:
        self.events: list[net.ClientEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: net.ClientEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, done: Callable[[list[net.ClientEvent]], bool], timeout: float = 10) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: done(self.events), timeout):
                pytest.fail(f"not seen in {timeout} s; events: {self.events}")

    def lines(self) -> list[Line]:
        with self._changed:
            return [
                line for e in self.events if isinstance(e, net.LinesReceived) for line in e.lines
            ]


@pytest.fixture
def server(caplog: pytest.LogCaptureFixture) -> Iterator[Server]:
    caplog.set_level(logging.INFO, logger="tuichat")
    server = Server(ServerConfig(host=HOST, port=0, state=Config()))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[net.Client, Events]]]:
    made: list[net.Client] = []

    def make(port: int, nick: str = "amy", **config: Any) -> tuple[net.Client, Events]:
        events = Events()
        config = {"backoff_min": 0.05, "backoff_max": 0.1, **config}
        client = net.Client(ClientConfig(HOST, port, nick=nick, **config), events)
        made.append(client)
        return client, events

    yield make
    for client in made:
        client.close()


def raise_once(
    work: Callable[[Line], bool], when: Callable[[Line], bool]
) -> Callable[[Line], bool]:
    """`work`, except that the first call for a line for which `when` holds raises `Injected`."""
    raised = threading.Event()

    def faulty(line: Line) -> bool:
        if not raised.is_set() and when(line):
            raised.set()
            raise Injected("injected fault")
        return work(line)

    return faulty


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("tuichat") and r.levelno >= logging.ERROR
    ]


def privmsgs(events: Events) -> list[str]:
    return [line.params[-1] for line in events.lines() if line.command == "PRIVMSG"]


def test_a_line_whose_handling_raised_is_confined_to_itself_after_registration(
    server: Server,
    make_client: Callable[..., tuple[net.Client, Events]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, events = make_client(server.port)
    monkeypatch.setattr(
        client, "_handle", raise_once(client._handle, lambda line: line.command == "PRIVMSG")
    )
    client.start()
    events.wait_for(lambda seen: any(isinstance(e, net.Registered) for e in seen))
    talker = Client(server.port, name="talker").register("talker")
    try:
        for n in range(3):
            talker.send(f"PRIVMSG amy :line {n}")
        talker.send("PING :synced")
        talker.expect(r"PONG \S+ :synced$")
        # the line whose handling raised still reaches the app, and so do the ones after it
        events.wait_for(lambda seen: privmsgs(events) == ["line 0", "line 1", "line 2"])
        assert client.send(Line("PRIVMSG", ("talker", "still here")))
        talker.expect(r"^:amy!\S+ PRIVMSG talker :still here$")
    finally:
        talker.close()
    assert not any(isinstance(e, net.Disconnected) for e in events.events)
    logged = errors(caplog)
    assert [r.getMessage() for r in logged] == ["connection: handling a line failed (PRIVMSG)"]
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is Injected


def test_a_line_whose_handling_raised_before_registration_restarts_the_connection(
    server: Server,
    make_client: Callable[..., tuple[net.Client, Events]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, events = make_client(server.port)
    # the answer to CAP LS: negotiation is left half-way, so the session cannot go on
    monkeypatch.setattr(
        client, "_handle", raise_once(client._handle, lambda line: line.command == "CAP")
    )
    client.start()
    events.wait_for(lambda seen: any(isinstance(e, net.Registered) for e in seen))
    (dropped,) = [e for e in events.events if isinstance(e, net.Disconnected)]
    assert dropped.retry_in is not None and "CAP" in dropped.reason
    attempts = [e.attempt for e in events.events if isinstance(e, net.Connecting)]
    assert attempts == [1, 2]
    logged = errors(caplog)
    assert [r.getMessage() for r in logged] == ["connection: handling a line failed (CAP)"]
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is Injected


@pytest.fixture
def deaf_peer() -> Iterator[socket.socket]:
    """A listening socket whose connections are accepted by the test and never read from (a
    small receive buffer, so that the client's socket fills soon)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind((HOST, 0))
    listener.listen()
    listener.settimeout(10)
    yield listener
    listener.close()


LINE = "PRIVMSG #c :{:06d} " + "x" * 379  # with CRLF, 400 bytes
# more than the kernel's buffers on both ends hold (tcp_wmem's maximum is 4 MiB on Linux)
MANY = 15_000


def held(client: net.Client, timeout: float = 10) -> int:
    """Once the connection's thread has taken all that was queued: the bytes the socket did not
    take (more than 0 when it is full)."""
    deadline = time.monotonic() + timeout
    while True:
        with client._send_lock:
            if not client._queue:
                return client._unsent
        assert time.monotonic() < deadline, "the connection's thread takes nothing"
        time.sleep(0.001)


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server-side context with a self-signed certificate (the client runs with `insecure`)."""
    where: Path = tmp_path_factory.mktemp("tls")
    tls.make_self_signed(where / "cert.pem", where / "key.pem", "tuichat-test")
    return tls.server_context(where / "cert.pem", where / "key.pem")


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
def test_send_returns_at_once_while_the_peer_reads_nothing_and_the_lines_arrive_in_order(
    deaf_peer: socket.socket,
    make_client: Callable[..., tuple[net.Client, Events]],
    tls_context: ssl.SSLContext,
    secure: bool,
) -> None:
    port = deaf_peer.getsockname()[1]
    client, events = make_client(port, send_buffer=2 * MANY * 400, tls=secure, insecure=secure)
    client.start()
    accepted, _ = deaf_peer.accept()
    accepted.settimeout(10)
    peer = tls_context.wrap_socket(accepted, server_side=True) if secure else accepted
    with peer:
        events.wait_for(lambda seen: any(isinstance(e, net.Connected) for e in seen))
        for n in range(MANY):  # 6 MB that nobody reads: a blocking send would wait here
            assert client.send(LINE.format(n)), f"send {n} refused"
        assert held(client) > 0, "the kernel took it all: the socket was never full"
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # quicker now
        received = b""

        def read_until(done: Callable[[], bool]) -> None:
            nonlocal received
            while not done():
                data = peer.recv(1 << 20)
                assert data, "closed before all lines came"
                received += data

        read_until(lambda: received.count(b"PRIVMSG") == MANY)  # the peer reads: all of it
        client.quit("bye")  # the thread sends it as it closes
        read_until(lambda: received.endswith(b"\r\nQUIT :bye\r\n"))
    lines = received.decode().split("\r\n")
    assert lines[:3] == ["CAP LS :302", "NICK :amy", "USER tuichat 0 * :tuichat user"]
    assert lines[3:] == [LINE.format(n) for n in range(MANY)] + ["QUIT :bye", ""]


def test_a_peer_that_leaves_the_send_buffer_full_is_dropped_and_the_client_reconnects(
    deaf_peer: socket.socket, make_client: Callable[..., tuple[net.Client, Events]]
) -> None:
    client, events = make_client(deaf_peer.getsockname()[1])
    client.start()
    first, _ = deaf_peer.accept()
    with first:
        events.wait_for(lambda seen: any(isinstance(e, net.Connected) for e in seen))
        sent = 0
        while not held(client):  # first the kernel's buffers fill...
            for n in range(sent, sent + 100):
                assert client.send(LINE.format(n))
            sent += 100
            assert sent < MANY, "the kernel takes it all"
        # ...then the send buffer, which has a bound of its own
        more = range(sent, sent + MANY)
        refused = next((n for n in more if not client.send(LINE.format(n))), None)
        assert refused is not None, "the send buffer has no bound"
        assert refused * 400 > client.config.send_buffer  # what the kernel holds is not counted
        second, _ = deaf_peer.accept()  # made afresh...
        with second:
            events.wait_for(lambda seen: any(isinstance(e, net.Disconnected) for e in seen))
            (dropped,) = [e for e in events.events if isinstance(e, net.Disconnected)]
            assert "stopped reading" in dropped.reason and dropped.retry_in is not None
            assert [e.attempt for e in events.events if isinstance(e, net.Connecting)] == [1, 2]
            second.settimeout(10)
            assert second.recv(65536).startswith(b"CAP LS :302\r\n")  # ...and registering again
            assert client.send("PING :fresh")
