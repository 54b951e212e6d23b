"""The reaper outlives a failing job (issue 10, item 5).

The reaper thread runs every registration and ping timeout and the nick-grace renames; an
`sqlite3.OperationalError` from the hourly pruning used to end it for good. Here the pruning
fails for real: SQLite's `PRAGMA query_only` on the server's own connection makes its DELETE
raise "attempt to write a readonly database", as a full disk or a locked file would.

The server runs on a clock the test moves (the pruning is hourly, the timeouts take a minute);
each step waits for what the server sends or logs, in a bounded loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tuichat.server import PRUNE_EVERY, PRUNE_RETRY, Server, ServerConfig
from tuichat.state import Config
from tuichat.store import Message, Store

from .helpers import HOST, Client

pytestmark = pytest.mark.timeout(30)

DAY = 86400.0
START = 1_800_000_000.0  # seconds since the epoch, on the server's clock


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_server(tmp_path: Path, clock: Clock) -> Iterator[Callable[[], Server]]:
    """A server with history on `clock` (not started); stopped at teardown. Its errors are the
    test's to check (the `start_server` fixture would fail on the expected ones)."""
    servers: list[Server] = []

    def make() -> Server:
        config = ServerConfig(
            host=HOST,
            port=0,
            db=str(tmp_path / "tuichat.db"),
            history_days=30,
            # a reaper round every 0.25 s (the timeout itself runs on the test's clock)
            state=Config(registration_timeout=1.0),
        )
        server = Server(config, clock=clock)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def read_only(server: Server, on: bool) -> None:
    """Make the store's writer refuse (or take again) every write. Under the store's own lock:
    the reaper prunes outside the state lock, on the same connection."""
    store = server.store
    assert store is not None
    with store._lock:
        store._db.execute(f"PRAGMA query_only={'ON' if on else 'OFF'}")


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in record.getMessage() for record in caplog.records):
        assert time.monotonic() < deadline, f"never logged {text!r}: {caplog.messages}"
        time.sleep(0.01)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name.startswith("tuichat") and r.levelno >= logging.ERROR
    ]


def times_out(server: Server, clock: Clock, by: float) -> None:
    """An unregistered connection is closed once `by` seconds pass on the server's clock."""
    client = Client(server.port)
    try:
        client.sync()  # the server has it (and its connection time) before the clock moves
        clock.now += by
        client.expect(r"^ERROR :Closing link \(Registration timed out\)$")
    finally:
        client.close()


def old_message(path: Path) -> None:
    store = Store(path)
    store.add(Message("old1", int((START - 10 * DAY) * 1000), "#c", "#c", "a!a@h", None,
                      "PRIVMSG", "ten days before the start", None))  # fmt: skip
    store.close()


def test_timeouts_still_fire_after_the_hourly_pruning_failed(
    make_server: Callable[[], Server], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tuichat")
    server = make_server()
    assert server.store is not None
    old_message(Path(server.store.path))
    server.start()
    times_out(server, clock, 2)  # the reaper works
    read_only(server, True)
    clock.now += 21 * DAY  # the message is now past 30 days: the pruning has work, and fails
    # the reaper goes on: registration timeouts fire, each in a later round than the one before,
    # so at least the last two come after the failed pruning (and its retries after back-offs)
    times_out(server, clock, 2)
    times_out(server, clock, PRUNE_RETRY + 1)
    times_out(server, clock, 2 * PRUNE_RETRY + 1)
    assert "reaper: pruning history failed (retrying in 60 s)" in caplog.messages
    # logged once, with its traceback, not once per retry
    logged = errors(caplog)
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert logged[0].exc_info is not None and "readonly" in str(logged[0].exc_info[1])
    # space is back: the next retry prunes, and says it works again
    read_only(server, False)
    clock.now += 4 * PRUNE_RETRY + 1
    wait_for_log(caplog, "reaper: pruning history works again")
    with server.lock:
        assert server.store.count() == 0
    times_out(server, clock, 2)
    assert len(errors(caplog)) == 1


def test_the_server_starts_when_pruning_fails_at_start(
    make_server: Callable[[], Server], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tuichat")
    server = make_server()
    assert server.store is not None
    old_message(Path(server.store.path))
    clock.now += 21 * DAY
    read_only(server, True)
    server.start()  # raised the OperationalError
    assert "startup: pruning history failed (the reaper retries)" in caplog.messages
    times_out(server, clock, 2)
    read_only(server, False)
    # past the reaper's next try however many of its tries failed (they back off up to an hour)
    clock.now += PRUNE_EVERY + 1
    wait_for_log(caplog, "history: removed 1 messages older than 30 days")
    with server.lock:
        assert server.store.count() == 0
