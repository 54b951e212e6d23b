"""The base of the client's view of IRC: its fields, windows, entries, and `feed`."""

from __future__ import annotations

import re
from collections import deque
from typing import TYPE_CHECKING

from tuichat.client_state.model import (
    CHATTY,
    ERROR,
    INFO,
    MAX_BATCHES,
    MESSAGE,
    SERVER,
    Changes,
    Entry,
    Member,
    Members,
    Window,
)
from tuichat.net.protocol import Line, casefold, parse_server_time


def _mention_re(nick: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w\[\]\\`^{{|}}-]){re.escape(nick)}(?![\w\[\]\\`^{{|}}-])", re.I)


class StateBase:
    """What every part of `ClientState` shares: its fields, the windows, adding entries, and
    feeding a line to the handler of its command (in `Lines` and `Numerics`)."""

    if TYPE_CHECKING:

        def _on_numeric(self, line: Line, now: float, changes: Changes) -> None: ...

    def __init__(self, nick: str, server_label: str = "server") -> None:
        self.nick = nick
        self.prefixes = {"o": "@", "v": "+"}  # mode -> prefix char, from ISUPPORT PREFIX
        self.chantypes = "#&"
        self.network = server_label
        self.windows: dict[str, Window] = {SERVER: Window(server_label, "server")}
        self.current = SERVER
        self._mention = _mention_re(nick)
        self.names_requested: set[str] = set()  # channels whose NAMES reply the user asked for
        self.quiet_who: set[str] = set()  # channels whose WHO reply only feeds the member list
        self.batches: dict[str, tuple[str, str]] = {}  # open batches: id -> (type, target)
        # per open history batch: [messages received, messages new to us, last msgid]
        self.batch_counts: dict[str, list[int | str | None]] = {}
        self.chathistory_max = 0  # ISUPPORT CHATHISTORY: the most a request returns (0: unknown)
        self.server_time = 0.0  # the newest server-time seen: where to fetch from after a drop
        self.pending: dict[str, tuple[Window, Entry]] = {}  # label -> our message awaiting echo
        self._time = 0.0  # the time of the line being fed (server-time, or arrival)
        self._batch: str | None = None  # the history batch the line being fed belongs to
        self._arrival = 0.0  # when the line being fed arrived (not its server-time)
        self._names: dict[str, Members] = {}  # NAMES being received, until its 366
        self._opened: deque[float] = deque()  # when others opened private windows lately

    # -- windows ----------------------------------------------------------------------------------

    def is_channel(self, name: str) -> bool:
        return bool(name) and name[0] in self.chantypes

    def window(self, name: str) -> Window | None:
        return self.windows.get(SERVER if name == SERVER else casefold(name))

    def open(self, name: str, changes: Changes | None = None) -> Window:
        """The window for `name` (a channel or a nick), created if need be."""
        key = casefold(name)
        window = self.windows.get(key)
        if window is None:
            window = Window(name, "channel" if self.is_channel(name) else "query")
            self.windows[key] = window
            if changes is not None:
                changes.windows = True
        return window

    def close(self, key: str) -> Window | None:
        """Forget a window (not the server window); the next one becomes current."""
        if key == SERVER or key not in self.windows:
            return None
        keys = list(self.windows)
        index = keys.index(key)
        window = self.windows.pop(key)
        if self.current == key:
            rest = list(self.windows)
            self.current = rest[min(index, len(rest) - 1)]
        return window

    def select(self, key: str) -> None:
        if key in self.windows:
            self.current = key
            window = self.windows[key]
            window.unread = 0
            window.mentioned = False

    def step(self, delta: int) -> str:
        """The key of the window `delta` places from the current one, wrapping."""
        keys = list(self.windows)
        return keys[(keys.index(self.current) + delta) % len(keys)]

    def channels(self) -> list[str]:
        """Names of the channels we are in or were in before a disconnect (to rejoin)."""
        return [w.name for w in self.windows.values() if w.kind == "channel" and w.joined]

    def sorted_members(self, key: str, limit: int | None = None) -> list[Member]:
        """The members of a window, operators first then by nick; with `limit`, the first
        `limit` only. Neither sorts them all: the members' keys are kept in order, and the few
        who hold a prefix are known (`Members`)."""
        window = self.windows.get(key)
        if window is None:
            return []
        ranks = {prefix: i for i, prefix in enumerate(self.prefixes.values())}
        members = window.members  # keyed by the casefolded nick: the order within a rank
        limit = len(members) if limit is None else limit
        ranked = sorted(
            (ranks[members[k].prefix], k) for k in members.marked if members[k].prefix in ranks
        )
        first = [members[k] for _, k in ranked[:limit]]
        if len(first) < limit:
            for k in members.order:
                member = members[k]
                if member.prefix not in ranks:
                    first.append(member)
                    if len(first) >= limit:
                        break
        return first

    def nicks(self, key: str) -> list[str]:
        window = self.windows.get(key)
        return [m.nick for m in window.members.values()] if window is not None else []

    # -- adding entries ---------------------------------------------------------------------------

    def add(self, changes: Changes, window: Window, entry: Entry) -> bool:
        """Show `entry` in `window`; False when it was shown before (same msgid)."""
        if entry.msgid is not None:
            if entry.msgid in window.seen:
                return False  # fetched twice (history after a reconnect): shown once
            window.seen[entry.msgid] = None
            if len(window.seen) > 5000:
                del window.seen[next(iter(window.seen))]
            if entry.time >= window.last_time:
                window.last_msgid, window.last_time = entry.msgid, entry.time
        changes.entries.append((window, entry))
        counts = not entry.own and entry.kind in (*CHATTY, ERROR)
        if entry.history:
            # old news, unless it came after where the user had read to
            counts = counts and window.read_marker is not None and entry.time > window.read_marker
        elif counts and window.key == self.current:
            counts = False
        if counts:
            if window.unread == 0:
                changes.dividers.append(entry)
            window.unread += 1
            if entry.mention or window.kind == "query":
                window.mentioned = True
            changes.windows = True
        if entry.history:
            return True
        if entry.mention or (window.kind == "query" and not entry.own and entry.kind in CHATTY):
            changes.bell = True
        return True

    def info(self, text: str, now: float, kind: str = INFO, key: str | None = None) -> Changes:
        """A line of our own (help, errors, connection state) in a window (default: current)."""
        changes = Changes()
        window = self.windows.get(key or self.current) or self.windows[SERVER]
        self.add(changes, window, Entry(now, kind, text))
        return changes

    def own_message(self, target: str, text: str, now: float, kind: str = MESSAGE) -> Changes:
        """Show a message we sent."""
        changes = Changes()
        window = self.open(target, changes)
        self.add(changes, window, Entry(now, kind, text, nick=self.nick, own=True))
        return changes

    def set_nick(self, nick: str) -> None:
        self.nick = nick
        self._mention = _mention_re(nick)

    def disconnected(self) -> list[str]:
        """The connection dropped: forget who is where; return the channels to rejoin."""
        rejoin = self.channels()
        self._names.clear()
        self.batches.clear()
        self.batch_counts.clear()
        for window in self.windows.values():
            window.members.clear()
            window.joined = False
        return rejoin

    # -- feeding lines ----------------------------------------------------------------------------

    def feed(self, line: Line, now: float) -> Changes:
        changes = Changes()
        self._time = self._arrival = now
        self._batch = None
        if line.tags:
            stamp = line.tags.get("time")
            if stamp:
                ms = parse_server_time(stamp)
                self._time = ms / 1000 if ms else now
                self.server_time = max(self.server_time, self._time)
            label = line.tags.get("label")
            batch = line.tags.get("batch")
            if batch is not None and batch in self.batches:
                kind, target = self.batches[batch]
                if kind == "labeled-response":
                    label = target  # a multi-line answer: its lines carry the batch's label
                else:
                    self._batch = batch  # history
            if line.command == "BATCH" and line.params[:1] and line.params[0].startswith("+"):
                if len(self.batches) >= MAX_BATCHES:
                    return changes  # never closed, they would pile up: its lines come as they are
                if len(line.params) > 1 and line.params[1] == "labeled-response" and label:
                    self.batches[line.params[0][1:]] = ("labeled-response", label)
                    return changes
            elif label in self.pending and self._settle(label, line, changes):
                return changes
        handler = getattr(self, "_on_" + line.command.lower(), None)
        if handler is not None:
            handler(line, self._time, changes)
        elif line.command.isdigit():
            self._on_numeric(line, self._time, changes)
        return changes

    def _me(self, nick: str | None) -> bool:
        return nick is not None and casefold(nick) == casefold(self.nick)

    def _member_key(self, nick: str) -> str:
        return casefold(nick)

    def _settle(self, label: str, line: Line, changes: Changes) -> bool:
        """The server answered one of our labelled messages: its echo marks it delivered, an
        error marks it not sent. True when the line is dealt with."""
        window, entry = self.pending.pop(label)
        if line.command in ("PRIVMSG", "NOTICE") and self._me(line.nick):
            entry.state = ""
            entry.msgid = line.tags.get("msgid")
            entry.time = self._time
            if entry.msgid:
                window.seen[entry.msgid] = None
                window.last_msgid, window.last_time = entry.msgid, entry.time
            changes.updated.append((window, entry))
            return True
        if line.command.isdigit() or line.command == "FAIL":
            entry.state = "not sent: " + (line.params[-1] if line.params else line.command)
            changes.updated.append((window, entry))
            return False  # the error is shown too
        return False

    def expect_echo(self, label: str, window: Window, entry: Entry) -> None:
        """`entry` (ours, just sent with `label`) is pending until the server echoes it."""
        entry.state = "sending"
        self.pending[label] = (window, entry)

    def fail_pending(self, reason: str) -> Changes:
        """The connection dropped: our messages still awaiting their echo were not confirmed."""
        changes = Changes()
        for window, entry in self.pending.values():
            entry.state = f"not sent: {reason}"
            changes.updated.append((window, entry))
        self.pending.clear()
        return changes

    def _set_prefix(self, member: Member, prefix: str, on: bool) -> None:
        held = set(member.modes)
        if on:
            held.add(prefix)
        else:
            held.discard(prefix)
        order = list(self.prefixes.values())
        member.modes = "".join(sorted(held, key=lambda c: order.index(c) if c in order else 99))
