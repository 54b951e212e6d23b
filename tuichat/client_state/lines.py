"""The client's view of IRC, the lines it is fed by command: messages, joins, parts, kicks,
quits, nicks, topics, modes, batches, typing, away and account changes, read markers, and
FAIL/WARN/NOTE."""

from __future__ import annotations

from tuichat.client_state.base import StateBase
from tuichat.client_state.model import (
    ACTION,
    ERROR,
    EVENT,
    INFO,
    MAX_BATCHES,
    MESSAGE,
    NEW_QUERIES,
    NOTICE,
    QUERY_WINDOW,
    SERVER,
    Changes,
    Entry,
    Member,
    Window,
)
from tuichat.net.protocol import Line, casefold, parse_server_time


class Lines(StateBase):
    """The handlers of named commands (`_on_<command>`)."""

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

    def _on_error(self, line: Line, now: float, changes: Changes) -> None:
        text = line.params[0] if line.params else "error"
        self.add(changes, self.windows[SERVER], Entry(now, ERROR, text))

    def _on_invite(self, line: Line, now: float, changes: Changes) -> None:
        if len(line.params) < 2:
            return
        text = f"{line.nick} invites you to {line.params[1]} (/join {line.params[1]})"
        self.add(changes, self.windows[self.current], Entry(now, INFO, text, mention=True))
