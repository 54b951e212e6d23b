"""Disk full (issue 10, item 6): a message whose history row cannot be written is refused with a
FAIL, goes to nobody (its echo neither), the sender stays connected, other commands work, and
messages flow again once there is space.

The disk fills for real: `PRAGMA max_page_count` on the server's own SQLite connection, then rows
until SQLite answers SQLITE_FULL ("database or disk is full").
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuichat.server import Server, ServerConfig

from .helpers import HOST, Connect

pytestmark = pytest.mark.timeout(30)

REFUSED = r"^:tuichat FAIL PRIVMSG TEMPORARILY_UNAVAILABLE #c :history store unavailable$"


@pytest.fixture
def disk_server(tmp_path: Path) -> Iterator[Server]:
    """A history server whose logged errors the test checks itself."""
    server = Server(ServerConfig(host=HOST, port=0, db=str(tmp_path / "tuichat.db")))
    server.start()
    yield server
    server.stop()


def fill_the_disk(server: Server) -> None:
    assert server.store is not None
    with server.lock:
        db = server.store._db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(sqlite3.OperationalError, match="full"):
            for n in range(10_000):
                db.execute(
                    "INSERT INTO messages (msgid, time, key, target, source, command, text) "
                    "VALUES (?, 0, '#filler', '#filler', 'x!x@x', 'PRIVMSG', ?)",
                    (f"filler{n}", "x" * 200),
                )


def make_space(server: Server) -> None:
    assert server.store is not None
    with server.lock:
        server.store._db.execute("PRAGMA max_page_count=1073741823")


def history_of(server: Server, key: str) -> list[str]:
    assert server.store is not None
    with server.lock:
        return [m.text for m in server.store.query(key, 100)]


def test_a_message_that_cannot_be_stored_is_refused_and_delivered_to_nobody(
    disk_server: Server, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tuichat")
    alice = connect(server=disk_server)
    alice.register_with_caps("alice", ["echo-message"])
    bob = connect("bob", server=disk_server)
    alice.join("#c")
    bob.join("#c")
    alice.send("PRIVMSG #c :before")
    bob.expect(r"^:alice!\S+ PRIVMSG #c :before$")
    alice.expect(r"^:alice!\S+ PRIVMSG #c :before$")
    fill_the_disk(disk_server)

    for n in range(3):
        alice.send(f"PRIVMSG #c :lost {n}")
        alice.expect(REFUSED)
    alice.send("PRIVMSG bob :private and lost")
    alice.expect(r"^:tuichat FAIL PRIVMSG TEMPORARILY_UNAVAILABLE bob :history store unavailable$")
    # nothing reached bob, and alice had no echo: her lines before the PONG are the FAILs only
    assert [line for line in bob.sync() if "PRIVMSG" in line] == []
    assert [line for line in alice.sync() if "PRIVMSG" in line and "FAIL" not in line] == []

    # still connected, and what is not a message works: JOIN, NICK, TOPIC, WHO
    alice.send("JOIN #d")
    alice.expect(r"^:alice!\S+ JOIN #d$")
    alice.send("NICK alicia")
    bob.expect(r"^:alice!\S+ NICK :?alicia$")
    alice.nick = "alicia"
    alice.send("TOPIC #c :full disk")
    bob.expect(r"^:alicia!\S+ TOPIC #c :full disk$")

    # space again: messages are stored and delivered, the sender's echo too
    make_space(disk_server)
    alice.send("PRIVMSG #c :after")
    bob.expect(r"^:alicia!\S+ PRIVMSG #c :after$")
    alice.expect(r"^:alicia!\S+ PRIVMSG #c :after$")
    assert history_of(disk_server, "#c") == ["before", "after"]

    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tuichat.server"]
    failures = [text for level, text in messages if level >= logging.ERROR]
    assert len(failures) == 1 and failures[0].startswith("history store unavailable")
    assert (logging.WARNING, "history store available again") in messages
    assert not any("Internal error" in text or "error serving" in text for _, text in messages)
