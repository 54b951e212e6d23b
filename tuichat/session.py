"""The client's IRC policy, between `ClientState` and the app: what to send and what to show when
something happens on the connection. Rejoining and replaying what was typed while disconnected,
fetching history (the backlog on joining, exactly what was missed after a drop, page by page),
+typing (sent sparingly, shown for a while), read markers.

No Textual and no socket: each call takes what happened and a clock value and returns `Actions`,
which the app runs (it sends the lines, draws the changes, sets the timers)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from tuichat.client_state import ERROR, SERVER, Changes, ClientState, Entry, Window
from tuichat.net.protocol import Line, casefold, format_server_time

HISTORY_PAGE = 100  # messages per CHATHISTORY request after a reconnect
BACKLOG = 50  # messages of backlog fetched on joining a channel
TYPING_EVERY = 3.0  # seconds between our +typing=active while the user types
TYPING_SHOWN = 6.0  # seconds another's +typing=active is shown without news
MARK_READ_AFTER = 2.0  # seconds of reading before the read marker is sent (debounce)


@dataclass
class Actions:
    """What the app does after a call: send lines (in order), draw changes, add dividers."""

    send: list[Line | str] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)
    dividers: list[tuple[str, str]] = field(default_factory=list)  # (window key, text)
    status: bool = False  # the status line shows something that changed (typers, unsent)
    note: str | None = None  # for the status line only, not the log (a retry that failed again)
    mark_read_after: float | None = None  # send the read marker after this many seconds


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


class Session:
    """One connection's policy over its `ClientState` (shared with the app, which reads it to
    draw). `now` is the wall clock (server-time, the log's times); `mono` a monotonic one."""

    def __init__(self, state: ClientState, autojoin: list[str] | None = None) -> None:
        self.state = state
        self.autojoin = list(autojoin or [])  # channels to join on (re)connecting
        self.caps: frozenset[str] = frozenset()
        self.unsent: list[Unsent] = []
        self.typers: dict[str, dict[str, tuple[str, float]]] = {}  # key -> nick -> (nick, until)
        self._fetching: dict[str, Fetch] = {}  # windows fetching what they missed
        self._rejoin_pending: set[str] = set()  # channels to rejoin after a reconnect
        self._cursors: dict[str, tuple[str | None, float]] = {}  # history position at the drop
        self.disconnected_at: float | None = None  # the drop being made up for, if any
        self._labels = itertools.count(1)
        self._typing_sent = 0.0
        self._typing_target = ""
        self._drop_shown = (
            False  # the log said the connection dropped (and not yet that it is back)
        )

    # -- the connection ---------------------------------------------------------------------------

    def registered(self, caps: frozenset[str], now: float) -> Actions:
        """Welcomed (again): join the channels, send what was typed meanwhile, fetch history."""
        self.caps = caps
        actions = Actions()
        if self._drop_shown:
            self._drop_shown = False
            actions.changes.merge(self.state.info("reconnected", now, key=SERVER))
        if self.autojoin:
            if self.disconnected_at is not None:
                self._rejoin_pending = {casefold(name) for name in self.autojoin}
            # several JOIN lines if need be: one line holds 512 bytes
            actions.send += [Line("JOIN", (names,)) for names in joined_up(self.autojoin)]
        unsent, self.unsent = self.unsent, []
        for item in unsent:
            line, label = self.outgoing(item.line)
            actions.send.append(line)
            for window, entry in item.entries:
                if label is not None:
                    self.state.expect_echo(label, window, entry)
                else:
                    entry.state = "sent after reconnecting"
                actions.changes.updated.append((window, entry))
        if unsent:
            count = len(unsent)
            text = f"sent {count} line{'s' if count != 1 else ''} typed while disconnected"
            actions.changes.merge(self.state.info(text, now, key=SERVER))
            for target in {casefold(item.target) for item in unsent if item.target}:
                if target in self.state.windows:
                    actions.changes.merge(self.state.info(text, now, key=target))
        for key, window in self.state.windows.items():
            if window.kind == "query":
                self._fetch_history(key, actions)
        self._maybe_reconnected()
        return actions

    def disconnected(self, reason: str, retry_in: float | None, now: float) -> Actions:
        """The connection dropped (or an attempt failed; `retry_in` None: no more attempts):
        remember where each window's history stood, fail what awaited an echo, and say so."""
        rejoin = self.state.disconnected()
        if rejoin:
            self.autojoin = rejoin
        if self.disconnected_at is None:
            self.disconnected_at = now
            # what comes after is what was missed (a line arriving with our JOIN must not move
            # this past the gap)
            self._cursors = {
                key: (window.last_msgid, self.state.server_time)
                for key, window in self.state.windows.items()
            }
        self.typers.clear()
        actions = Actions()
        actions.changes.merge(self.state.fail_pending("the connection dropped"))
        # said once in the log (where the user is looking, and in the server window); later
        # failed attempts only show on the status line
        if self._drop_shown and retry_in is not None:
            actions.note = reason
            return actions
        self._drop_shown = True
        text = f"disconnected: {reason}"
        if retry_in is not None:
            text += " (reconnecting by itself)"
        actions.changes.merge(self.state.info(text, now, kind=ERROR, key=SERVER))
        if self.state.current != SERVER:
            actions.changes.merge(self.state.info(text, now, kind=ERROR))
        return actions

    def outgoing(self, line: Line | str) -> tuple[Line | str, str | None]:
        """The line as sent, and its label: a message the server will echo gets one, so that it
        shows as pending until the echo comes."""
        if not isinstance(line, Line) or line.command not in ("PRIVMSG", "NOTICE"):
            return line, None
        if "echo-message" not in self.caps:
            return line, None
        label = f"t{next(self._labels)}"
        if "labeled-response" in self.caps:
            line = Line(line.command, line.params, tags={"label": label})
        return line, label

    def keep_unsent(self, line: Line | str) -> Unsent:
        """A line that could not be sent: it goes out once the connection is back."""
        target = line.params[0] if isinstance(line, Line) and line.params else ""
        item = Unsent(line, target)
        self.unsent.append(item)
        return item

    def closed(self, key: str) -> None:
        """The user closed a window: its channel is not rejoined."""
        self.autojoin = [name for name in self.autojoin if casefold(name) != key]

    # -- what arrived -----------------------------------------------------------------------------

    def received(self, changes: Changes, mono: float) -> Actions:
        """What `ClientState.feed` made of received lines: learn about joined channels, follow
        typing. `changes` is for the app to draw; call `histories` once it has."""
        actions = Actions()
        current = self.state.current
        for key in changes.joined:
            # learn who is away (shown dimmed) without printing the reply
            self.state.quiet_who.add(key)
            actions.send.append(Line("WHO", (self.state.windows[key].name,)))
            self._fetch_history(key, actions)
        for key, nick, typing in changes.typing:
            typers = self.typers.setdefault(key, {})
            if typing == "active":
                typers[casefold(nick)] = (nick, mono + TYPING_SHOWN)
            else:
                typers.pop(casefold(nick), None)
            actions.status |= key == current
        for window, entry in changes.entries:
            if entry.kind in ("message", "action") and entry.nick and not entry.history:
                stopped = self.typers.get(window.key, {}).pop(casefold(entry.nick), None)
                actions.status |= stopped is not None and window.key == current
        if "draft/read-marker" in self.caps and any(w.key == current for w, _ in changes.entries):
            actions.mark_read_after = MARK_READ_AFTER
        return actions

    def histories(self, changes: Changes, now: float) -> Actions:
        """After `changes` were drawn: the next page of each history fetch, or its end."""
        actions = Actions()
        for key, added, received, last in changes.histories:
            self._history_done(key, added, received, last, now, actions)
        return actions

    # -- history ----------------------------------------------------------------------------------

    @property
    def _history_cap(self) -> bool:
        return bool(self.caps & {"draft/chathistory", "chathistory"})

    def _page(self) -> int:
        """Messages asked for per CHATHISTORY request: ours, or the server's limit if lower."""
        limit = self.state.chathistory_max
        return min(HISTORY_PAGE, limit) if limit else HISTORY_PAGE

    def _fetch_history(self, key: str, actions: Actions) -> None:
        """After our JOIN (or a reconnect): the backlog, or exactly what was missed."""
        window = self.state.windows.get(key)
        self._rejoin_pending.discard(key)
        if window is None or not self._history_cap:
            self._maybe_reconnected()
            return
        reconnect = self.disconnected_at is not None
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
            actions.send.append(Line("CHATHISTORY", ("LATEST", window.name, "*", str(BACKLOG))))
            self._maybe_reconnected()
            return
        self._fetching[key] = Fetch(reconnect)
        actions.send.append(Line("CHATHISTORY", ("AFTER", window.name, ref, str(self._page()))))

    def _history_done(
        self, key: str, added: int, received: int, last: str | None, now: float, actions: Actions
    ) -> None:
        window = self.state.windows.get(key)
        if window is None:
            return
        fetch = self._fetching.get(key)
        if fetch is None:
            if added:
                actions.dividers.append((key, "end of backlog"))
            return
        fetch.total += added
        if received >= self._page() and last is not None:  # a full page: there may be more
            ref = f"msgid={last}"
            actions.send.append(Line("CHATHISTORY", ("AFTER", window.name, ref, str(self._page()))))
            return
        del self._fetching[key]
        total = fetch.total
        messages = f"{total} message{'s' if total != 1 else ''}"
        if fetch.reconnect:
            since = self.disconnected_at or now
            span = f"{hhmm(since)}–{hhmm(now)}"  # noqa: RUF001 (an en dash)
            actions.dividers.append((key, f"disconnected {span}, {messages} fetched"))
        else:
            actions.dividers.append((key, f"{messages} since you left"))
        self._maybe_reconnected()

    def _maybe_reconnected(self) -> None:
        """Once every window has fetched what it missed, the disconnect is over."""
        if not self._fetching and not self._rejoin_pending:
            self.disconnected_at = None

    # -- typing and read markers ------------------------------------------------------------------

    def typing(self, text: str, mono: float) -> list[Line | str]:
        """The input line holds `text` now: +typing, sparingly (`active` at most every
        TYPING_EVERY seconds while typing, `done` when cleared)."""
        window = self.state.windows.get(self.state.current)
        if window is None or window.kind == "server" or "message-tags" not in self.caps:
            return []
        if window.kind == "channel" and not window.joined:
            return []
        typing = text and not text.startswith("/")
        if typing and (
            mono - self._typing_sent > TYPING_EVERY or self._typing_target != window.name
        ):
            self._typing_sent, self._typing_target = mono, window.name
            return [Line("TAGMSG", (window.name,), tags={"+typing": "active"})]
        if not typing and self._typing_sent and self._typing_target == window.name:
            self._typing_sent = 0.0
            if not text:
                return [Line("TAGMSG", (window.name,), tags={"+typing": "done"})]
        return []

    def expire_typing(self, mono: float) -> bool:
        """Forget typers not heard from for a while; True if any went."""
        changed = False
        for typers in self.typers.values():
            for folded in [f for f, (_, until) in typers.items() if until <= mono]:
                del typers[folded]
                changed = True
        return changed

    def mark_read(self, registered: bool) -> list[Line | str]:
        """Tell the server how far the current window has been read (draft/read-marker)."""
        window = self.state.windows.get(self.state.current)
        if window is None or window.kind == "server" or not window.last_time:
            return []
        if "draft/read-marker" not in self.caps or not registered:
            return []
        if window.read_marker is not None and window.read_marker >= window.last_time:
            return []
        window.read_marker = window.last_time
        stamp = "timestamp=" + format_server_time(int(window.last_time * 1000))
        return [Line("MARKREAD", (window.name, stamp))]


def joined_up(names: list[str], limit: int = 400) -> list[str]:
    """Channel names joined with commas into pieces that fit a line."""
    pieces: list[str] = []
    for name in names:
        if pieces and len(pieces[-1]) + 1 + len(name) <= limit:
            pieces[-1] += "," + name
        else:
            pieces.append(name)
    return pieces


def hhmm(moment: float) -> str:
    return time.strftime("%H:%M", time.localtime(moment))
