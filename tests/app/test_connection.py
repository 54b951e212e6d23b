"""The connection seen from the app: reconnecting after a server restart, and quitting promptly."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tuichat.app import TuichatApp
from tuichat.server import Server

from .helpers import (
    HOST,
    SIZE,
    InChat,
    RawUser,
    Servers,
    client_config,
    fixed_clock,
    log_text,
    member_labels,
    screen_state,
    status_text,
    submit,
    wait_for,
    wait_for_joined,
    wait_for_log,
)

pytestmark = pytest.mark.timeout(30)

NOT_SENT = "[not sent yet: will be sent on reconnect]"


async def test_reconnects_after_a_server_restart_rejoins_and_sends_what_was_typed(
    servers: Servers,
    server: Server,
    in_chat: InChat,
    user: Callable[..., RawUser],
) -> None:
    port = server.port
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        await alice.expect(pilot, r"^:me!\S+ JOIN :?#chat$")

        server.stop()
        await wait_for(
            pilot,
            lambda: "disconnected" in status_text(app),
            what="the status line to say we are disconnected",
            show=lambda: screen_state(app),
        )
        await wait_for_log(pilot, "!! disconnected: ")  # said in the channel's window too
        assert member_labels(app) == []  # nobody is known to be here any more

        await submit(pilot, "typed while down")
        await wait_for_log(pilot, f"08:00 <me> typed while down  {NOT_SENT}")
        assert "1 unsent" in status_text(app)

        # A new server on the same port. Until this test awaits, the app's event loop cannot act
        # on the new connection (rejoin, send what is queued), so alice is back in #chat first.
        servers.start(port)
        alice = user("alice", "#chat", port=port)

        await alice.expect(pilot, r"^:me!\S+ JOIN :?#chat$", timeout=10)
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :typed while down$")
        await wait_for_joined(pilot, "#chat")
        await wait_for_log(pilot, "-- sent 1 line typed while disconnected")
        assert "unsent" not in status_text(app)
        await wait_for(pilot, lambda: member_labels(app) == ["@alice", "me"])

        # and the conversation goes on
        await submit(pilot, "back again")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :back again$")
        alice.send("PRIVMSG #chat :welcome back")
        await wait_for_log(pilot, "08:00 <alice> welcome back")
        # the line was sent once
        assert log_text(app).count("typed while down") == 1


def connection_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name == "tuichat-connection"]


async def test_ctrl_q_quits_and_the_connection_thread_is_gone_within_a_second(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    before = set(threading.enumerate())
    async with in_chat() as (app, pilot):
        (thread,) = connection_threads(before)
        started = time.monotonic()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not thread.is_alive(), timeout=1, what="the thread to end")
    assert time.monotonic() - started < 1.0
    assert not app.is_running
    alice.expect_now(r"^:me!\S+ QUIT :")


class SilentServer:
    """A peer that welcomes the client and then never says anything again nor closes: the
    client's reader thread stays blocked in `recv()`."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.received = b""
        self.closed = threading.Event()  # the client closed its end
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.accepted.append(conn)
        conn.sendall(b":silent 001 me :Welcome\r\n")
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                self.closed.set()
                return
            self.received += data

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()
        self._thread.join(2)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    peer = SilentServer()
    yield peer
    peer.close()


async def test_ctrl_q_wakes_a_reader_blocked_on_a_silent_server(
    silent_server: SilentServer,
) -> None:
    before = set(threading.enumerate())
    app = TuichatApp(client_config(silent_server.port), clock=fixed_clock, server_label="silent")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: "connected" in status_text(app).split("  "),
            show=lambda: screen_state(app),
        )
        (thread,) = connection_threads(before)
        await pilot.pause(0.05)
        assert thread.is_alive()  # blocked in recv: the peer says nothing more
        started = time.monotonic()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not thread.is_alive(), timeout=1, what="the thread to end")
    assert time.monotonic() - started < 1.0
    assert not app.is_running
    assert silent_server.closed.wait(1), "the client did not close its socket"
    assert b"QUIT" in silent_server.received


async def test_ctrl_q_while_waiting_to_reconnect_exits_at_once(server: Server) -> None:
    before = set(threading.enumerate())
    config = client_config(server.port)
    config.backoff_min, config.backoff_max = 30.0, 60.0  # the next attempt is far away
    app = TuichatApp(config, channels=["#chat"], clock=fixed_clock, server_label="test-server")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        (thread,) = connection_threads(before)
        server.stop()
        await wait_for(
            pilot,
            lambda: "disconnected; retrying in" in status_text(app),
            show=lambda: screen_state(app),
        )
        started = time.monotonic()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not thread.is_alive(), timeout=1, what="the thread to end")
    assert time.monotonic() - started < 1.0
    assert not app.is_running
