"""The client's connection thread (`tuichat.net.Client`) against a real server on 127.0.0.1 port 0:
an exception while handling one received line stays with that line (or, before registration,
that connection), and the thread goes on delivering and reconnecting (issue 11).

Faults are injected by making one method of the client under test raise once; they are logged as
errors on purpose, so these tests check the log themselves."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

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
