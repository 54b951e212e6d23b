"""`tuichat serve` as a real process: it says where it listens and stops cleanly on a signal."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Client

ROOT = Path(__file__).resolve().parents[2]


class ServeProcess:
    """`python -m tuichat serve --port 0`, with its stderr read by a thread (so that it never
    fills up) into a queue of lines."""

    def __init__(self, tmp_path: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tuichat",
                "serve",
                "--port",
                "0",
                "--db",
                str(tmp_path / "tuichat.db"),
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} on stderr: {self.stderr}") from None
            if line is None:
                raise AssertionError(f"stderr closed before {pattern!r}: {self.stderr}")
            self.stderr.append(line)
            match = regex.search(line)
            if match is not None:
                return match

    def rest_of_stderr(self) -> str:
        """Everything the process wrote to stderr (call after it has exited)."""
        self._reader.join(5)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.stderr.append(line)
        return "".join(self.stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(tmp_path)
    try:
        yield process
    finally:
        process.kill()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_the_server_down(serve: ServeProcess, signum: signal.Signals) -> None:
    port = int(serve.wait_for_line(r"listening on 127\.0\.0\.1 port (\d+)$")[1])
    assert port != 0
    client = Client(port)
    unregistered = Client(port)
    stuck = Client(port, rcvbuf=4096)
    try:
        client.register("alice")
        client.join("#c")
        unregistered.send("NICK notyet")
        unregistered.sync()
        # a client that asks for a lot and reads none of it must not hold up the shutdown
        stuck.register("stuck")
        stuck.join("#c")
        stuck.send_raw(b"LUSERS\r\n" * 3000)
        client.expect(r"^:stuck!\S+ JOIN #c$")
        sent = time.monotonic()
        serve.proc.send_signal(signum)
        client.expect(r"^ERROR :Server shutting down$", timeout=3)
        assert client.expect_closed(timeout=3) == []
        unregistered.expect(r"^ERROR :Server shutting down$", timeout=3)
        assert unregistered.expect_closed(timeout=3) == []
        code = serve.proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        client.close()
        unregistered.close()
        stuck.close()
    assert code == 0
    assert elapsed < 2
    stderr = serve.rest_of_stderr()
    assert "Traceback" not in stderr
    assert " ERROR " not in stderr
