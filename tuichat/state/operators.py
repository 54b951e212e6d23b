"""Operators (OPER, KILL), server information (MOTD, LUSERS, VERSION, TIME, INFO) and server bans
(KLINE, UNKLINE).
"""

from __future__ import annotations

import hmac
import time

from tuichat import __version__
from tuichat.net import protocol as p
from tuichat.net.protocol import Line
from tuichat.state.core import Core
from tuichat.state.model import User
from tuichat.state.outbox import Outbox
from tuichat.state.spec import command

MAX_KLINE_SECONDS = 100 * 365 * 86400  # the longest timed K-line; more is taken as this


class Operators(Core):
    """OPER, KILL, MOTD, LUSERS, VERSION, TIME, INFO, KLINE, UNKLINE."""

    @command("OPER", min_params=2)
    def _oper(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name, password = line.params[0], line.params[1]
        key = ("oper", name)
        wait = self._guess_wait(user, key, now)
        if wait:
            # refused unchecked: no guess gets through while it waits
            text = f"Too many failed attempts; try again in {wait} seconds"
            self._reply(out, user, p.ERR_NOOPERHOST, text)
            return
        expected = self.config.opers.get(name)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            self._guessed(user, key, now)
            self._reply(out, user, p.ERR_PASSWDMISMATCH, "Password incorrect")
            return
        self._guesses_by_name.succeeded(key)
        self._reply(out, user, p.RPL_YOUREOPER, "You are now an IRC operator")
        if "o" not in user.modes:
            user.modes.add("o")
            out.send(
                user, Line("MODE", (user.nick, "+o"), source=user.prefix).encode(trailing=True)
            )

    @command("KILL", min_params=2, oper=True)
    def _kill(self, user: User, line: Line, now: float, out: Outbox) -> None:
        nick, reason = line.params[0], line.params[1]
        target = self.find_user(nick)
        if target is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, nick, "No such nick/channel")
            return
        out.send(target, self._from(user, "KILL", target.nick, reason))
        self.disconnect(target, f"Killed ({user.nick} ({reason}))", now, out)

    def _send_motd(self, out: Outbox, user: User) -> None:
        motd = self.config.motd
        if motd is None:
            self._reply(out, user, p.ERR_NOMOTD, "MOTD File is missing")
            return
        self._reply(
            out, user, p.RPL_MOTDSTART, f"- {self.config.server_name} Message of the day - "
        )
        for text in motd:
            for piece in p.split_text(text, 400):
                self._reply(out, user, p.RPL_MOTD, f"- {piece}")
        self._reply(out, user, p.RPL_ENDOFMOTD, "End of /MOTD command.")

    @command("MOTD")
    def _motd(self, user: User, line: Line, now: float, out: Outbox) -> None:
        self._send_motd(out, user)

    def _send_lusers(self, out: Outbox, user: User) -> None:
        registered = [other for other in self.clients if other.registered]
        invisible = sum(1 for other in registered if "i" in other.modes)
        opers = sum(1 for other in registered if "o" in other.modes)
        unknown = len(self.clients) - len(registered)
        total = len(registered)
        self._reply(
            out,
            user,
            p.RPL_LUSERCLIENT,
            f"There are {total - invisible} users and {invisible} invisible on 1 servers",
        )
        self._reply(out, user, p.RPL_LUSEROP, str(opers), "operator(s) online")
        self._reply(out, user, p.RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
        self._reply(out, user, p.RPL_LUSERCHANNELS, str(len(self.channels)), "channels formed")
        self._reply(out, user, p.RPL_LUSERME, f"I have {total} clients and 0 servers")
        self._reply(
            out, user, p.RPL_LOCALUSERS, str(total), str(total), f"Current local users {total}"
        )
        self._reply(
            out, user, p.RPL_GLOBALUSERS, str(total), str(total), f"Current global users {total}"
        )

    @command("LUSERS")
    def _lusers(self, user: User, line: Line, now: float, out: Outbox) -> None:
        self._send_lusers(out, user)

    @command("VERSION")
    def _version(self, user: User, line: Line, now: float, out: Outbox) -> None:
        self._reply(out, user, p.RPL_VERSION, f"tuichat-{__version__}", self.config.server_name, "")
        self._send_isupport(out, user)

    @command("TIME")
    def _time(self, user: User, line: Line, now: float, out: Outbox) -> None:
        text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
        self._reply(out, user, p.RPL_TIME, self.config.server_name, text)

    @command("INFO")
    def _info(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """What this server is; a target names a server (this one, by name or mask) or a user on
        it, as RFC 2812 3.4.10 has it: anything else is no such server."""
        if line.params:
            target = line.params[0]
            ours = p.mask_matches(target, self.config.server_name)
            if not ours and self.find_user(target) is None:
                self._reply(out, user, p.ERR_NOSUCHSERVER, target, "No such server")
                return
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.config.created))
        for text in (
            f"tuichat {__version__}: a small self-hosted chat server, speaking IRC",
            "https://modern.ircdocs.horse/ and https://ircv3.net/ are what it follows",
            f"This server ({self.config.server_name}) has run since {started}",
        ):
            self._reply(out, user, p.RPL_INFO, text)
        self._reply(out, user, p.RPL_ENDOFINFO, "End of /INFO list")

    def _kline_for(self, user: User, now: float) -> str | None:
        """The reason `user` is banned from the server, if a K-line matches it."""
        target = f"{user.username or '*'}@{user.host}"
        for mask, (reason, _, expires) in list(self.klines.items()):
            if expires and expires <= now:
                del self.klines[mask]
                if self.store is not None:
                    self.store.remove_kline(mask)
                continue
            if p.mask_matches(mask, target) or p.mask_matches(
                mask, f"{user.username[1:]}@{user.host}"
            ):
                return reason
        return None

    def banned_host(self, host: str, now: float | None = None) -> str | None:
        """Why a connection from `host` is refused before it says anything (a K-line on *@host)."""
        for mask, (reason, _, expires) in self.klines.items():
            user_part, _, host_part = mask.partition("@")
            live = not expires or now is None or expires > now
            if live and user_part.strip("*~") == "" and p.mask_matches(host_part, host):
                return f"K-lined: {reason}"
        return None

    @command("KLINE", oper=True)
    def _kline(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """KLINE [seconds] user@host :reason (operators). Without parameters: the list."""
        params = list(line.params)
        server = self.config.server_name
        if not params:
            for mask, (reason, setter, expires) in sorted(self.klines.items()):
                until = "permanent" if not expires else f"{int(expires - now)}s left"
                text = f"K-line {mask} ({until}) by {setter}: {reason}"
                out.send(
                    user, Line("NOTICE", (user.nick, text), source=server).encode(trailing=True)
                )
            out.send(
                user,
                Line("NOTICE", (user.nick, "End of K-lines"), source=server).encode(trailing=True),
            )
            return
        duration = 0.0
        seconds = p.parse_uint(params[0], MAX_KLINE_SECONDS)
        if seconds is not None and len(params) > 1:
            params.pop(0)
            duration = float(seconds)
        mask = params[0]
        if "!" in mask:
            mask = mask.split("!", 1)[1]
        if "@" not in mask:
            mask = f"*@{mask}"
        if not mask.partition("@")[2].strip("*?.:"):
            # a host part of wildcards alone bans every address (user names all start with ~)
            self._fail(out, user, "KLINE", "INVALID_MASK", mask, "That mask would ban everyone")
            return
        reason = params[1] if len(params) > 1 and params[1] else "No reason given"
        expires = now + duration if duration else 0.0
        self.klines[mask] = (reason, user.nick, expires)
        if self.store is not None:
            self.store.add_kline(mask, reason, user.nick, expires)
        text = f"K-line added for {mask}" + (f" for {int(duration)}s" if duration else "")
        out.send(user, Line("NOTICE", (user.nick, text), source=server).encode(trailing=True))
        # everyone it bans leaves at once (disconnect_all): a ban on a crowd's address must not
        # tell each who stays of each departure on its own, under the lock
        banned = [
            other
            for other in self.clients
            if other.registered and other is not user and self._kline_for(other, now) is not None
        ]
        error = Line("ERROR", (f"K-lined: {reason}",)).encode(trailing=True)
        for other in banned:
            out.send(other, error)
        self.disconnect_all(banned, [f"K-lined: {reason}"] * len(banned), now, out)

    @command("UNKLINE", min_params=1, oper=True)
    def _unkline(self, user: User, line: Line, now: float, out: Outbox) -> None:
        mask = line.params[0]
        if "@" not in mask:
            mask = f"*@{mask}"
        server = self.config.server_name
        if self.klines.pop(mask, None) is None:
            text = f"No K-line for {mask}"
        else:
            text = f"K-line for {mask} removed"
            if self.store is not None:
                self.store.remove_kline(mask)
        out.send(user, Line("NOTICE", (user.nick, text), source=server).encode(trailing=True))
