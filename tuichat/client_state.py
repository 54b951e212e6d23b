"""The client's view of IRC: windows, channels, members, topics, unread counts. Pure.

`ClientState.feed(line, now)` updates the state from one received line and returns the `Changes`
it made (entries to show in which window, which member lists and topics changed). The Textual app
renders from this; nothing here knows about widgets, sockets or the clock.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold, parse_server_time, parse_uint
from tuichat.sorted_keys import SortedKeys

SERVER = "*server*"  # the key of the server window

# the kinds of log entries; the app styles them
MESSAGE = "message"
ACTION = "action"
NOTICE = "notice"
EVENT = "event"  # joins, parts, quits, nick and topic changes, modes, kicks: shown dimmed
INFO = "info"
ERROR = "error"
CHATTY = frozenset({MESSAGE, ACTION, NOTICE})

# bounds against a hostile or broken server (SECURITY.md)
MAX_BATCHES = 64  # open BATCHes at once; a BATCH + beyond is ignored (its lines shown plainly)
MAX_MEMBERS = 250_000  # members of one channel; NAMES beyond this is ignored
NEW_QUERIES = 5  # private windows opened by others' messages per QUERY_WINDOW seconds; beyond,
QUERY_WINDOW = 60.0  # the message is a line in the server window and no window opens


@dataclass
class Entry:
    """One line of a window's log."""

    time: float
    kind: str
    text: str
    nick: str | None = None
    own: bool = False
    mention: bool = False
    state: str = ""  # for our own messages: "sending", "not sent: ...", "" once delivered
    msgid: str | None = None
    history: bool = False  # from the server's history, not said just now


@dataclass(slots=True)
class Member:
    nick: str
    modes: str = ""  # prefix characters held, best first: "@+"
    away: bool = False
    account: str | None = None

    @property
    def prefix(self) -> str:
        return self.modes[:1]


class Members(dict[str, Member]):
    """A channel's members by casefolded nick, their keys also kept in order (`SortedKeys`) and
    those who ever held a prefix noted (`marked`), so that the first few hundred of the member
    list are found without sorting or scanning 100,000. Only the methods below change it."""

    def __init__(self) -> None:
        super().__init__()
        self.order = SortedKeys()
        self.marked: set[str] = set()  # held a prefix when added or since (a MODE): few

    def __setitem__(self, key: str, member: Member) -> None:
        super().__setitem__(key, member)
        self.order.add(key)
        if member.modes:
            self.marked.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.order.discard(key)
        self.marked.discard(key)

    def pop(self, key: str, default: Any = None) -> Any:
        if key not in self:
            return default
        member = super().pop(key)
        self.order.discard(key)
        self.marked.discard(key)
        return member

    def clear(self) -> None:
        super().clear()
        self.order.clear()
        self.marked.clear()

    def update(self, other: Any = (), /, **kwargs: Member) -> None:
        for key, member in dict(other, **kwargs).items():
            self[key] = member

    def mark(self, key: str) -> None:
        """`key`'s prefixes changed in place."""
        if key in self:
            self.marked.add(key)


@dataclass
class Window:
    name: str
    kind: str  # "server", "channel", "query"
    unread: int = 0
    mentioned: bool = False
    topic: str = ""
    joined: bool = False
    members: Members = field(default_factory=Members)
    last_msgid: str | None = None  # the newest message seen (to fetch what was missed)
    last_time: float = 0.0
    read_marker: float | None = None  # read up to here (draft/read-marker), seconds
    seen: dict[str, None] = field(default_factory=dict)  # recent msgids, to drop duplicates

    @property
    def key(self) -> str:
        return SERVER if self.kind == "server" else casefold(self.name)


@dataclass
class Changes:
    """What one `feed` changed."""

    entries: list[tuple[Window, Entry]] = field(default_factory=list)
    windows: bool = False  # the window list (names, order, unread marks) changed
    members: set[str] = field(default_factory=set)  # keys of windows whose member list changed
    topics: set[str] = field(default_factory=set)
    nick: bool = False  # our own nick changed
    joined: list[str] = field(default_factory=list)  # keys of channels we have just joined
    bell: bool = False  # we were mentioned or messaged privately
    updated: list[tuple[Window, Entry]] = field(default_factory=list)  # entries changed in place
    dividers: list[Entry] = field(default_factory=list)  # entries that start the unread part
    # history batches done: (key, messages new to us, messages received, the last one's msgid)
    histories: list[tuple[str, int, int, str | None]] = field(default_factory=list)
    typing: list[tuple[str, str, str]] = field(default_factory=list)  # (key, nick, state)

    def merge(self, other: Changes) -> None:
        """Add what `other` changed to this."""
        self.entries.extend(other.entries)
        self.joined.extend(other.joined)
        self.updated.extend(other.updated)
        self.dividers.extend(other.dividers)
        self.histories.extend(other.histories)
        self.typing.extend(other.typing)
        self.windows |= other.windows
        self.members |= other.members
        self.topics |= other.topics
        self.nick |= other.nick
        self.bell |= other.bell


_NUMERIC_TEXT_SKIP = {
    p.RPL_WELCOME,
    p.RPL_YOURHOST,
    p.RPL_CREATED,
    p.RPL_MYINFO,
    p.RPL_ISUPPORT,
    p.RPL_MOTDSTART,
    p.RPL_ENDOFMOTD,
    p.RPL_ENDOFNAMES,
    p.RPL_ENDOFWHO,
    p.RPL_ENDOFWHOIS,
    p.RPL_ENDOFWHOWAS,
}
# replies to what the user just did: shown where they did it
_IN_CURRENT_WINDOW = {
    p.RPL_CHANNELMODEIS,
    p.RPL_CREATIONTIME,
    p.RPL_INVITING,
    p.RPL_BANLIST,
    p.RPL_ENDOFBANLIST,
    p.RPL_NOTOPIC,
}


def _mention_re(nick: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w\[\]\\`^{{|}}-]){re.escape(nick)}(?![\w\[\]\\`^{{|}}-])", re.I)


class ClientState:
    """Everything the client knows about its IRC session."""

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

    def _on_batch(self, line: Line, now: float, changes: Changes) -> None:
        if not line.params:
            return
        ref = line.params[0]
        if ref.startswith("+") and len(line.params) >= 2:
            if len(self.batches) >= MAX_BATCHES:
                return
            target = line.params[2] if len(line.params) > 2 else ""
            self.batches[ref[1:]] = (line.params[1], target)
            self.batch_counts[ref[1:]] = [0, 0, None]
        elif ref.startswith("-") and ref[1:] in self.batches:
            kind, target = self.batches.pop(ref[1:])
            if kind == "labeled-response":
                self.pending.pop(target, None)  # answered, even if without an echo
                return
            received, added, last = self.batch_counts.pop(ref[1:], [0, 0, None])
            if kind in ("chathistory", "draft/chathistory") and target:
                window = self.window(target)
                if window is not None:
                    assert isinstance(received, int) and isinstance(added, int)
                    last_msgid = last if isinstance(last, str) else None
                    changes.histories.append((window.key, added, received, last_msgid))

    def _on_tagmsg(self, line: Line, now: float, changes: Changes) -> None:
        typing = line.tags.get("+typing") if line.tags else None
        if not typing or not line.params or self._me(line.nick):
            return
        target = line.params[0]
        window = self.window(target) if self.is_channel(target) else self.window(line.nick or "")
        if window is not None and line.nick:
            changes.typing.append((window.key, line.nick, typing))

    def _on_away(self, line: Line, now: float, changes: Changes) -> None:
        if line.nick is None:
            return
        away = bool(line.params and line.params[0])
        key = self._member_key(line.nick)
        for window in self.windows.values():
            member = window.members.get(key)
            if member is not None and member.away != away:
                member.away = away
                changes.members.add(window.key)

    def _on_account(self, line: Line, now: float, changes: Changes) -> None:
        if line.nick is None or not line.params:
            return
        account = None if line.params[0] == "*" else line.params[0]
        key = self._member_key(line.nick)
        for window in self.windows.values():
            member = window.members.get(key)
            if member is not None:
                member.account = account
                changes.members.add(window.key)

    def _on_markread(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) < 2 or not line.params[1].startswith("timestamp="):
            return
        window = self.window(line.params[0])
        ms = parse_server_time(line.params[1].partition("=")[2])
        if window is not None and ms is not None:
            window.read_marker = max(ms / 1000, window.read_marker or 0.0)

    def _on_fail(self, line: Line, now: float, changes: Changes, kind: str = ERROR) -> None:
        text = line.params[-1] if line.params else "failed"
        command = line.params[0] if line.params else ""
        window = self.windows.get(self.current, self.windows[SERVER])
        self.add(changes, window, Entry(now, kind, f"{command}: {text}" if command else text))

    def _on_warn(self, line: Line, now: float, changes: Changes) -> None:
        self._on_fail(line, now, changes, INFO)

    def _on_note(self, line: Line, now: float, changes: Changes) -> None:
        self._on_fail(line, now, changes, INFO)

    def _on_register(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) >= 2 and line.params[0] == "SUCCESS":
            text = f"account {line.params[1]} registered; you are logged in"
            window = self.windows.get(self.current, self.windows[SERVER])
            self.add(changes, window, Entry(now, INFO, text))

    def _on_privmsg(self, line: Line, now: float, changes: Changes, kind: str = MESSAGE) -> None:
        if len(line.params) < 2:
            return
        target, text = line.params[0], line.params[1]
        nick = line.nick or ""
        if text.startswith("\x01") and kind == MESSAGE:
            body = text.strip("\x01")
            verb, _, rest = body.partition(" ")
            if verb.upper() != "ACTION":
                return  # other CTCP requests are not shown
            kind, text = ACTION, rest
        own = self._me(nick)
        target_name = target.lstrip("@+")
        if self.is_channel(target_name):
            window = self.open(target_name, changes)
        elif own:
            window = self.open(target, changes)
        elif line.source is None or "!" not in line.source:
            window = self.windows[SERVER]  # a server notice
        elif casefold(nick) in self.windows:
            window = self.windows[casefold(nick)]
        elif not self._may_open_query():
            text = (
                f"new private message from {nick} (no window: more than {NEW_QUERIES} new "
                f"conversations in a minute; /query {nick} to open one): {text}"
            )
            self.add(changes, self.windows[SERVER], Entry(now, INFO, text))
            return
        else:
            window = self.open(nick, changes)
        history = self._batch is not None
        if own and not history and self._settle_echo(window, text, line, changes):
            return
        mention = not own and bool(self._mention.search(text))
        msgid = line.tags.get("msgid") if line.tags else None
        entry = Entry(now, kind, text, nick=nick, own=own, mention=mention, msgid=msgid)
        entry.history = history
        added = self.add(changes, window, entry)
        counts = self.batch_counts.get(self._batch or "")
        if history and counts is not None:
            counts[0] = int(counts[0] or 0) + 1
            counts[1] = int(counts[1] or 0) + int(added)
            counts[2] = msgid or counts[2]

    def _may_open_query(self) -> bool:
        """Whether a stranger's message may open a window now: at most NEW_QUERIES a minute, or
        a hundred connections messaging us would bury the window list (and the keyboard)."""
        opened, now = self._opened, self._arrival
        while opened and opened[0] <= now - QUERY_WINDOW:
            opened.popleft()
        if len(opened) >= NEW_QUERIES:
            return False
        opened.append(now)
        return True

    def _settle_echo(self, window: Window, text: str, line: Line, changes: Changes) -> bool:
        """echo-message without labels: our oldest pending message with this text is the one."""
        for label, (pending_window, entry) in self.pending.items():
            if pending_window is window and entry.text == text:
                return self._settle(label, line, changes)
        return False

    def _on_notice(self, line: Line, now: float, changes: Changes) -> None:
        self._on_privmsg(line, now, changes, NOTICE)

    def _on_join(self, line: Line, now: float, changes: Changes) -> None:
        if not line.params or line.nick is None:
            return
        window = self.open(line.params[0], changes)
        if self._me(line.nick):
            window.joined = True
            window.members.clear()
            changes.windows = True
            changes.joined.append(window.key)
        member = Member(line.nick)
        if len(line.params) >= 3 and line.params[1] != "*":  # extended-join: the account
            member.account = line.params[1]
        window.members[self._member_key(line.nick)] = member
        changes.members.add(window.key)
        self.add(
            changes, window, Entry(now, EVENT, f"{line.nick} ({self._userhost(line)}) has joined")
        )

    def _userhost(self, line: Line) -> str:
        source = line.source or ""
        return source.split("!", 1)[1] if "!" in source else source

    def _on_part(self, line: Line, now: float, changes: Changes) -> None:
        if not line.params or line.nick is None:
            return
        window = self.window(line.params[0])
        if window is None:
            return
        reason = f" ({line.params[1]})" if len(line.params) > 1 and line.params[1] else ""
        if self._me(line.nick):
            window.joined = False
            window.members.clear()
            changes.windows = True
            self.add(changes, window, Entry(now, EVENT, f"you have left {window.name}{reason}"))
        else:
            window.members.pop(self._member_key(line.nick), None)
            self.add(changes, window, Entry(now, EVENT, f"{line.nick} has left{reason}"))
        changes.members.add(window.key)

    def _on_kick(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) < 2:
            return
        window = self.window(line.params[0])
        if window is None:
            return
        victim = line.params[1]
        reason = f" ({line.params[2]})" if len(line.params) > 2 and line.params[2] else ""
        if self._me(victim):
            window.joined = False
            window.members.clear()
            changes.windows = True
            text = f"you were kicked from {window.name} by {line.nick}{reason}"
            self.add(changes, window, Entry(now, ERROR, text))
        else:
            window.members.pop(self._member_key(victim), None)
            self.add(
                changes, window, Entry(now, EVENT, f"{victim} was kicked by {line.nick}{reason}")
            )
        changes.members.add(window.key)

    def _on_quit(self, line: Line, now: float, changes: Changes) -> None:
        nick = line.nick
        if nick is None:
            return
        reason = f" ({line.params[0]})" if line.params and line.params[0] else ""
        key = self._member_key(nick)
        for window in self.windows.values():
            if key in window.members:
                del window.members[key]
                changes.members.add(window.key)
                self.add(changes, window, Entry(now, EVENT, f"{nick} has quit{reason}"))
            elif window.kind == "query" and window.key == key:
                self.add(changes, window, Entry(now, EVENT, f"{nick} has quit{reason}"))

    def _on_nick(self, line: Line, now: float, changes: Changes) -> None:
        old, new = line.nick, line.params[0] if line.params else None
        if old is None or not new:
            return
        if self._me(old):
            self.set_nick(new)
            changes.nick = True
        old_key, new_key = self._member_key(old), self._member_key(new)
        text = f"{old} is now known as {new}"
        for window in list(self.windows.values()):
            member = window.members.pop(old_key, None)
            if member is not None:
                member.nick = new
                window.members[new_key] = member
                changes.members.add(window.key)
                self.add(changes, window, Entry(now, EVENT, text))
            elif window.kind == "query" and window.key == old_key:
                window.name = new
                # rename in place: the window keeps its position in the list
                self.windows = {
                    (new_key if key == old_key else key): w for key, w in self.windows.items()
                }
                if self.current == old_key:
                    self.current = new_key
                changes.windows = True
                self.add(changes, window, Entry(now, EVENT, text))
        if changes.nick and not changes.entries:
            self.add(
                changes, self.windows[SERVER], Entry(now, EVENT, f"you are now known as {new}")
            )

    def _on_topic(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) < 2:
            return
        window = self.open(line.params[0], changes)
        window.topic = line.params[1]
        changes.topics.add(window.key)
        text = f"{line.nick} changed the topic to: {line.params[1]}"
        if not line.params[1]:
            text = f"{line.nick} cleared the topic"
        self.add(changes, window, Entry(now, EVENT, text))

    def _on_mode(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) < 2:
            return
        target = line.params[0]
        modes = " ".join(line.params[1:])
        if not self.is_channel(target):
            self.add(changes, self.windows[SERVER], Entry(now, EVENT, f"mode {modes} for {target}"))
            return
        window = self.open(target, changes)
        args = list(line.params[2:])
        sign = "+"
        for ch in line.params[1]:
            if ch in "+-":
                sign = ch
            elif ch in self.prefixes:
                if not args:
                    break
                member = window.members.get(self._member_key(args.pop(0)))
                if member is not None:
                    self._set_prefix(member, self.prefixes[ch], sign == "+")
                    window.members.mark(self._member_key(member.nick))
                    changes.members.add(window.key)
            elif ch in "bkeIqlfjL" and (sign == "+" or ch in "bkeIq") and args:
                args.pop(0)  # modes that take a parameter
        self.add(
            changes, window, Entry(now, EVENT, f"{line.nick or line.source} sets mode {modes}")
        )

    def _set_prefix(self, member: Member, prefix: str, on: bool) -> None:
        held = set(member.modes)
        if on:
            held.add(prefix)
        else:
            held.discard(prefix)
        order = list(self.prefixes.values())
        member.modes = "".join(sorted(held, key=lambda c: order.index(c) if c in order else 99))

    def _on_error(self, line: Line, now: float, changes: Changes) -> None:
        text = line.params[0] if line.params else "error"
        self.add(changes, self.windows[SERVER], Entry(now, ERROR, text))

    def _on_invite(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) < 2:
            return
        text = f"{line.nick} invites you to {line.params[1]} (/join {line.params[1]})"
        self.add(changes, self.windows[self.current], Entry(now, INFO, text, mention=True))

    # -- numerics ---------------------------------------------------------------------------------

    def _on_numeric(self, line: Line, now: float, changes: Changes) -> None:
        code = line.command
        params = line.params[1:]  # drop our own nick
        if code == p.RPL_WELCOME and line.params and not self._me(line.params[0]):
            self.set_nick(line.params[0])
            changes.nick = True
        if code == p.RPL_ISUPPORT:
            self._isupport(params[:-1])
            return
        if code == p.RPL_NAMREPLY and len(params) >= 3:
            key = casefold(params[1])
            window = self.windows.get(key)
            if window is not None and window.joined:
                # collected until the 366: a reply of 2,000 lines changes the list once
                names = self._names.setdefault(key, Members())  # kept in order as they come
                room = MAX_MEMBERS - len(names) - len(window.members)
                for name in params[2].split()[: max(0, room)]:
                    member = self._parse_name(name)
                    names[self._member_key(member.nick)] = member
            if key in self.names_requested:
                target = window or self.windows.get(self.current, self.windows[SERVER])
                self.add(changes, target, Entry(now, INFO, f"users in {params[1]}: {params[2]}"))
            return
        if code == p.RPL_ENDOFNAMES:
            if params:
                key = casefold(params[0])
                self.names_requested.discard(key)
                names = self._names.pop(key, Members())
                window = self.windows.get(key)
                if names and window is not None and window.joined:
                    if len(names) > len(window.members):  # the smaller goes into the larger
                        for member_key, member in window.members.items():
                            if member_key not in names:
                                names[member_key] = member
                        window.members = names
                    else:
                        window.members.update(names)
                    changes.members.add(window.key)
            return
        if (
            code in (p.RPL_WHOREPLY, p.RPL_ENDOFWHO)
            and params
            and casefold(params[0]) in self.quiet_who
        ):
            if code == p.RPL_ENDOFWHO:
                self.quiet_who.discard(casefold(params[0]))
            elif len(params) >= 6:  # a WHO reply we asked for on join: learn who is away
                # channel user host server nick flags :hops realname
                away = params[5].startswith("G")
                for window in self.windows.values():
                    found = window.members.get(self._member_key(params[4]))
                    if found is not None and found.away != away:
                        found.away = away
                        changes.members.add(window.key)
            return
        if code == p.RPL_TOPIC and len(params) >= 2:
            window = self.open(params[0], changes)
            window.topic = params[1]
            changes.topics.add(window.key)
            self.add(changes, window, Entry(now, EVENT, f"topic: {params[1]}"))
            return
        if code == p.RPL_TOPICWHOTIME and len(params) >= 2:
            return
        if code == p.RPL_AWAY and len(params) >= 2:
            window = self.window(params[0])
            if window is not None and window.kind == "query":
                self.add(changes, window, Entry(now, INFO, f"{params[0]} is away: {params[1]}"))
                return
        if code in _NUMERIC_TEXT_SKIP and code not in (
            p.RPL_WELCOME,
            p.RPL_MOTDSTART,
            p.RPL_ENDOFMOTD,
        ):
            return
        if code in (p.RPL_LOCALUSERS, p.RPL_GLOBALUSERS, p.ERR_NOMOTD) and params:
            params = params[-1:]
        text = " ".join(param for param in params if param)
        kind = ERROR if code.startswith(("4", "5")) and code != p.ERR_NOMOTD else INFO
        window = self.windows[SERVER]
        if kind == ERROR or code in _IN_CURRENT_WINDOW:
            window = self.windows.get(self.current, window)
        elif params and self.is_channel(params[0]):
            window = self.window(params[0]) or window
        self.add(changes, window, Entry(now, kind, text))

    def _parse_name(self, name: str) -> Member:
        prefix_chars = set(self.prefixes.values())
        i = 0
        while i < len(name) and name[i] in prefix_chars:
            i += 1
        nick = name[i:].split("!", 1)[0]
        member = Member(nick)
        for ch in name[:i]:
            self._set_prefix(member, ch, True)
        return member

    def _isupport(self, tokens: tuple[str, ...] | list[str]) -> None:
        for token in tokens:
            key, _, value = token.partition("=")
            if key == "PREFIX" and value.startswith("("):
                modes, _, chars = value[1:].partition(")")
                if len(modes) == len(chars):
                    self.prefixes = dict(zip(modes, chars, strict=True))
            elif key == "CHANTYPES" and value:
                self.chantypes = value
            elif key == "CHATHISTORY" and (limit := parse_uint(value)) is not None:
                self.chathistory_max = limit
            elif key == "NETWORK" and value:
                self.network = value
                self.windows[SERVER].name = value
