"""Helpers for integration tests: a raw-socket IRC client and a way to read from many at once.

`Client` is a deliberately dumb IRC client: `send` writes a line, `expect` reads lines until one
matches a pattern (the lines it passes over are kept in `seen` for error messages; lines it has
not looked at yet stay queued for the next call), `register` does NICK/USER and waits for the end
of the welcome burst. `pump` reads from many clients at once, for tests that need everybody to
keep reading while they send.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import re
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from tuichat.net.protocol import Line, parse
from tuichat.server import Server, ServerConfig

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
#: An operator login that `history_server` and the kill -9 test configure (see `Client.oper`).
OPER = ("tester", "tester-password")
#: The welcome burst ends with the MOTD, or with 422 when there is none.
END_OF_WELCOME = r"^:\S+ (376|422) "


class ConnectionClosed(AssertionError):
    """The server closed the connection while a line was expected."""


class Client:
    """A raw-socket IRC client for tests. Lines are `str` without CRLF; bytes that are not UTF-8
    come through as lone surrogates (surrogateescape), so a test can tell what the server sent."""

    _tokens = itertools.count()

    def __init__(
        self,
        port: int,
        *,
        rcvbuf: int | None = None,
        answer_pings: bool = False,
        name: str = "client",
        source: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # before connect(), so that the window offered in the handshake is already small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            # another loopback address (127.0.0.2...): a client "from elsewhere" for per-IP limits
            sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect((HOST, port))
        if tls is not None:
            # the handshake happens here, within the 5 s timeout
            sock = tls.wrap_socket(sock, server_hostname=HOST)
        self.sock = sock
        self.name = name
        self.nick: str | None = None
        #: Answer each `PING x` read with `PONG x` (the PING is still queued).
        self.answer_pings = answer_pings
        #: Lines that `expect` read past or returned, the most recent last (for error messages).
        self.seen: deque[str] = deque(maxlen=50)
        self.eof = False
        self._lines: deque[str] = deque()
        self._partial = b""
        self._closed = False

    def __repr__(self) -> str:
        return f"<Client {self.nick or self.name}>"

    # -- sending ----------------------------------------------------------------------------------

    def send(self, line: str | bytes) -> None:
        """Send one line; CRLF is added."""
        data = line.encode() if isinstance(line, str) else line
        self.send_raw(data + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (a partial line, several lines, garbage)."""
        self.sock.sendall(data)

    # -- receiving --------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if not data:
            self.eof = True
            return
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for raw in lines:
            line = raw.removesuffix(b"\r").decode("utf-8", "surrogateescape")
            if self.answer_pings and line.startswith("PING "):
                self.send("PONG " + line[5:])
            self._lines.append(line)

    def _fill(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for data and queue the lines in it."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        except ConnectionResetError:
            data = b""
        self._feed(data)

    def fill_nowait(self) -> None:
        """Queue the lines of whatever data has arrived, without waiting."""
        if isinstance(self.sock, ssl.SSLSocket):
            # no recv flags on TLS sockets
            self._fill(0)
            return
        try:
            data = self.sock.recv(262144, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        self._feed(data)

    def take(self) -> list[str]:
        """Every queued line, removed from the queue."""
        lines = list(self._lines)
        self._lines.clear()
        self.seen.extend(lines)
        return lines

    def readline(self, timeout: float = 5) -> str:
        """The next line; fails after `timeout` seconds or when the server closes."""
        deadline = time.monotonic() + timeout
        while not self._lines:
            if self.eof:
                raise ConnectionClosed(f"{self!r}: connection closed; last lines: {self._recent()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self!r}: no line in {timeout} s; last: {self._recent()}")
            self._fill(remaining)
        line = self._lines.popleft()
        self.seen.append(line)
        return line

    def expect(self, pattern: str, timeout: float = 5) -> re.Match[str]:
        """Read lines until one matches `pattern` (re.search) and return the match."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.readline(max(remaining, 0))
            except ConnectionClosed as error:
                raise ConnectionClosed(f"waiting for {pattern!r}: {error}") from None
            except AssertionError:
                raise AssertionError(
                    f"{self!r}: nothing matched {pattern!r} in {timeout} s; "
                    f"last lines: {self._recent()}"
                ) from None
            match = regex.search(line)
            if match is not None:
                return match

    def sync(self, timeout: float = 5) -> list[str]:
        """Round-trip a PING and return every line that arrived before its PONG.

        The server answers in order, so anything it sent this client before the PING is in the
        result: the way to check that something did *not* arrive, without sleeping."""
        token = f"sync-{next(self._tokens)}"
        self.send(f"PING {token}")
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(max(deadline - time.monotonic(), 0))
            if re.fullmatch(rf":\S+ PONG \S+ :?{token}", line):
                return lines
            lines.append(line)

    def expect_closed(self, timeout: float = 5) -> list[str]:
        """Read until the server closes the connection; return the lines read on the way."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            try:
                lines.append(self.readline(max(deadline - time.monotonic(), 0)))
            except ConnectionClosed:
                return lines

    def register(self, nick: str, *, password: str | None = None) -> Client:
        """NICK + USER, then wait for the end of the welcome burst."""
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} the tester")
        self.expect(rf"^:\S+ 001 {re.escape(nick)} ")
        self.expect(END_OF_WELCOME)
        self.nick = nick
        return self

    def register_with_caps(self, nick: str, caps: Sequence[str]) -> Client:
        """CAP LS 302, CAP REQ for `caps` (all acknowledged), NICK + USER, CAP END, then wait for
        the end of the welcome burst."""
        self.send("CAP LS 302")
        self.expect(r"^:\S+ CAP \* LS :")  # the last (or only) line of the list
        if caps:
            wanted = " ".join(caps)
            self.send(f"CAP REQ :{wanted}")
            self.expect(rf"^:\S+ CAP \* ACK :{re.escape(wanted)}$")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick} the tester")
        self.send("CAP END")
        self.expect(rf"^(@\S+ )?:\S+ 001 {re.escape(nick)} ")
        self.expect(r"^(@\S+ )?:\S+ (376|422) ")
        self.nick = nick
        return self

    def oper(self, name: str = OPER[0], password: str = OPER[1]) -> Client:
        """OPER up and wait for 381. Operators are exempt from the server's flood control, so a
        test that sends in bulk (and is not about flood control) makes its senders operators."""
        self.send(f"OPER {name} {password}")
        self.expect(r"^:\S+ 381 ")
        return self

    def join(self, channel: str) -> None:
        """JOIN and wait for the end of NAMES."""
        self.send(f"JOIN {channel}")
        self.expect(rf"^:\S+ 366 \S+ {re.escape(channel)} ")

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def reset(self) -> None:
        """Abort the connection with an RST (SO_LINGER 0), like a killed process or a dead link."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._closed = True
        self.sock.close()

    def _recent(self) -> list[str]:
        return [*list(self.seen)[-10:], *list(self._lines)[:10]]


def read_batch(client: Client, kind: str = "chathistory", timeout: float = 5) -> list[Line]:
    """Skip to the start of a batch of type `kind`, then return the lines inside it, parsed (each
    checked to carry the batch's tag)."""
    start = parse(
        client.expect(rf"^(@\S+ )?:\S+ BATCH \+\S+ {re.escape(kind)}( |$)", timeout).string
    )
    ref = start.params[0][1:]
    body: list[Line] = []
    while True:
        line = parse(client.readline(timeout))
        if line.command == "BATCH" and line.params == ("-" + ref,):
            return body
        assert line.tags.get("batch") == ref, f"{line} is not in batch {ref}"
        body.append(line)


def fetch_history(client: Client, target: str, page: int = 100) -> list[Line]:
    """Every message of `target`, oldest first, fetched page by page with CHATHISTORY AFTER
    msgid=<the last one seen>. The client needs batch, message-tags and chathistory (and to be an
    operator, if there are many pages and the server has flood control)."""
    lines: list[Line] = []
    cursor = "timestamp=1970-01-01T00:00:00.000Z"
    for _ in range(10_000):
        client.send(f"CHATHISTORY AFTER {target} {cursor} {page}")
        got = read_batch(client)
        if not got:
            return lines
        lines += got
        cursor = "msgid=" + got[-1].tags["msgid"]
    raise AssertionError(f"paging through {target} did not end")


def pump(clients: Sequence[Client], done: Callable[[], bool], timeout: float) -> None:
    """Read from every client at once until `done()` (which may `take()` lines) is true.

    Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout} s")
            for key, _ in selector.select(min(remaining, 0.1)):
                client = key.data
                client.fill_nowait()
                if client.eof:
                    selector.unregister(client.sock)


def read_until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    """Read until the server closes `sock`; return what it sent. Fails after `timeout` s."""
    received = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"not closed within {timeout} s; got {received[-200:]!r}"
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data


class ServeProcess:
    """`python -m tuichat serve --port 0 ARGS...` as a real process, its stderr read by a thread
    (so that it never fills up) into a queue of lines. `kill()` (idempotent) ends it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuichat", "serve", "--port", "0", *args],
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

    def port(self, timeout: float = 10) -> int:
        """The port it listens on, from its log."""
        return int(self.wait_for_line(r"listening on 127\.0\.0\.1 port (\d+)$", timeout)[1])

    def kill(self) -> str:
        """SIGKILL (if still running), reap it, and return everything it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.stderr.append(line)
        return "".join(self.stderr)


class StartServer(Protocol):
    def __call__(self, config: ServerConfig | None = None, /) -> Server: ...


class Connect(Protocol):
    def __call__(
        self,
        nick: str | None = None,
        *,
        server: Server | None = None,
        rcvbuf: int | None = None,
        answer_pings: bool = False,
        source: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Client: ...


class Bystander:
    """Two users chatting and PINGing the server every 0.1 s from another process
    (`bystander.py`), for a test that attacks the server: `with Bystander(server.port) as b:`
    runs the attack inside; afterwards `b.worst` is the longest PING round trip in seconds, `b.lost`
    the PINGs unanswered within 10 s, `b.chat_worst` the slowest chat line between the two."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.pings: list[float] = []
        self.chat: list[float] = []
        self.lost = 0
        self.chat_lost = 0

    def __enter__(self) -> Bystander:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "integration" / "bystander.py"), str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if ready.strip() != "ready":
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the bystander did not start: {ready!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            out, _ = self.proc.communicate("stop\n", timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        if exc[0] is None:
            result = json.loads(out.strip().splitlines()[-1])
            self.pings, self.chat = result["pings"], result["chat"]
            self.lost, self.chat_lost = result["lost"], result["chat_lost"]

    @property
    def worst(self) -> float:
        return max(self.pings, default=0.0)

    @property
    def chat_worst(self) -> float:
        return max(self.chat, default=0.0)

    def p99(self) -> float:
        ordered = sorted(self.pings)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def __repr__(self) -> str:
        return (
            f"Bystander(pings={len(self.pings)}, worst={self.worst:.3f} s, p99={self.p99():.3f} s,"
            f" lost={self.lost}, chat worst={self.chat_worst:.3f} s, chat lost={self.chat_lost})"
        )
