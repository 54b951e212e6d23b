"""The Textual app: a window list, the current window's log, its members, topic, status, input."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, OptionList, Static

from tuichat import commands, gc_tuning
from tuichat.client_state import ERROR, INFO, SERVER, Changes, ClientState, Entry, Window
from tuichat.messages import InboxFilled
from tuichat.net import client as net
from tuichat.net.protocol import Line, casefold, format_server_time
from tuichat.text import plain, render
from tuichat.widgets import ChatLog, InputLine, MemberList, WindowList
from tuichat.widgets.trust_dialog import TrustDialog


class TuichatApp(App[None]):
    """A chat window on one IRC connection."""

    CSS_PATH = "styles.tcss"
    TITLE = "tuichat"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "quit", priority=True),
        Binding("ctrl+n", "step_window(1)", "next window", priority=True),
        Binding("ctrl+p", "step_window(-1)", "previous window", priority=True),
        Binding("pageup", "scroll_log(-1)", "scroll up", priority=True, show=False),
        Binding("pagedown", "scroll_log(1)", "scroll down", priority=True, show=False),
        *[
            Binding(f"alt+{n}", f"select_window({n})", f"window {n}", priority=True, show=False)
            for n in range(1, 10)
        ],
    ]

    def __init__(
        self,
        config: net.ClientConfig,
        *,
        channels: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        greeting: list[str] | None = None,
        scrollback: int = 10_000,
        server_label: str | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        # how the status line names the server (tests pass a fixed one to keep ports off screen)
        self.server_label = server_label or f"{config.host}:{config.port}"
        self.autojoin = list(channels or [])
        self.clock = clock
        self.greeting = greeting or []
        self.scrollback = scrollback
        self.state = ClientState(config.nick, server_label=config.host)
        self.client = net.Client(config, self._on_client_event)
        self.logs: dict[str, ChatLog] = {}
        self._log_ids = 0
        self.connection = "connecting"
        self.lag: float | None = None
        self.unsent: list[Unsent] = []
        self.select_on_join: set[str] = set()
        self._disconnect_shown = False
        self.caps: frozenset[str] = frozenset()
        self.typers: dict[str, dict[str, tuple[str, float]]] = {}  # key -> nick -> (nick, until)
        self._fetching: dict[str, Fetch] = {}  # windows fetching what they missed
        self._rejoin_pending: set[str] = set()  # channels to rejoin after a reconnect
        self._cursors: dict[str, tuple[str | None, float]] = {}  # history position at the drop
        self._disconnected_at: float | None = None
        self._labels = itertools.count(1)
        self._typing_sent = 0.0
        self._typing_target = ""
        self._mark_timer: Timer | None = None
        self._last_activity = self._last_full_gc = time.monotonic()
        # what the connection's thread received, in order, until the UI takes it (bounded)
        self._inbox: deque[Line | net.ClientEvent] = deque()
        self._inbox_changed = threading.Condition()
        self._inbox_closed = False  # the app is ending: the connection's thread must not wait
        self._members_timer: Timer | None = None
        self._slice_ended = 0.0  # when the last slice of the inbox stopped with more to take

    # -- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield WindowList(id="window-list")
            with Vertical(id="main"):
                yield Static(id="topic")
                yield ContentSwitcher(id="logs")
                yield Static(id="status")
                yield InputLine(self._completions, id="input")
            yield MemberList(id="member-list")

    async def on_mount(self) -> None:
        self._log_for(SERVER)
        self.query_one("#logs", ContentSwitcher).current = self.logs[SERVER].id
        for text in self.greeting:
            self._apply(self.state.info(text, self.clock(), key=SERVER))
        self._refresh_all()
        self.query_one("#input", InputLine).focus()
        self.client.start()
        self.set_interval(1.0, self._expire_typing)
        gc_tuning.install(eager=True)
        self.set_interval(FULL_GC_EVERY / 10, self._collect_when_idle)

    def on_unmount(self) -> None:
        self._close_inbox()
        self.client.close()
        gc_tuning.uninstall(eager=True)

    def _collect_when_idle(self) -> None:
        """Now and then, while nothing happens, a full garbage collection of everything (frozen
        objects included), for cycles that died after they were frozen."""
        now = time.monotonic()
        since = now - self._last_full_gc
        # when idle; or, in a window that is never idle for long, in any case now and then
        if (now - self._last_activity > 2 and since > FULL_GC_EVERY) or since > 3 * FULL_GC_EVERY:
            self._last_full_gc = now
            gc_tuning.collect_all()

    # -- the connection (its thread posts; everything below runs on the UI) -----------------------

    def _on_client_event(self, event: net.ClientEvent) -> None:
        """Called on the connection's thread: hand over to the UI, touch nothing.

        Everything goes into one queue, in order; a wake-up message is posted only when it was
        empty, so a flood is one message in the UI's queue, not thousands. When the UI is
        INBOX_LINES behind, this thread waits (and reads nothing more: the server's sendq takes
        the rest, as TCP intends) rather than growing the queue without end."""
        with self._inbox_changed:
            while len(self._inbox) >= INBOX_LINES and not self._inbox_closed:
                self._inbox_changed.wait(0.5)
            if self._inbox_closed:
                return
            wake = not self._inbox
            if isinstance(event, net.LinesReceived):
                self._inbox.extend(event.lines)
            else:
                self._inbox.append(event)
        if wake:
            self.post_message(InboxFilled())

    def _close_inbox(self) -> None:
        with self._inbox_changed:
            self._inbox_closed = True
            self._inbox.clear()
            self._inbox_changed.notify_all()

    def on_inbox_filled(self, message: InboxFilled) -> None:
        self._drain()

    def _drain(self) -> None:
        """Take what the connection received, for a slice of time (SLICE_SECONDS to MAX_SLICE);
        if more is left, go on after whatever else is waiting (a key, a redraw), so the keyboard
        never waits long."""
        start = time.perf_counter()
        # as long as what ran since the last slice (keys, and mostly redrawing the screen), within
        # bounds: on a slow machine a redraw costs more, and the flood must still get half
        since = start - self._slice_ended if self._slice_ended else 0.0
        deadline = start + min(MAX_SLICE, max(SLICE_SECONDS, since))
        self._slice_ended = 0.0
        while True:
            with self._inbox_changed:
                if self._inbox_closed:
                    return
                take = min(CHUNK_LINES, len(self._inbox))
                items = [self._inbox.popleft() for _ in range(take)]
                if take and len(self._inbox) < INBOX_LINES:
                    self._inbox_changed.notify_all()
                left = bool(self._inbox)
            lines: list[Line] = []
            for item in items:
                if isinstance(item, Line):
                    lines.append(item)
                    continue
                self._lines_received(lines)
                lines = []
                self._connection_changed(item)
            self._lines_received(lines)
            if not left:
                return
            now = time.perf_counter()
            if now >= deadline:
                self._slice_ended = now
                # straight on the event loop: a Textual timer this short that starts late skips
                # its only run, and the rest of the inbox would wait for the next line to arrive
                asyncio.get_running_loop().call_later(NEXT_SLICE, self._next_slice, NEXT_HOPS)
                return

    def _next_slice(self, hops: int = 0) -> None:
        """The next slice; first, `hops` turns of the event loop for what is waiting: a key goes
        from the app to the screen to the input line as messages, one turn each, and would
        otherwise wait for a slice at every step."""
        if not self.is_running:
            return
        if hops:
            asyncio.get_running_loop().call_soon(self._next_slice, hops - 1)
            return
        try:
            self._drain()
        except Exception as error:  # as a timer's callback would: the app shows it and ends
            self._handle_exception(error)

    def _lines_received(self, lines: list[Line]) -> None:
        if not lines:
            return
        self._last_activity = time.monotonic()
        now = self.clock()
        changes = Changes()
        for line in lines:
            changes.merge(self.state.feed(line, now))
        for key in changes.joined:
            name = self.state.windows[key].name
            # learn who is away (shown dimmed) without printing the reply
            self.state.quiet_who.add(key)
            self.client.send(Line("WHO", (name,)))
            self._fetch_history(key)
        for key, nick, typing in changes.typing:
            self._typing_seen(key, nick, typing)
        for window, entry in changes.entries:
            if entry.kind in ("message", "action") and entry.nick and not entry.history:
                stopped = self.typers.get(window.key, {}).pop(casefold(entry.nick), None)
                if stopped is not None and window.key == self.state.current:
                    self._refresh_status()
        self._apply(changes)
        for key, added, received, last in changes.histories:  # the marker goes below them
            self._history_done(key, added, received, last)
        if any(window.key == self.state.current for window, _ in changes.entries):
            self._mark_read_soon()

    def _connection_changed(self, event: net.ClientEvent) -> None:
        now = self.clock()
        if isinstance(event, net.Connecting):
            self.connection = "connecting"
            if event.attempt > 1:
                self.connection += f" (attempt {event.attempt})"
        elif isinstance(event, net.Connected):
            self.connection = "registering"
        elif isinstance(event, net.NickFallback):
            self._apply(
                self.state.info(
                    f"nick {event.old} is unavailable ({event.reason}); trying {event.new}",
                    now,
                    key=SERVER,
                )
            )
        elif isinstance(event, net.Registered):
            self.connection = "connected"
            self.caps = event.caps
            self.state.set_nick(event.nick)
            if self._disconnect_shown:
                self._disconnect_shown = False
                self._apply(self.state.info("reconnected", now, key=SERVER))
            self._rejoin()
            for key, window in self.state.windows.items():
                if window.kind == "query":
                    self._fetch_history(key)
            self._maybe_reconnected()
        elif isinstance(event, net.LagMeasured):
            self.lag = event.seconds
        elif isinstance(event, net.TrustQuestion):
            self.connection = "waiting for you to trust the certificate"
            self.push_screen(
                TrustDialog(event.host, event.port, event.fingerprint),
                lambda answer: self.client.trust(bool(answer)),
            )
        elif isinstance(event, net.Disconnected):
            retry = "" if event.retry_in is None else f"; retrying in {_seconds(event.retry_in)}"
            self.connection = f"disconnected{retry}"
            rejoin = self.state.disconnected()
            if rejoin:
                self.autojoin = rejoin
            if self._disconnected_at is None:
                self._disconnected_at = now
                # where each window's history stood: what comes after is what was missed (a
                # line arriving with our JOIN must not move this past the gap)
                self._cursors = {
                    key: (window.last_msgid, self.state.server_time)
                    for key, window in self.state.windows.items()
                }
            self._apply(self.state.fail_pending("the connection dropped"))
            self.typers.clear()
            # say it once in the log (where the user is looking, and in the server window);
            # later failed attempts only update the status line
            if not self._disconnect_shown or event.retry_in is None:
                self._disconnect_shown = True
                text = f"disconnected: {event.reason}"
                if event.retry_in is not None:
                    text += " (reconnecting by itself)"
                changes = self.state.info(text, now, kind=ERROR, key=SERVER)
                if self.state.current != SERVER:
                    changes.merge(self.state.info(text, now, kind=ERROR))
                self._apply(changes)
            else:
                self.connection += f" ({event.reason})"
            self._refresh_all()
        self._refresh_status()

    def _rejoin(self) -> None:
        if self.autojoin:
            if self._disconnected_at is not None:
                self._rejoin_pending = {casefold(name) for name in self.autojoin}
            # several JOIN lines if need be: one line holds 512 bytes
            for names in _joined_up(self.autojoin):
                self.client.send(Line("JOIN", (names,)))
        unsent, self.unsent = self.unsent, []
        for item in unsent:
            _, label = self._send(item.line)
            for window, entry in item.entries:
                if label is not None:
                    self.state.expect_echo(label, window, entry)
                else:
                    entry.state = "sent after reconnecting"
                if window.key in self.logs:
                    self.logs[window.key].changed(entry)
        if unsent:
            count = len(unsent)
            text = f"sent {count} line{'s' if count != 1 else ''} typed while disconnected"
            self._apply(self.state.info(text, self.clock(), key=SERVER))
            for target in {casefold(item.target) for item in unsent if item.target}:
                if target in self.state.windows:
                    self._apply(self.state.info(text, self.clock(), key=target))

    def _send(self, line: Line | str) -> tuple[bool, str | None]:
        """Send a line; a message gets a label when the server will echo it, so that it shows
        as pending until then. Returns (sent, label)."""
        label = None
        message = isinstance(line, Line) and line.command in ("PRIVMSG", "NOTICE")
        if message and isinstance(line, Line) and "echo-message" in self.caps:
            label = f"t{next(self._labels)}"
            if "labeled-response" in self.caps:
                line = Line(line.command, line.params, tags={"label": label})
        if not self.client.registered or not self.client.send(line):
            return False, None
        return True, label

    # -- history, typing, read markers (IRCv3) -----------------------------------------------------

    @property
    def _history_cap(self) -> bool:
        return bool(self.caps & {"draft/chathistory", "chathistory"})

    def _page(self) -> int:
        """Messages asked for per CHATHISTORY request: ours, or the server's limit if lower."""
        limit = self.state.chathistory_max
        return min(HISTORY_PAGE, limit) if limit else HISTORY_PAGE

    def _fetch_history(self, key: str) -> None:
        """After our JOIN (or a reconnect): the backlog, or exactly what was missed."""
        window = self.state.windows.get(key)
        self._rejoin_pending.discard(key)
        if window is None or not self._history_cap:
            self._maybe_reconnected()
            return
        reconnect = self._disconnected_at is not None
        last_msgid, server_time = window.last_msgid, self.state.server_time
        if reconnect and key in self._cursors:
            last_msgid, server_time = self._cursors.pop(key)
        if last_msgid is not None:
            ref = f"msgid={last_msgid}"
        elif reconnect and server_time:
            # nothing said here before the drop: from the last time the server told us, less a
            # second for lines stamped the same millisecond (seen ones are dropped by msgid)
            ref = "timestamp=" + format_server_time(int((server_time - 1.0) * 1000))
        else:
            self.client.send(Line("CHATHISTORY", ("LATEST", window.name, "*", str(BACKLOG))))
            self._maybe_reconnected()
            return
        self._fetching[key] = Fetch(reconnect)
        self.client.send(Line("CHATHISTORY", ("AFTER", window.name, ref, str(self._page()))))

    def _history_done(self, key: str, added: int, received: int, last: str | None) -> None:
        window = self.state.windows.get(key)
        if window is None:
            return
        log = self._log_for(key)
        fetch = self._fetching.get(key)
        if fetch is None:
            if added:
                log.add_divider("end of backlog")
            return
        fetch.total += added
        if received >= self._page() and last is not None:  # a full page: there may be more
            ref = f"msgid={last}"
            self.client.send(Line("CHATHISTORY", ("AFTER", window.name, ref, str(self._page()))))
            return
        del self._fetching[key]
        total = fetch.total
        messages = f"{total} message{'s' if total != 1 else ''}"
        if fetch.reconnect:
            since = self._disconnected_at or self.clock()
            span = f"{_hhmm(since)}–{_hhmm(self.clock())}"  # noqa: RUF001 (an en dash)
            log.add_divider(f"disconnected {span}, {messages} fetched")
        else:
            log.add_divider(f"{messages} since you left")
        self._maybe_reconnected()

    def _maybe_reconnected(self) -> None:
        """Once every window has fetched what it missed, the disconnect is over."""
        if not self._fetching and not self._rejoin_pending:
            self._disconnected_at = None

    def _typing_seen(self, key: str, nick: str, typing: str) -> None:
        typers = self.typers.setdefault(key, {})
        if typing == "active":
            typers[casefold(nick)] = (nick, time.monotonic() + 6.0)
        else:
            typers.pop(casefold(nick), None)
        if key == self.state.current:
            self._refresh_status()

    def _expire_typing(self) -> None:
        now = time.monotonic()
        changed = False
        for typers in self.typers.values():
            for folded in [f for f, (_, until) in typers.items() if until <= now]:
                del typers[folded]
                changed = True
        if changed:
            self._refresh_status()

    def _send_typing(self, text: str) -> None:
        """+typing, sparingly: `active` at most every 3 s while typing, `done` when cleared."""
        window = self.state.windows.get(self.state.current)
        if window is None or window.kind == "server" or "message-tags" not in self.caps:
            return
        if window.kind == "channel" and not window.joined:
            return
        now = time.monotonic()
        typing = text and not text.startswith("/")
        if typing and (now - self._typing_sent > 3.0 or self._typing_target != window.name):
            self._typing_sent, self._typing_target = now, window.name
            self.client.send(Line("TAGMSG", (window.name,), tags={"+typing": "active"}))
        elif not typing and self._typing_sent and self._typing_target == window.name:
            self._typing_sent = 0.0
            if not text:
                self.client.send(Line("TAGMSG", (window.name,), tags={"+typing": "done"}))

    def _mark_read_soon(self) -> None:
        if "draft/read-marker" in self.caps and self._mark_timer is None:
            self._mark_timer = self.set_timer(2.0, self._mark_read)

    def _mark_read(self) -> None:
        """Tell the server how far the current window has been read (draft/read-marker)."""
        self._mark_timer = None
        window = self.state.windows.get(self.state.current)
        if window is None or window.kind == "server" or not window.last_time:
            return
        if "draft/read-marker" not in self.caps or not self.client.registered:
            return
        if window.read_marker is not None and window.read_marker >= window.last_time:
            return
        window.read_marker = window.last_time
        stamp = "timestamp=" + format_server_time(int(window.last_time * 1000))
        self.client.send(Line("MARKREAD", (window.name, stamp)))

    # -- showing changes --------------------------------------------------------------------------

    def _log_for(self, key: str) -> ChatLog:
        log = self.logs.get(key)
        if log is None:
            self._log_ids += 1
            log = ChatLog(max_lines=self.scrollback, id=f"log-{self._log_ids}")
            log.display = key == self.state.current
            self.logs[key] = log
            self.query_one("#logs", ContentSwitcher).mount(log)
        return log

    def _apply(self, changes: Changes) -> None:
        dividers = {id(entry) for entry in changes.dividers}
        with contextlib.ExitStack() as adding:
            held: set[int] = set()
            for window, entry in changes.entries:
                log = self._log_for(window.key)
                if id(log) not in held:  # each log laid out once, after all its new rows
                    held.add(id(log))
                    adding.enter_context(log.adding())
                if id(entry) in dividers:
                    log.set_unread_divider()
                log.add(entry)
        for window, entry in changes.updated:
            if window.key in self.logs:
                self.logs[window.key].changed(entry)
        for key in changes.joined:
            if key in self.select_on_join or self.state.current == SERVER:
                self.select_on_join.discard(key)
                self.select_window(key)
                # say it again where the user is looking: how others can join this server
                greeting, self.greeting = self.greeting, []
                for text in greeting:
                    self._apply(self.state.info(text, self.clock(), key=key))
        if changes.bell:
            self.bell()
        if changes.windows:
            self._forget_closed_logs()
            self._refresh_windows()
        if self.state.current in changes.members:
            self._refresh_members_soon()
        if self.state.current in changes.topics:
            self._refresh_topic()
        if changes.nick:
            self._refresh_status()

    def _forget_closed_logs(self) -> None:
        for key in [key for key in self.logs if key not in self.state.windows]:
            self.logs.pop(key).remove()
        # a query renamed by a NICK change keeps its log under the new key
        for key in self.state.windows:
            if key not in self.logs:
                self._log_for(key)

    def _refresh_all(self) -> None:
        self._refresh_windows()
        self._refresh_members()
        self._refresh_topic()
        self._refresh_status()

    def _refresh_windows(self) -> None:
        self.query_one("#window-list", WindowList).show(
            list(self.state.windows.items()), self.state.current
        )

    def _refresh_members(self) -> None:
        if self._members_timer is not None:
            self._members_timer.stop()
            self._members_timer = None
        members = self.query_one("#member-list", MemberList)
        window = self.state.windows.get(self.state.current)
        members.display = window is not None and window.kind == "channel"
        count = len(window.members) if window is not None else 0
        members.show(self.state.sorted_members(self.state.current, MEMBERS_SHOWN), count)

    def _refresh_members_soon(self) -> None:
        """A small list is redrawn now; a large one at most every MEMBERS_EVERY seconds (while
        a thousand members join, sorting 100,000 for each would take the keyboard's time)."""
        window = self.state.windows.get(self.state.current)
        if window is None or len(window.members) <= MEMBERS_SHOWN:
            self._refresh_members()
        elif self._members_timer is None:
            self._members_timer = self.set_timer(MEMBERS_EVERY, self._refresh_members)

    def _refresh_topic(self) -> None:
        window = self.state.windows[self.state.current]
        if window.kind == "channel":
            topic = render(window.topic) if window.topic else Text("(no topic)", style="dim")
            text = Text(plain(window.name) + "  ", style="bold").append_text(topic)
        elif window.kind == "query":
            text = Text(f"private conversation with {plain(window.name)}", style="bold")
        else:
            text = Text(f"{plain(self.state.network)} — server messages", style="bold")
        self.query_one("#topic", Static).update(text)

    def _refresh_status(self) -> None:
        status = Text()
        status.append(plain(self.state.nick), style="bold")
        status.append(f"  {plain(self.server_label)}  ")
        style = "green" if self.connection == "connected" else "bold red"
        status.append(self.connection, style=style)
        if self.config.insecure:
            status.append("  INSECURE: certificate not checked", style="bold red")
        if self.lag is not None and self.connection == "connected":
            status.append(f"  lag {self.lag * 1000:.0f} ms", style="dim")
        if self.unsent:
            status.append(f"  {len(self.unsent)} unsent", style="bold yellow")
        typers = self.typers.get(self.state.current, {})
        if typers:
            names = ", ".join(plain(nick) for nick, _ in typers.values())
            verb = "is" if len(typers) == 1 else "are"
            status.append(f"  {names} {verb} typing…", style="italic")
        self.query_one("#status", Static).update(status)

    def select_window(self, key: str) -> None:
        if key not in self.state.windows:
            return
        self.state.select(key)
        self.query_one("#logs", ContentSwitcher).current = self._log_for(key).id
        self._refresh_all()
        self._mark_read()

    # -- input ------------------------------------------------------------------------------------

    def _completions(self, word: str, at_start: bool) -> list[str]:
        folded = casefold(word)
        if at_start and word.startswith("/"):
            pool = ["/" + name for name in commands.COMMANDS]
        elif word[:1] in self.state.chantypes:
            pool = [w.name for w in self.state.windows.values() if w.kind == "channel"]
        else:
            pool = sorted(self.state.nicks(self.state.current), key=casefold)
            window = self.state.windows.get(self.state.current)
            if window is not None and window.kind == "query":
                pool.append(window.name)
        return [name for name in pool if casefold(name).startswith(folded)]

    @on(Input.Changed, "#input")
    def on_input_changed(self, event: Input.Changed) -> None:
        self._last_activity = time.monotonic()
        self._send_typing(event.value)

    @on(Input.Submitted, "#input")
    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value
        field = self.query_one("#input", InputLine)
        field.remember(text)
        field.value = ""
        window = self.state.windows[self.state.current]
        is_text = not text.startswith("/") or text.startswith("//")
        if is_text and window.kind == "channel" and not window.joined and self.client.registered:
            message = f"you are not in {window.name}: /join {window.name} first"
            self._apply(self.state.info(message, self.clock(), kind=ERROR))
            return
        self.run_actions(commands.interpret(text, window, self.state.chantypes))

    def run_actions(self, actions: list[commands.Action]) -> None:
        now = self.clock()
        sent = True
        label: str | None = None
        for action in actions:
            if isinstance(action, commands.Send):
                line = action.line
                if isinstance(line, Line) and line.command in ("JOIN", "NAMES"):
                    keys = {casefold(name) for name in line.params[0].split(",")}
                    if line.command == "JOIN":
                        self.select_on_join |= keys
                    else:
                        self.state.names_requested |= keys
                sent, label = self._send(line)
                if not sent:
                    target = line.params[0] if isinstance(line, Line) and line.params else ""
                    self.unsent.append(Unsent(line, target))
                    self._refresh_status()
            elif isinstance(action, commands.ShowOwn):
                changes = self.state.own_message(action.target, action.text, now, action.kind)
                for window, entry in changes.entries:
                    if not sent:
                        entry.state = "not sent yet: will be sent on reconnect"
                        if self.unsent:
                            self.unsent[-1].entries.append((window, entry))
                    elif label is not None:
                        self.state.expect_echo(label, window, entry)
                self._apply(changes)
            elif isinstance(action, commands.OpenWindow):
                changes = Changes()
                window = self.state.open(action.name, changes)
                self._apply(changes)
                if action.select:
                    self.select_window(window.key)
            elif isinstance(action, commands.CloseWindow):
                self.close_current()
            elif isinstance(action, commands.ClearWindow):
                self._log_for(self.state.current).clear()
            elif isinstance(action, commands.Quit):
                self.quit_chat(action.reason)
            elif isinstance(action, commands.Show):
                self._apply(self.state.info(action.text, now, kind=action.kind))
        if not sent and not any(isinstance(a, commands.ShowOwn) for a in actions):
            self._apply(self.state.info("not connected: will be sent on reconnect", now, kind=INFO))

    def close_current(self) -> None:
        key = self.state.current
        window = self.state.windows[key]
        if window.kind == "server":
            self._apply(
                self.state.info(
                    "the server window stays open (/quit to leave)", self.clock(), kind=ERROR
                )
            )
            return
        if window.kind == "channel" and window.joined:
            self.client.send(Line("PART", (window.name,)))
        self.autojoin = [name for name in self.autojoin if casefold(name) != key]
        self.state.close(key)
        self.logs.pop(key).remove()
        self.select_window(self.state.current)

    def quit_chat(self, reason: str = "") -> None:
        self._close_inbox()
        self.client.quit(reason or "tuichat")
        self.exit()

    # -- keys and clicks --------------------------------------------------------------------------

    async def action_quit(self) -> None:
        self.quit_chat()

    def action_step_window(self, delta: int) -> None:
        self.select_window(self.state.step(delta))

    def action_select_window(self, number: int) -> None:
        keys = list(self.state.windows)
        if 0 < number <= len(keys):
            self.select_window(keys[number - 1])

    def action_scroll_log(self, direction: int) -> None:
        log = self._log_for(self.state.current)
        if direction < 0:
            log.scroll_page_up()
        else:
            log.scroll_page_down()

    @on(OptionList.OptionSelected, "#window-list")
    def on_window_clicked(self, event: OptionList.OptionSelected) -> None:
        if event.option_id is not None:
            self.select_window(event.option_id)
        self.query_one("#input", InputLine).focus()

    @on(OptionList.OptionSelected, "#member-list")
    def on_member_clicked(self, event: OptionList.OptionSelected) -> None:
        if event.option_id is not None and casefold(event.option_id) != casefold(self.state.nick):
            self.run_actions([commands.OpenWindow(event.option_id)])
        self.query_one("#input", InputLine).focus()


# the connection's thread waits when this many received lines wait for the UI (plus one read, 64
# KiB at most); the UI takes them CHUNK_LINES at a time for SLICE_SECONDS, then lets keys in
INBOX_LINES = 10_000
CHUNK_LINES = 10
SLICE_SECONDS = 0.008  # at least; as long as the pause before it (a redraw), up to MAX_SLICE
MAX_SLICE = 0.02
NEXT_SLICE = 0.0005  # the next slice comes after this pause (so that others run first)
NEXT_HOPS = 8  # and after this many turns of the event loop (a key's way through the widgets)
MEMBERS_SHOWN = 300  # the member list shows this many (operators first; ten screenfuls), counts all
MEMBERS_EVERY = 0.5  # seconds between redraws of a member list longer than that

# with gc_tuning installed, cycles among old objects wait for this: every FULL_GC_EVERY seconds,
# when nothing has happened for 2 s, everything is collected
FULL_GC_EVERY = 600.0


@dataclass
class Fetch:
    """A window fetching what it missed, page by page."""

    reconnect: bool  # after a dropped connection (else after a /part and /join)
    total: int = 0


@dataclass
class Unsent:
    """A line typed while disconnected, sent once the connection is back."""

    line: Line | str
    target: str
    entries: list[tuple[Window, Entry]] = field(default_factory=list)


HISTORY_PAGE = 100  # messages per CHATHISTORY request after a reconnect
BACKLOG = 50  # messages of backlog fetched on joining a channel


def _joined_up(names: list[str], limit: int = 400) -> list[str]:
    """Channel names joined with commas into pieces that fit a line."""
    pieces: list[str] = []
    for name in names:
        if pieces and len(pieces[-1]) + 1 + len(name) <= limit:
            pieces[-1] += "," + name
        else:
            pieces.append(name)
    return pieces


def _hhmm(moment: float) -> str:
    return time.strftime("%H:%M", time.localtime(moment))


def _seconds(delay: float) -> str:
    return f"{delay:.0f}s" if delay >= 1 else f"{delay:.1f}s"


__all__ = ["Entry", "TuichatApp"]
