"""`kill -9` of a real `tuichat serve` process in the middle of a stream of messages, then a restart
on the same database: every message that a client received is in the history, in order.

Ten raw clients stream PRIVMSGs into one channel; a reader records every message it receives
(with its msgid). After the reader has seen enough, the server gets SIGKILL while the senders are
still sending; the reader keeps what was already on its way. The database is then read twice:
directly with sqlite3, and through CHATHISTORY from a restarted server.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tuichat.net.protocol import parse

from .helpers import OPER, Client, ConnectionClosed, ServeProcess, fetch_history

SENDERS = 10
KILL_AFTER = 3000  # messages the reader has received when the server is killed
PER_SENDER = 100_000  # a bound the stream never reaches: it is cut by the kill
CHANNEL = "#stream"


@pytest.fixture
def processes() -> Iterator[list[ServeProcess]]:
    """Servers started by the test; all killed and reaped at teardown."""
    started: list[ServeProcess] = []
    yield started
    for process in started:
        process.kill()


class Sender(threading.Thread):
    """Sends numbered PRIVMSGs in small bursts, throwing away what it receives, until the
    connection breaks or it is told to stop."""

    def __init__(self, client: Client, index: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.index = index
        self.stop = stop
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set() and self.sent < PER_SENDER:
                burst = b"".join(
                    f"PRIVMSG {CHANNEL} :s{self.index} {self.sent + k}\r\n".encode()
                    for k in range(5)
                )
                self.client.send_raw(burst)
                self.sent += 5
                self.client.fill_nowait()
                self.client.take()
                if self.client.eof:
                    return
        except OSError:
            return  # the server is gone: the stream ends here
        except BaseException as error:  # pragma: no cover - reported by the test
            self.error = error


@pytest.mark.timeout(60)
def test_kill9_mid_stream_loses_no_received_message(
    tmp_path: Path, processes: list[ServeProcess]
) -> None:
    db = tmp_path / "stream.db"
    # the senders are operators: exempt from flood control, they can stream as fast as they like
    server = ServeProcess("--db", str(db), "--oper", ":".join(OPER))
    processes.append(server)
    port = server.port()

    reader = Client(port, name="reader")
    senders = [Client(port, name=f"s{i}") for i in range(SENDERS)]
    stop = threading.Event()
    threads: list[Sender] = []
    try:
        reader.register_with_caps("reader", ["message-tags"])
        reader.join(CHANNEL)
        for i, client in enumerate(senders):
            client.register(f"s{i}")
            client.oper()
            client.join(CHANNEL)
        reader.sync()  # the joins are behind us

        threads = [Sender(client, i, stop) for i, client in enumerate(senders)]
        for thread in threads:
            thread.start()

        received: list[tuple[str, str]] = []  # (msgid, text), in arrival order
        deadline = time.monotonic() + 30
        while len(received) < KILL_AFTER:
            assert time.monotonic() < deadline, f"only {len(received)} messages in 30 s"
            line = parse(reader.readline(timeout=10))
            if line.command == "PRIVMSG":
                received.append((line.tags["msgid"], line.params[1]))
        server.proc.kill()  # SIGKILL, mid-stream
        assert server.proc.wait(10) == -9
        # what was already on its way to the reader still counts as received
        with contextlib.suppress(ConnectionClosed):
            while True:
                line = parse(reader.readline(timeout=5))
                if line.command == "PRIVMSG":
                    received.append((line.tags["msgid"], line.params[1]))
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for client in [reader, *senders]:
            client.close()
    assert all(thread.error is None for thread in threads), [t.error for t in threads]
    assert all(not thread.is_alive() for thread in threads)
    # the senders were cut off mid-stream, not finished
    assert all(thread.sent < PER_SENDER for thread in threads)
    assert len({msgid for msgid, _ in received}) == len(received) >= KILL_AFTER

    # 1. the file, read directly: every message received is there, with its text
    with closing(sqlite3.connect(db)) as conn:
        stored = dict(
            conn.execute("SELECT msgid, text FROM messages WHERE key = ?", (CHANNEL,)).fetchall()
        )
    missing = [(msgid, text) for msgid, text in received if stored.get(msgid) != text]
    assert missing == [], f"{len(missing)} received messages are not on disk: {missing[:5]}"

    # 2. a restarted server on the same file serves them, in the order they were received
    again = ServeProcess("--db", str(db), "--oper", ":".join(OPER))
    processes.append(again)
    client = Client(again.port(), name="historian")
    try:
        client.register_with_caps(
            "historian", ["batch", "message-tags", "server-time", "draft/chathistory"]
        )
        client.oper()  # many pages of history, fast
        client.join(CHANNEL)
        history = [(line.tags["msgid"], line.params[1]) for line in fetch_history(client, CHANNEL)]
    finally:
        client.close()
    for process in processes:
        log = process.kill()
        assert "Traceback" not in log and " ERROR " not in log, log
    assert len(history) == len(stored)
    # the reader got a prefix of the history: nothing received is missing, nothing reordered
    assert history[: len(received)] == received
    # and each sender's messages are in the order sent, each once
    for i in range(SENDERS):
        numbers = [int(text.split()[1]) for _, text in history if text.startswith(f"s{i} ")]
        assert numbers == list(range(len(numbers)))
