"""Every long-lived server thread confines an exception to what it was doing (issue 11): the
reaper's next round still times clients out, a writer goes on sending to its other clients when
one client's send raises, and the accept loop lets the next client in when starting one fails.

Each test injects one fault into one real server on 127.0.0.1 port 0 (a method that raises once),
then shows the thread is still at work. The faults are logged as errors on purpose, so these
tests check the log themselves rather than through the `start_server` fixture.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from tuichat.server import Connection, Server, ServerConfig, Writer
from tuichat.state import Config

from .helpers import HOST, Client

pytestmark = pytest.mark.timeout(30)

START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Injected(Exception):
    """The fault a test injects."""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(clock: Clock, caplog: pytest.LogCaptureFixture) -> Iterator[Server]:
    """A started server on `clock`, with a reaper round every 0.25 s; stopped at teardown."""
    caplog.set_level(logging.INFO, logger="tuichat")
    config = ServerConfig(host=HOST, port=0, state=Config(registration_timeout=1.0))
    server = Server(config, clock=clock)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(port: int, nick: str | None = None) -> Client:
        client = Client(port, name=nick or "client")
        made.append(client)
        if nick is not None:
            client.register(nick)
        return client

    yield make
    for client in made:
        client.close()


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("tuichat") and r.levelno >= logging.ERROR
    ]


def raise_once(work: Callable[..., object], when: Callable[..., bool]) -> tuple[
    Callable[..., object], threading.Event
]:  # fmt: skip
    """`work`, except that the first call for which `when(*args)` holds raises `Injected`; the
    event is set once it has."""
    raised = threading.Event()

    def faulty(*args: object, **kwargs: object) -> object:
        if not raised.is_set() and when(*args, **kwargs):
            raised.set()
            raise Injected("injected fault")
        return work(*args, **kwargs)

    return faulty, raised


def test_the_reaper_times_clients_out_after_a_round_that_raised(
    server: Server,
    clock: Clock,
    clients: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faulty, raised = raise_once(server.state.tick, lambda *args: True)
    monkeypatch.setattr(server.state, "tick", faulty)
    assert raised.wait(10), "the reaper never ran"
    client = clients(server.port)
    client.sync()  # the server has it (and its connection time) before the clock moves
    clock.now += 2
    client.expect(r"^ERROR :Closing link \(Registration timed out\)$")
    logged = errors(caplog)
    assert [r.getMessage() for r in logged] == ["reaper: timeouts failed"]
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is Injected


def test_a_writer_goes_on_sending_to_its_other_clients_when_one_send_raised(
    server: Server,
    clients: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def conn_of(nick: str) -> Connection:
        with server.lock:
            (conn,) = [c for c in server._connections if c.user and c.user.nick == nick]
        return conn

    victim = clients(server.port, "victim")
    writer = conn_of("victim").writer
    # a bystander served by the same writer thread (connections go to writers by descriptor)
    for n in range(20):
        bystander = clients(server.port, f"by{n}")
        if conn_of(f"by{n}").writer is writer:
            break
    else:
        pytest.fail("no second client on the victim's writer")
    talker = clients(server.port, "talker")
    victim.join("#c")
    talker.join("#c")
    victim_conn = conn_of("victim")
    faulty, raised = raise_once(Writer._send, lambda self, conn, *rest: conn is victim_conn)
    monkeypatch.setattr(Writer, "_send", faulty)
    talker.send("PRIVMSG victim :first")
    assert raised.wait(10), "the victim's send never ran"
    victim.expect_closed()  # the client whose send raised is cut off...
    talker.expect(r"^:victim!\S+ QUIT :")  # ...and cleaned up
    for n in range(3):  # ...and its writer still sends to the others
        talker.send(f"PRIVMSG {bystander.name} :after {n}")
        bystander.expect(rf"^:talker!\S+ PRIVMSG {bystander.name} :after {n}$")
    logged = errors(caplog)
    assert [r.getMessage() for r in logged] == ["writer: sending failed"]
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is Injected


def test_the_accept_loop_lets_the_next_client_in_when_starting_one_raised(
    server: Server,
    clients: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faulty, raised = raise_once(server._start_client, lambda *args: True)
    monkeypatch.setattr(server, "_start_client", faulty)
    first = clients(server.port)
    assert raised.wait(10), "the accept loop never tried"
    first.expect_closed()  # not left open and unserved
    second = clients(server.port, "second")
    second.send("PING :still")
    second.expect(r"^:\S+ PONG \S+ :still$")
    logged = errors(caplog)
    assert len(logged) == 1 and "cannot serve a connection from" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is Injected
