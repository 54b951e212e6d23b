"""SIGTERM ends `tuichat serve` within the README's two seconds even while a request is stuck
under the state lock, and leaves its database whole, with everything delivered before on disk."""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from .helpers import Client, ServeProcess


@pytest.mark.timeout(30)
def test_sigterm_stops_the_server_while_a_history_write_is_stuck(tmp_path: Path) -> None:
    db = tmp_path / "tuichat.db"
    # debug: the log shows each line as the server handles it, under the state lock
    serve = ServeProcess("--db", str(db), "--log-level", "debug", "--flood-rate", "0")
    alice = bob = None
    holder: sqlite3.Connection | None = None
    try:
        port = serve.port()
        alice = Client(port).register("alice")
        bob = Client(port).register("bob")
        alice.join("#c")
        bob.join("#c")
        for n in range(20):
            alice.send(f"PRIVMSG #c :before the stall {n}")
        for n in range(20):
            bob.expect(rf"^:alice!\S+ PRIVMSG #c :before the stall {n}$")
        # another process holds SQLite's write lock: the server's next history write waits for
        # it (SQLite's busy timeout) holding the state lock, and nobody is served meanwhile
        holder = sqlite3.connect(db, isolation_level=None, timeout=5)
        holder.execute("BEGIN EXCLUSIVE")
        alice.send("PRIVMSG #c :during the stall")
        serve.wait_for_line(r"<- 'PRIVMSG #c :during the stall'$")
        sent = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        code = serve.proc.wait(timeout=10)
        elapsed = time.monotonic() - sent
        # the clients were told, the way an orderly shutdown tells them
        bob.expect(r"^ERROR :Server shutting down$", timeout=1)
    finally:
        for client in (alice, bob):
            if client is not None:
                client.close()
        stderr = serve.kill()
        if holder is not None:
            holder.close()  # rolls back: it wrote nothing
    assert code == 0
    assert elapsed < 2.5, f"exited {elapsed:.2f} s after SIGTERM"
    assert "Traceback" not in stderr
    # the database is whole and holds all that was delivered before the stall
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        texts = [row[0] for row in check.execute("SELECT text FROM messages ORDER BY seq")]
    assert [t for t in texts if re.fullmatch(r"before the stall \d+", t)] == [
        f"before the stall {n}" for n in range(20)
    ]
