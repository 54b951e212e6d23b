"""The Textual app: a window list, the current window's log, its members, topic, status, input."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, OptionList

from tuichat import commands, gc_tuning
from tuichat.client_state import ERROR, INFO, SERVER, Changes, ClientState, Entry
from tuichat.inbox import INBOX_LINES, Inbox, Slicer
from tuichat.messages import InboxFilled
from tuichat.net import client as net
from tuichat.net.protocol import Line, casefold
from tuichat.session import Actions, Session
from tuichat.widgets import ChatLog, InputLine, MemberList, WindowList
from tuichat.widgets.bars import StatusLine, TopicBar
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
        self.clock = clock
        self.greeting = greeting or []
        self.scrollback = scrollback
        self.state = ClientState(config.nick, server_label=config.host)
        self.session = Session(self.state, channels)
        self.client = net.Client(config, self._on_client_event)
        self.logs: dict[str, ChatLog] = {}
        self._log_ids = 0
        self.connection = "connecting"
        self.lag: float | None = None
        self.select_on_join: set[str] = set()
        self._mark_timer: Timer | None = None
        self._last_activity = self._last_full_gc = time.monotonic()
        # what the connection's thread received, in order, until the UI takes it (bounded)
        self._inbox: Inbox[Line | net.ClientEvent] = Inbox(INBOX_LINES)
        self._members_timer: Timer | None = None
        # taken a slice at a time; what a later slice raises, the app shows and ends with
        self._slicer = Slicer(
            self._inbox, self._took, lambda: self.is_running, self._handle_exception
        )

    # -- layout -----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield WindowList(id="window-list")
            with Vertical(id="main"):
                yield TopicBar(id="topic")
                yield ContentSwitcher(id="logs")
                yield StatusLine(id="status")
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
        self._inbox.close()
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
        items = event.lines if isinstance(event, net.LinesReceived) else (event,)
        if self._inbox.put(items):
            self.post_message(InboxFilled())

    def on_inbox_filled(self, message: InboxFilled) -> None:
        self._slicer.drain()

    def _took(self, items: list[Line | net.ClientEvent]) -> None:
        """A slice of the inbox: lines in runs, connection events between them, in order."""
        lines: list[Line] = []
        for item in items:
            if isinstance(item, Line):
                lines.append(item)
                continue
            self._lines_received(lines)
            lines = []
            self._connection_changed(item)
        self._lines_received(lines)

    def _lines_received(self, lines: list[Line]) -> None:
        if not lines:
            return
        self._last_activity = time.monotonic()
        now = self.clock()
        changes = Changes()
        for line in lines:
            changes.merge(self.state.feed(line, now))
        self._run(self.session.received(changes, time.monotonic()))
        self._apply(changes)
        self._run(self.session.histories(changes, self.clock()))  # the marker goes below them

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
            self.state.set_nick(event.nick)
            self._run(self.session.registered(event.caps, now))
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
            actions = self.session.disconnected(event.reason, event.retry_in, now)
            if actions.note is not None:
                self.connection += f" ({actions.note})"
            self._run(actions)
            self._refresh_all()
        self._refresh_status()

    @property
    def caps(self) -> frozenset[str]:
        """The capabilities the server acknowledged."""
        return self.session.caps

    def _run(self, actions: Actions) -> None:
        """Do what the session decided: send, draw, divide, remember to mark read."""
        for line in actions.send:
            self.client.send(line)
        self._apply(actions.changes)
        for key, text in actions.dividers:
            if key in self.state.windows:
                self._log_for(key).add_divider(text)
        if actions.status:
            self._refresh_status()
        if actions.mark_read_after is not None and self._mark_timer is None:
            self._mark_timer = self.set_timer(actions.mark_read_after, self._mark_read)

    def _send(self, line: Line | str) -> tuple[bool, str | None]:
        """Send a typed line (labelled when the server will echo it); (sent, label)."""
        line, label = self.session.outgoing(line)
        if not self.client.registered or not self.client.send(line):
            return False, None
        return True, label

    def _expire_typing(self) -> None:
        if self.session.expire_typing(time.monotonic()):
            self._refresh_status()

    def _mark_read(self) -> None:
        self._mark_timer = None
        for line in self.session.mark_read(self.client.registered):
            self.client.send(line)

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
        self.query_one("#topic", TopicBar).show(window, self.state.network)

    def _refresh_status(self) -> None:
        typers = self.session.typers.get(self.state.current, {})
        self.query_one("#status", StatusLine).show(
            self.state.nick,
            self.server_label,
            self.connection,
            insecure=self.config.insecure,
            lag=self.lag,
            unsent=len(self.session.unsent),
            typers=[nick for nick, _ in typers.values()],
        )

    def select_window(self, key: str) -> None:
        if key not in self.state.windows:
            return
        self.state.select(key)
        self.query_one("#logs", ContentSwitcher).current = self._log_for(key).id
        self._refresh_all()
        self._mark_read()

    # -- input ------------------------------------------------------------------------------------

    def _completions(self, word: str, at_start: bool) -> list[str]:
        return commands.completions(word, at_start, self.state)

    @on(Input.Changed, "#input")
    def on_input_changed(self, event: Input.Changed) -> None:
        self._last_activity = time.monotonic()
        for line in self.session.typing(event.value, time.monotonic()):
            self.client.send(line)

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
                    self.session.keep_unsent(line)
                    self._refresh_status()
            elif isinstance(action, commands.ShowOwn):
                changes = self.state.own_message(action.target, action.text, now, action.kind)
                for window, entry in changes.entries:
                    if not sent:
                        entry.state = "not sent yet: will be sent on reconnect"
                        if self.session.unsent:
                            self.session.unsent[-1].entries.append((window, entry))
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
        self.session.closed(key)
        self.state.close(key)
        self.logs.pop(key).remove()
        self.select_window(self.state.current)

    def quit_chat(self, reason: str = "") -> None:
        self._inbox.close()
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


MEMBERS_SHOWN = 300  # the member list shows this many (operators first; ten screenfuls), counts all
MEMBERS_EVERY = 0.5  # seconds between redraws of a member list longer than that

# with gc_tuning installed, cycles among old objects wait for this: every FULL_GC_EVERY seconds,
# when nothing has happened for 2 s, everything is collected
FULL_GC_EVERY = 600.0


def _seconds(delay: float) -> str:
    return f"{delay:.0f}s" if delay >= 1 else f"{delay:.1f}s"


__all__ = ["Entry", "TuichatApp"]
