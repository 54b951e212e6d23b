"""Registration (CAP, PASS, USER), nicks (NICK, and keeping a registered nick for its account) and
liveness (PING, PONG, QUIT).
"""

from __future__ import annotations

import hmac
import time

from tuichat import __version__
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.model import Channel, User, WhowasEntry
from tuichat.state.modes import CHANNEL_MODES_ALL, USER_MODES
from tuichat.state.outbox import Outbox, _tagmask
from tuichat.state.spec import command
from tuichat.state.wire import _chunks, _truncate


class Registration(Core):
    """Registration, nicks and liveness."""

    @command("CAP", min_params=1, before_registration=True, free=True)
    def _cap(self, user: User, line: Line, now: float, out: Outbox) -> None:
        sub = line.params[0].upper()
        nick = user.nick or "*"
        server = self.config.server_name
        if sub == "LS":
            if not user.registered:
                user.cap_negotiating = True
            version = line.params[1] if len(line.params) > 1 else ""
            number = p.parse_uint(version)
            if number is not None and number >= 302:
                user.cap302 = True
                user.caps.add("cap-notify")
            offered = dict(self.capabilities)
            if self.sts_port is not None:
                # plain connections: upgrade to the TLS port; TLS ones: keep to it (real certs)
                if not user.tls:
                    offered["sts"] = f"port={self.sts_port}"
                elif self.sts_duration:
                    offered["sts"] = f"duration={self.sts_duration}"
            caps = [
                f"{name}={value}" if value and user.cap302 else name
                for name, value in sorted(offered.items())
            ]
            chunks = _chunks(caps, len(f":{server} CAP {nick} LS * :"), 510)
            for i, chunk in enumerate(chunks):
                more = ("*",) if i < len(chunks) - 1 and user.cap302 else ()
                params = (nick, "LS", *more, chunk)
                out.send(user, Line("CAP", params, source=server).encode(trailing=True))
        elif sub == "LIST":
            enabled = " ".join(sorted(user.caps))
            out.send(
                user, Line("CAP", (nick, "LIST", enabled), source=server).encode(trailing=True)
            )
        elif sub == "REQ":
            if not user.registered:
                user.cap_negotiating = True
            wanted = line.params[1] if len(line.params) > 1 else ""
            names = wanted.split()
            if names and all(name.lstrip("-") in self.capabilities for name in names):
                for name in names:
                    if name.startswith("-"):
                        user.caps.discard(name[1:])
                    else:
                        user.caps.add(name)
                user.tagmask = _tagmask(user.caps)
                verdict = "ACK"
            else:
                verdict = "NAK"
            out.send(
                user, Line("CAP", (nick, verdict, wanted), source=server).encode(trailing=True)
            )
        elif sub == "END":
            if not user.registered and user.cap_negotiating:
                user.cap_negotiating = False
                self._try_register(user, now, out)
        else:
            self._reply(out, user, p.ERR_INVALIDCAPCMD, sub, "Invalid CAP command")

    @command("PASS", min_params=1, before_registration=True)
    def _pass(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if user.registered:
            self._reply(out, user, p.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        user.password = line.params[0]

    @command("USER", min_params=4, before_registration=True)
    def _user(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if user.registered or user.username:
            self._reply(out, user, p.ERR_ALREADYREGISTERED, "You may not reregister")
            return
        raw = "".join(ch for ch in line.params[0] if ch.isascii() and (ch.isalnum() or ch in "-._"))
        user.username = "~" + (raw or "user")[: self.config.userlen - 1]
        # as long as SETNAME allows (NAMELEN): cut rather than refused at registration, as other
        # servers do, so a client with a long default still connects
        user.realname = _truncate(line.params[3], self.config.namelen)
        self._try_register(user, now, out)

    def _try_register(self, user: User, now: float, out: Outbox) -> None:
        if user.registered or user.cap_negotiating or not user.nick or not user.username:
            return
        c = self.config
        if c.password is not None and not hmac.compare_digest(
            (user.password or "").encode(), c.password.encode()
        ):
            self._reply(out, user, p.ERR_PASSWDMISMATCH, "Password incorrect")
            self.disconnect(user, "Bad password", now, out)
            return
        ban = self._kline_for(user, now)
        if ban is not None:
            self._reply(
                out, user, p.ERR_YOUREBANNEDCREEP, f"You are banned from this server: {ban}"
            )
            self.disconnect(user, f"K-lined: {ban}", now, out)
            return
        user.registered = True
        user._update_prefix()
        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(c.created))
        version = f"tuichat-{__version__}"
        self._reply(
            out, user, p.RPL_WELCOME, f"Welcome to the {c.network} IRC Network {user.prefix}"
        )
        self._reply(
            out, user, p.RPL_YOURHOST, f"Your host is {c.server_name}, running version {version}"
        )
        self._reply(out, user, p.RPL_CREATED, f"This server was created {created}")
        self._reply(
            out, user, p.RPL_MYINFO, c.server_name, version, USER_MODES, CHANNEL_MODES_ALL, "bklqov"
        )
        self._send_isupport(out, user)
        self._send_lusers(out, user)
        self._send_motd(out, user)
        self._protect_nick(user, now, out)

    @command("NICK", before_registration=True)
    def _nick(
        self, user: User, line: Line, now: float, out: Outbox, *, forced: bool = False
    ) -> None:
        """NICK; `forced` when the server renames the user itself (nothing may refuse it)."""
        if not line.params or not line.params[0]:
            self._reply(out, user, p.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        new = line.params[0]
        if not p.is_valid_nick(new, self.config.nicklen):
            self._reply(out, user, p.ERR_ERRONEUSNICKNAME, new, "Erroneous nickname")
            return
        key = casefold(new)
        holder = self.nicks.get(key)
        if holder is not None and holder is not user:
            self._reply(out, user, p.ERR_NICKNAMEINUSE, new, "Nickname is already in use")
            return
        if new == user.nick:
            return
        if user.registered and not forced:
            refusal = self._nick_change_refused(user, new)
            if refusal is not None:
                chan, reason = refusal
                self._reply(out, user, p.ERR_BANONCHAN, new, chan.name, reason)
                return
        old_key = casefold(user.nick) if user.nick else None
        if user.registered:
            data = self._from(user, "NICK", new)
            out.send(user, data)
            for other in self._neighbours(user):
                out.send(other, data)
            self.whowas.append(WhowasEntry(user.nick, user.username, user.host, user.realname, now))
        if old_key is not None and self.nicks.get(old_key) is user:
            del self.nicks[old_key]
        self.nicks[key] = user
        user.nick = new
        if user.registered:
            user._update_prefix()
            self._protect_nick(user, now, out)
        else:
            self._try_register(user, now, out)

    def _nick_change_refused(self, user: User, new: str) -> tuple[Channel, str] | None:
        """A channel where `user` may not take the nick `new`, and why: one where the user is
        banned or quieted (+b, +q) under the old or the new mask and has neither voice nor
        operator status. Otherwise a banned member would speak again under a new nick."""
        new_prefix = f"{new}!{user.username}@{user.host}"
        for chan in user.channels.values():
            if not chan.bans and not chan.quiets:
                continue
            modes = chan.members.get(user, set())
            if "o" in modes or "v" in modes:
                continue
            for masks, reason in (
                (chan.bans, "Cannot change nickname while banned on channel"),
                (chan.quiets, "Cannot change nickname while muted on channel"),
            ):
                for mask, _, _ in masks:
                    if p.mask_matches(mask, user.prefix) or p.mask_matches(mask, new_prefix):
                        return chan, reason
        return None

    def _protect_nick(self, user: User, now: float, out: Outbox) -> None:
        """A registered nick used by someone not logged in to it: a warning and a deadline."""
        user.nick_deadline = None
        if self.store is None or not user.nick:
            return
        if user.account is not None and casefold(user.account) == casefold(user.nick):
            return
        if self.store.account(casefold(user.nick)) is None:
            return
        user.nick_deadline = now + self.config.nick_grace
        grace = int(self.config.nick_grace)
        text = (
            f"The nick {user.nick} belongs to a registered account. Log in to it (SASL) within "
            f"{grace} seconds, or you will be renamed."
        )
        out.send(
            user,
            Line("NOTICE", (user.nick, text), source=self.config.server_name).encode(trailing=True),
        )

    def _rename_guest(self, user: User, now: float, out: Outbox) -> None:
        while True:
            guest = f"Guest{int(now * 1000) % 100000:05d}"
            if casefold(guest) not in self.nicks:
                break
            now += 0.001
        self._nick(user, Line("NICK", (guest,)), now, out, forced=True)

    @command("PING", before_registration=True, free=True)
    def _ping(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.ERR_NOORIGIN, "No origin specified")
            return
        server = self.config.server_name
        out.send(user, Line("PONG", (server, line.params[0]), source=server).encode(trailing=True))

    @command("PONG", before_registration=True, free=True)
    def _pong(self, user: User, line: Line, now: float, out: Outbox) -> None:
        pass  # handle() has already recorded the activity

    @command("QUIT", before_registration=True)
    def _quit(self, user: User, line: Line, now: float, out: Outbox) -> None:
        reason = line.params[0] if line.params else ""
        self.disconnect(user, f"Quit: {reason}" if reason else "Quit", now, out)
