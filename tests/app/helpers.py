"""Helpers for app tests: waiting on the app, reading what it shows, and a raw-socket IRC user for
the other side of the conversation.

Waiting is always a bounded loop of `await pilot.pause(0.01)` on a condition (`wait_for`); a raw
user's reader thread queues what it receives, so waiting for it never blocks the app's event loop.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import ContentSwitcher, OptionList, Static

from tuichat.app import TuichatApp
from tuichat.net.client import ClientConfig
from tuichat.server import Server, ServerConfig
from tuichat.widgets import ChatLog, InputLine

HOST = "127.0.0.1"
SIZE = (120, 36)  # the terminal every app test runs in
NOW = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def fixed_clock() -> float:
    return NOW


T = TypeVar("T")

# the `in_chat` fixture: `async with in_chat() as (app, pilot):` runs the app, joined to #chat
InChat = Callable[[], AbstractAsyncContextManager[tuple[TuichatApp, Pilot[Any]]]]


# -- waiting --------------------------------------------------------------------------------------


async def wait_for(
    pilot: Pilot[Any],
    predicate: Callable[[], T | None],
    timeout: float = 5.0,
    what: str = "",
    show: Callable[[], object] | None = None,
) -> T:
    """Pause the app in 10 ms steps until `predicate()` is truthy; return its value. Fails after
    `timeout` seconds, naming `what` and showing `show()` (the screen state that mattered)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            context = f"\n--- state ---\n{show()}" if show is not None else ""
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what or predicate}{context}"
            )
        await pilot.pause(0.01)


# -- reading the screen ---------------------------------------------------------------------------


def current_log(app: TuichatApp) -> ChatLog:
    """The ChatLog on show (the current window's)."""
    switcher = app.query_one("#logs", ContentSwitcher)
    return switcher.query_one(f"#{switcher.current}", ChatLog)


def log_lines(app: TuichatApp) -> list[str]:
    """The text of the current window's log, one string per rendered line."""
    return [strip.text.rstrip() for strip in current_log(app).lines]


def log_entries(app: TuichatApp) -> list[str]:
    """The current window's log, one string per entry: a wrapped entry's continuation lines
    (indented under the text, past the `HH:MM ` column) are joined back with a space."""
    entries: list[str] = []
    for line in log_lines(app):
        if entries and line.startswith(" " * 6):
            entries[-1] += " " + line.strip()
        else:
            entries.append(line)
    return entries


def log_text(app: TuichatApp) -> str:
    return "\n".join(log_entries(app))


def _labels(option_list: OptionList) -> list[str]:
    labels = []
    for option in option_list.options:
        prompt = option.prompt
        labels.append(prompt.plain if isinstance(prompt, Text) else str(prompt))
    return labels


def window_labels(app: TuichatApp) -> list[str]:
    """The window list as shown: `'1 tuichat'`, `'2 #chat 3'` (3 unread), `'3 bob 1 !'` (marked)."""
    return [label.strip() for label in _labels(app.query_one("#window-list", OptionList))]


def member_labels(app: TuichatApp) -> list[str]:
    """The member list as shown, in its order: `'@alice'`, `'+bob'`, `'me'`."""
    return [label.strip() for label in _labels(app.query_one("#member-list", OptionList))]


def static_text(app: TuichatApp, selector: str) -> str:
    content = app.query_one(selector, Static).content
    return content.plain if isinstance(content, Text) else str(content)


def status_text(app: TuichatApp) -> str:
    return static_text(app, "#status")


def topic_text(app: TuichatApp) -> str:
    return static_text(app, "#topic")


def input_line(app: TuichatApp) -> InputLine:
    return app.query_one("#input", InputLine)


def screen_state(app: TuichatApp) -> str:
    """Everything a failing wait should show."""
    return (
        f"status: {status_text(app)!r}\ntopic: {topic_text(app)!r}\n"
        f"windows: {window_labels(app)}\nmembers: {member_labels(app)}\n"
        f"log:\n{log_text(app)}"
    )


async def wait_for_log(pilot: Pilot[Any], text: str, timeout: float = 5.0) -> None:
    """Wait until the current window's log shows `text`."""
    app = pilot.app
    assert isinstance(app, TuichatApp)
    await wait_for(
        pilot,
        lambda: text in log_text(app),
        timeout,
        what=f"{text!r} in the log",
        show=lambda: screen_state(app),
    )


async def wait_for_joined(
    pilot: Pilot[Any], channel: str, nick: str = "me", timeout: float = 5.0
) -> None:
    """Wait until `channel` is the current window, we are connected and listed as a member."""
    app = pilot.app
    assert isinstance(app, TuichatApp)
    await wait_for(
        pilot,
        lambda: (
            topic_text(app).startswith(channel)
            and "connected" in status_text(app).split("  ")
            and nick in [m.lstrip("~&@%+") for m in member_labels(app)]
        ),
        timeout,
        what=f"{nick} to be in {channel}",
        show=lambda: screen_state(app),
    )


async def submit(pilot: Pilot[Any], text: str) -> None:
    """Type `text` into the input line (as its value) and press Enter."""
    app = pilot.app
    assert isinstance(app, TuichatApp)
    input_line(app).value = text
    input_line(app).cursor_position = len(text)
    await pilot.press("enter")


# -- a raw-socket IRC user ------------------------------------------------------------------------


class RawUser:
    """A deliberately dumb IRC user: `send` writes a line; a reader thread queues every line
    received (answering PINGs); `expect` (async, for use under `run_test`) and `expect_now`
    (blocking) find the next line matching a pattern, consuming it and the lines before it."""

    def __init__(self, port: int, nick: str) -> None:
        self.nick = nick
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.settimeout(None)
        self.lines: list[str] = []
        self.eof = False
        self._pos = 0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()  # the reader thread answers PINGs
        self._thread = threading.Thread(target=self._read, name=f"raw-user-{nick}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<RawUser {self.nick}>"

    def _read(self) -> None:
        partial = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self.eof = True
                    self._cond.notify_all()
                return
            *lines, partial = (partial + data).split(b"\n")
            for raw in lines:
                line = raw.removesuffix(b"\r").decode("utf-8", "replace")
                if line.startswith("PING "):
                    with contextlib.suppress(OSError):
                        self.send("PONG " + line[5:])
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()

    def send(self, line: str) -> None:
        with self._send_lock:
            self.sock.sendall(line.encode() + b"\r\n")

    def _find(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        with self._cond:
            for index in range(self._pos, len(self.lines)):
                match = regex.search(self.lines[index])
                if match:
                    self._pos = index + 1
                    return match
        return None

    def _recent(self) -> str:
        with self._cond:
            return "\n".join(self.lines[-15:])

    def expect_now(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Block until a line matches `pattern` (only where the app's event loop may wait)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                match = self._find(regex)
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.eof:
                    raise AssertionError(
                        f"{self!r}: nothing matched {pattern!r} (eof={self.eof}); "
                        f"last lines:\n{self._recent()}"
                    )
                self._cond.wait(remaining)

    async def expect(self, pilot: Pilot[Any], pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Wait (letting the app run) until a line matches `pattern`."""
        regex = re.compile(pattern)
        return await wait_for(
            pilot,
            lambda: self._find(regex),
            timeout,
            what=f"{self!r} to receive {pattern!r}",
            show=self._recent,
        )

    def sync(self, timeout: float = 5.0) -> None:
        """Block until the server has handled everything sent so far (a PING's PONG comes back
        after it): what this user said is stored and delivered."""
        token = f"sync-{time.monotonic_ns()}"
        self.send(f"PING {token}")
        self.expect_now(rf" PONG \S+ :?{token}$", timeout)

    def request_caps(self, *caps: str) -> None:
        """CAP REQ after registration (IRCv3 302 allows it); wait for the ACK."""
        wanted = " ".join(caps)
        self.send(f"CAP REQ :{wanted}")
        self.expect_now(rf" CAP {re.escape(self.nick)} ACK :{re.escape(wanted)}\s*$")

    def register(self) -> None:
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :raw test user")
        self.expect_now(r"^:\S+ (376|422) ")

    def join(self, channel: str) -> None:
        self.send(f"JOIN {channel}")
        self.expect_now(rf"^:\S+ 366 {re.escape(self.nick)} {re.escape(channel)} ")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(2)


def client_config(port: int, nick: str = "me") -> ClientConfig:
    """Where the app connects; reconnects quickly (0.1 s to 0.5 s) so restart tests stay short."""
    return ClientConfig(host=HOST, port=port, nick=nick, backoff_min=0.1, backoff_max=0.5)


class Servers:
    """Starts tuichat servers on 127.0.0.1 (port 0 unless told); stops them all at teardown."""

    def __init__(self) -> None:
        self.started: list[Server] = []

    def start(
        self,
        port: int = 0,
        *,
        db: str | Path | None = None,
        clock: Callable[[], float] = fixed_clock,
        **settings: Any,
    ) -> Server:
        """A server on `port`; with `db`, it keeps history (and offers chathistory) there;
        `settings` are other `ServerConfig` fields (`state=Config(...)`)."""
        path = str(db) if db is not None else None
        config = ServerConfig(host=HOST, port=port, db=path, **settings)
        server = Server(config, clock=clock)
        server.start()
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


class FakeServer:
    """A hostile "server" on 127.0.0.1 port 0, for floods no real server would send: it accepts
    one client, welcomes it (001) once it has sent USER, and then writes whatever `flood` is
    given, from a thread of its own (so a client that stops reading blocks only that thread).
    Everything the client sends is kept in `received`."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.received: list[str] = []
        self.sent_bytes = 0
        self.welcomed = threading.Event()
        self._conn: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._start(self._serve)

    def _start(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name="fake-server", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self._conn = conn
        partial = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            *lines, partial = (partial + data).split(b"\r\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                self.received.append(line)
                if line.startswith("USER ") and not self.welcomed.is_set():
                    self._send(b":fake.example 001 me :Welcome\r\n")
                    self.welcomed.set()

    def _send(self, data: bytes) -> None:
        assert self._conn is not None
        self._conn.sendall(data)
        self.sent_bytes += len(data)

    def flood(self, lines: list[str], chunk: int = 1000) -> None:
        """Send `lines` after the welcome, `chunk` lines per `sendall`, from another thread."""
        data = [
            ("\r\n".join(lines[i : i + chunk]) + "\r\n").encode()
            for i in range(0, len(lines), chunk)
        ]

        def send() -> None:
            self.welcomed.wait(10)
            for piece in data:
                try:
                    self._send(piece)
                except OSError:
                    return

        self._start(send)

    def close(self) -> None:
        for sock in (self._conn, self.listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        for thread in self._threads:
            thread.join(2)
