"""Messages: PRIVMSG, NOTICE and TAGMSG (stored, then delivered with each recipient's tags), and
AWAY."""

from __future__ import annotations

import itertools
import math

from tuichat.limits import address_key
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.history import _met, _private_key
from tuichat.state.model import Channel, Targets, User
from tuichat.state.outbox import Outbox, Variants
from tuichat.state.spec import command
from tuichat.state.wire import _client_tags, _middle, _tagged, _truncate
from tuichat.store import Message

_fallback_ids = itertools.count(1)


def _fallback_msgid() -> str:
    return f"m{next(_fallback_ids):x}"


def _stored_size(message: Message) -> int:
    """About what a message takes in the history store: its text, sender, target and tags, its
    key once in the row and twice in the indexes, and the row's bookkeeping (ids, time)."""
    size = 48 + len(message.msgid) + 3 * len(message.key.encode("utf-8", "replace"))
    for text in (message.target, message.source, message.account, message.command, message.text):
        if text:
            size += len(text.encode("utf-8", "replace"))
    if message.tags:
        size += sum(len(k) + len(v) + 6 for k, v in message.tags.items())
    return size


class Messages(Core):
    """PRIVMSG, NOTICE, TAGMSG and AWAY."""

    @command("PRIVMSG")
    @command("NOTICE")
    def _privmsg(self, user: User, line: Line, now: float, out: Outbox) -> None:
        command = line.command
        notice = command == "NOTICE"
        params = line.params
        if not params or not params[0]:
            if not notice:
                self._reply(out, user, p.ERR_NORECIPIENT, f"No recipient given ({command})")
            return
        if len(params) < 2 or not params[1]:
            if not notice:
                self._reply(out, user, p.ERR_NOTEXTTOSEND, "No text to send")
            return
        text = params[1]
        if not notice:
            user.last_message = now
        seen: set[str] = set()
        for target in params[0].split(","):
            key = casefold(target)
            if not target or key in seen:
                continue
            seen.add(key)
            if len(seen) > self.config.maxtargets:
                if not notice:
                    self._reply(out, user, p.ERR_TOOMANYTARGETS, target, "Too many recipients")
                continue
            if target.startswith("#"):
                chan = self.channels.get(key)
                if chan is None:
                    if not notice:
                        self._no_such_channel(out, user, target)
                    continue
                refusal = self._cannot_send(chan, user)
                if refusal is not None:
                    if not notice:
                        self._reply(out, user, p.ERR_CANNOTSENDTOCHAN, chan.name, refusal)
                    continue
                self._deliver_message(user, command, chan.name, text, line, now, out, chan.users)
            else:
                other = self.find_user(target)
                if other is None:
                    if not notice:
                        self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
                    continue
                self._deliver_message(user, command, other.nick, text, line, now, out, (other,))
                if other.away is not None and not notice:
                    self._reply(out, user, p.RPL_AWAY, other.nick, other.away)

    def _deliver_message(
        self,
        user: User,
        command: str,
        target: str,
        text: str | None,
        line: Line,
        now: float,
        out: Outbox,
        recipients: Targets,
    ) -> None:
        """A PRIVMSG, NOTICE or TAGMSG: stored (not TAGMSG), then delivered with each
        recipient's tags; echoed to the sender when it asked for echo-message."""
        client_tags = _client_tags(line)
        if text is not None:
            # relayed with the sender's prefix, the line must still fit 512 bytes: cut the text
            head = f":{user.prefix} {command} {target} :"
            text = _truncate(text, p.MAX_BODY - 2 - len(head.encode("utf-8", "replace")))
        msgid = self.store.new_msgid() if self.store is not None else _fallback_msgid()
        time_ms = int(now * 1000)
        payload = _tagged(
            user.prefix, user.account, command, target, text, client_tags, msgid, time_ms
        )
        if self.store is not None and text is not None:
            if target[0] == "#":
                key = casefold(target)
            else:
                mine, theirs = self._party(user), self._party(recipients[0])
                key = _private_key(mine, theirs)
                _met(user, theirs)
                _met(recipients[0], mine)
            message = Message(
                msgid,
                time_ms,
                key,
                target,
                user.prefix,
                user.account,
                command,
                text,
                client_tags or None,
            )
            wait = self._history_quota(user, _stored_size(message), now)
            if wait:
                # nothing unrecorded is delivered (as when the disk is full): refused, to all
                why = f"history quota exceeded; try again in {math.ceil(wait / 60)} min"
                out.send(user, self._unstored(user, command, target, why))
                return
            if isinstance(payload, Variants):
                out.record(user, payload, self._unstored(user, command, target))
            self.store.add(message)
        echo = "echo-message" in user.caps
        if not target.startswith("#") and recipients[0] is user:
            out.broadcast(recipients, payload)  # to oneself: delivered once, echo or not
        else:
            out.broadcast(recipients, payload, None if echo else user)
            if echo and user not in recipients:
                out.broadcast((user,), payload)

    def _history_quota(self, user: User, size: int, now: float) -> float:
        """Seconds before `user` may store `size` more bytes of history (0: now, and they are
        counted against its account and its address)."""
        address = address_key(user.host)
        account = casefold(user.account) if user.account is not None else None
        wait = self._history_by_address.retry_after(address, size, now)
        if account is not None:
            wait = max(wait, self._history_by_account.retry_after(account, size, now))
        if wait:
            return wait
        self._history_by_address.take(address, size, now)
        if account is not None:
            self._history_by_account.take(account, size, now)
        return 0.0

    def _unstored(
        self, user: User, command: str, target: str, why: str = "history store unavailable"
    ) -> bytes:
        """What the sender of a message is told when its history row could not be written (disk
        full, or its quota used up): a standard reply, which tuichat shows (other clients show
        FAIL as a server line). Nobody got the message, its echo neither."""
        line = Line(
            "FAIL",
            (command, "TEMPORARILY_UNAVAILABLE", _middle(target), why),
            source=self.config.server_name,
        )
        return line.encode(trailing=True)

    @command("TAGMSG", min_params=1)
    def _tagmsg(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """TAGMSG: client-only tags (+typing...) for those who negotiated message-tags."""
        target = line.params[0]
        if target.startswith("#"):
            chan = self.channels.get(casefold(target))
            if chan is None:
                self._no_such_channel(out, user, target)
                return
            if self._cannot_send(chan, user) is not None:
                return
            self._deliver_message(user, "TAGMSG", chan.name, None, line, now, out, chan.users)
        else:
            other = self.find_user(target)
            if other is None:
                self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
                return
            self._deliver_message(user, "TAGMSG", other.nick, None, line, now, out, (other,))

    def _cannot_send(self, chan: Channel, user: User) -> str | None:
        modes = chan.members.get(user)
        if modes is None and "n" in chan.modes:
            return "Cannot send to channel (no external messages)"
        privileged = modes is not None and ("o" in modes or "v" in modes)
        if privileged:
            return None
        if "m" in chan.modes:
            return "Cannot send to channel (+m)"
        if self._banned(chan, user):
            return "Cannot send to channel (you're banned)"
        if chan.quiets and any(p.mask_matches(mask, user.prefix) for mask, _, _ in chan.quiets):
            return "Cannot send to channel (you're muted)"
        return None

    @command("AWAY")
    def _away(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params and line.params[0]:
            user.away = _truncate(line.params[0], self.config.awaylen)
            self._reply(out, user, p.RPL_NOWAWAY, "You have been marked as being away")
            notice = self._from(user, "AWAY", user.away)
        else:
            user.away = None
            self._reply(out, user, p.RPL_UNAWAY, "You are no longer marked as being away")
            notice = self._from(user, "AWAY")
        for other in self._neighbours(user):
            if "away-notify" in other.caps:
                out.send(other, notice)
