"""Queries about users: WHO, WHOIS, WHOWAS, ISON, USERHOST."""

from __future__ import annotations

import operator
import time

from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.model import User
from tuichat.state.outbox import BIG_REPLY_MOST, Outbox
from tuichat.state.spec import command
from tuichat.state.wire import _NONE, _chunks, _numeric, _status, _statuses

WHO_SCAN = 500  # a WHO by mask costs a token per this many users it looks at (at most 10 too)

_MODES = operator.attrgetter("modes")
_WHO_FIELDS = operator.attrgetter("username", "host", "nick", "away", "realname")


class Queries(Core):
    """WHO, WHOIS, WHOWAS, ISON, USERHOST."""

    @command("WHO")
    def _who(self, user: User, line: Line, now: float, out: Outbox) -> None:
        mask = line.params[0] if line.params else "*"
        opers_only = len(line.params) > 1 and "o" in line.params[1]
        server = self.config.server_name
        members: list[User] = []
        where: list[str] = []  # the channel each row shows, when not one for all
        statuses: dict[User, frozenset[str]] | None = None  # channel status, for a channel
        multi = "multi-prefix" in user.caps
        cut = ""  # why the reply is short of what was asked
        if mask.startswith("#"):
            chan = self.channels.get(casefold(mask))
            if chan is not None and self._visible(chan, user):
                members = self._visible_members(chan, user)
                statuses = _statuses(chan)
                where = [chan.name]
        elif len(mask) > self.config.who_masklen:
            cut = "Mask too long"
            mask = mask[: self.config.who_masklen]
        else:
            # one pass over the users, each field matched in time linear in its length, and at
            # most who_limit replies: a mask matches everybody, or nobody slowly, at a bounded cost
            pattern = p.compile_mask("*" if mask in ("0", "") else mask)
            on_server = pattern.matches(server)
            limit = self.config.who_limit
            shared: set[User] | None = None  # whom an invisible user is visible to: made if needed
            scanned = 0
            for other in self.nicks.values():
                scanned += 1
                if not other.registered:
                    continue
                if "i" in other.modes:
                    if shared is None:
                        shared = set(self._neighbours(user)) | {user}
                    if other not in shared:
                        continue
                if opers_only and "o" not in other.modes:
                    continue
                if (
                    on_server
                    or pattern.matches(other.nick)
                    or pattern.matches(other.username)
                    or pattern.matches(other.host)
                    or pattern.matches(other.realname)
                ):
                    if len(members) == limit:
                        cut = f"Too many matches: only the first {limit} are shown"
                        break
                    seen = [c.name for c in other.channels.values() if self._visible(c, user)]
                    members.append(other)
                    where.append(seen[0] if seen else "*")
            out.cost += min(BIG_REPLY_MOST, scanned // WHO_SCAN)
        # the snapshot: what each row shows, as it is now (loops that run in C); the lines are
        # made from it after the state lock
        fields = list(map(_WHO_FIELDS, members))
        opers = [("o" in modes) for modes in map(_MODES, members)]
        nick = user.nick or "*"

        def render() -> bytes:
            data = []
            for i, (username, host, other_nick, away, realname) in enumerate(fields):
                if i % 100 == 99:
                    # hand the GIL over now and then: a thread holding the state lock (a
                    # snapshot, a PING) would wait out Python's 5 ms switch interval each time,
                    # and everyone waiting for the lock with it (bench/README.md, who_names.py)
                    time.sleep(0)
                if opers_only and not opers[i]:
                    continue
                flags = ("G" if away is not None else "H") + ("*" if opers[i] else "")
                if statuses is not None:
                    flags += _status(statuses.get(members[i], _NONE), multi)
                data.append(
                    _numeric(
                        server,
                        nick,
                        p.RPL_WHOREPLY,
                        where[0] if statuses is not None else where[i],
                        username,
                        host,
                        server,
                        other_nick,
                        flags,
                        f"0 {realname}",
                    )
                )
            if cut:
                data.append(_numeric(server, nick, p.ERR_TOOMANYMATCHES, "WHO", cut))
            data.append(_numeric(server, nick, p.RPL_ENDOFWHO, mask, "End of WHO list"))
            return b"".join(data)

        out.reply(user, render)

    @command("WHOIS")
    def _whois(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = line.params[-1].split(",")[0]
        other = self.find_user(nick)
        if other is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, nick, "No such nick/channel")
            self._reply(out, user, p.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
            return
        c = self.config
        self._reply(
            out, user, p.RPL_WHOISUSER, other.nick, other.username, other.host, "*", other.realname
        )
        chans = [
            chan.prefix_of(other, "multi-prefix" in user.caps) + chan.name
            for chan in other.channels.values()
            if self._visible(chan, user)
        ]
        head = len(f":{c.server_name} 319 {user.nick} {other.nick} :")
        for chunk in _chunks(chans, head):
            self._reply(out, user, p.RPL_WHOISCHANNELS, other.nick, chunk)
        self._reply(out, user, p.RPL_WHOISSERVER, other.nick, c.server_name, f"{c.network} server")
        if other.account is not None:
            self._reply(out, user, p.RPL_WHOISACCOUNT, other.nick, other.account, "is logged in as")
        if "o" in other.modes:
            self._reply(out, user, p.RPL_WHOISOPERATOR, other.nick, "is an IRC operator")
        if other.away is not None:
            self._reply(out, user, p.RPL_AWAY, other.nick, other.away)
        self._reply(
            out,
            user,
            p.RPL_WHOISIDLE,
            other.nick,
            str(int(now - other.last_message)),
            str(int(other.connected_at)),
            "seconds idle, signon time",
        )
        self._reply(out, user, p.RPL_ENDOFWHOIS, other.nick, "End of /WHOIS list")

    @command("WHOWAS")
    def _whowas(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params or not line.params[0]:
            self._reply(out, user, p.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = line.params[0]
        count = 0
        if len(line.params) > 1:
            count = p.parse_uint(line.params[1]) or 0
        key = casefold(nick)
        found = [entry for entry in reversed(self.whowas) if casefold(entry.nick) == key]
        if count:
            found = found[:count]
        if not found:
            self._reply(out, user, p.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
        for entry in found:
            when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(entry.when))
            self._reply(
                out,
                user,
                p.RPL_WHOWASUSER,
                entry.nick,
                entry.username,
                entry.host,
                "*",
                entry.realname,
            )
            self._reply(out, user, p.RPL_WHOISSERVER, entry.nick, self.config.server_name, when)
        self._reply(out, user, p.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")

    @command("ISON", min_params=1)
    def _ison(self, user: User, line: Line, now: float, out: Outbox) -> None:
        nicks = " ".join(line.params).split()
        online = [other.nick for nick in nicks if (other := self.find_user(nick)) is not None]
        self._reply(out, user, p.RPL_ISON, " ".join(online))

    @command("USERHOST", min_params=1)
    def _userhost(self, user: User, line: Line, now: float, out: Outbox) -> None:
        replies = []
        for nick in " ".join(line.params).split()[:5]:
            other = self.find_user(nick)
            if other is not None:
                oper = "*" if "o" in other.modes else ""
                away = "-" if other.away is not None else "+"
                replies.append(f"{other.nick}{oper}={away}{other.username}@{other.host}")
        self._reply(out, user, p.RPL_USERHOST, " ".join(replies))
