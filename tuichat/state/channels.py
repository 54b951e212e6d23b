"""Channel membership and what describes a channel: JOIN, PART, NAMES, TOPIC, LIST, INVITE, KICK."""

from __future__ import annotations

import operator
from collections.abc import Callable

from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.facts import Joined
from tuichat.state.model import MAX_INVITES, Channel, User
from tuichat.state.outbox import Outbox, Variants
from tuichat.state.spec import command
from tuichat.state.wire import _NONE, _chunks, _numeric, _status, _statuses, _truncate

_NICK = operator.attrgetter("nick")
_PREFIX = operator.attrgetter("prefix")


class Channels(Core):
    """JOIN, PART, NAMES, TOPIC, LIST, INVITE, KICK."""

    @command("JOIN", min_params=1)
    def _join(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params[0] == "0":
            for chan in list(user.channels.values()):
                out.broadcast(chan.users, self._from(user, "PART", chan.name, user.nick))
                self._leave(chan, user)
            return
        names = line.params[0].split(",")
        keys = line.params[1].split(",") if len(line.params) > 1 else []
        c = self.config
        for i, name in enumerate(names):
            if not name:
                continue
            if not p.is_valid_channel(name, c.channellen):
                self._no_such_channel(out, user, name)
                continue
            key = casefold(name)
            existing = self.channels.get(key)
            if existing is not None and user in existing.members:
                continue
            if len(user.channels) >= c.chanlimit:
                self._reply(
                    out, user, p.ERR_TOOMANYCHANNELS, name, "You have joined too many channels"
                )
                continue
            modes: set[str] = set()
            if existing is None:
                chan = self.channels[key] = Channel(name, now)
                modes.add("o")
                if self.store is not None:
                    chan.founder = casefold(user.account) if user.account is not None else None
                    self._persist(chan, now)
            else:
                chan = existing
                error = self._join_error(chan, user, keys[i] if i < len(keys) else None)
                if error is not None:
                    self._reply(out, user, error[0], chan.name, error[1])
                    continue
                # a kept channel's founder is its operator; into an empty one without a founder,
                # the first to get past its modes, as into a new one
                if self._founder(chan, user) or (not chan.members and chan.founder is None):
                    modes.add("o")
            chan.invited.pop(user, None)
            chan.add(user, modes)
            user.channels[key] = chan
            out.broadcast(chan.users, self._join_line(user, chan.name, now))
            if user.away is not None:  # away-notify: members learn the newcomer is away
                away = self._from(user, "AWAY", user.away)
                for member in chan.users:
                    if member is not user and "away-notify" in member.caps:
                        out.send(member, away)
            if chan.topic:
                self._send_topic(out, user, chan)
            self._send_names(out, user, chan, marker="draft/read-marker" in user.caps)
            self._replay(out, user, chan)

    def _join_line(self, user: User, channel: str, now: float) -> Variants:
        """JOIN as each member negotiated it: extended-join adds the account and real name."""
        fact = Joined(user.prefix, user.account, user.realname, channel, int(now * 1000))
        return Variants.of(fact)

    def _join_error(self, chan: Channel, user: User, key: str | None) -> tuple[str, str] | None:
        invited = user in chan.invited
        if chan.key is not None and key != chan.key:
            return p.ERR_BADCHANNELKEY, "Cannot join channel (+k)"
        if chan.limit is not None and len(chan.members) >= chan.limit:
            return p.ERR_CHANNELISFULL, "Cannot join channel (+l)"
        # nobody is in an empty +i channel to invite anyone: its founder and operators may enter
        closed = "i" in chan.modes and not invited and not self._founder(chan, user)
        if closed and not (not chan.members and "o" in user.modes):
            return p.ERR_INVITEONLYCHAN, "Cannot join channel (+i)"
        if not invited and self._banned(chan, user):
            return p.ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"
        return None

    def _founder(self, chan: Channel, user: User) -> bool:
        return (
            chan.founder is not None
            and user.account is not None
            and casefold(user.account) == chan.founder
        )

    def _banned(self, chan: Channel, user: User) -> bool:
        return bool(chan.bans) and any(
            p.mask_matches(mask, user.prefix) for mask, _, _ in chan.bans
        )

    @command("PART", min_params=1)
    def _part(self, user: User, line: Line, now: float, out: Outbox) -> None:
        reason = line.params[1] if len(line.params) > 1 else ""
        for name in line.params[0].split(","):
            if not name:
                continue
            chan = self.channels.get(casefold(name))
            if chan is None:
                self._no_such_channel(out, user, name)
            elif user not in chan.members:
                self._not_on_channel(out, user, chan)
            else:
                params = (chan.name, reason) if reason else (chan.name,)
                out.broadcast(chan.users, self._from(user, "PART", *params, trailing=bool(reason)))
                self._leave(chan, user)

    def _visible(self, chan: Channel, user: User) -> bool:
        return "s" not in chan.modes or user in chan.members

    def _visible_members(self, chan: Channel, user: User) -> list[User]:
        """The members `user` may see: all of them from inside, the visible ones from outside."""
        if user in chan.members:
            return list(chan.users)
        return [member for member in chan.users if "i" not in member.modes]

    def _names_reply(self, user: User, chan: Channel, end: bool) -> Callable[[], bytes]:
        """The 353 lines of `chan` for `user` (and 366 if `end`), to render from a snapshot taken
        now: the only work done here is one pass over the members."""
        symbol = "@" if "s" in chan.modes else "="
        multi = "multi-prefix" in user.caps
        full = "userhost-in-names" in user.caps
        members = self._visible_members(chan, user)
        # the snapshot, in loops that run in C: 2,000 members in a fraction of a millisecond
        nicks = list(map(_NICK, members))
        shown = list(map(_PREFIX, members)) if full else nicks
        statuses = _statuses(chan)
        server, nick, name = self.config.server_name, user.nick or "*", chan.name

        def render() -> bytes:
            order = sorted(range(len(nicks)), key=lambda i: casefold(nicks[i]))
            listed = [_status(statuses.get(members[i], _NONE), multi) + shown[i] for i in order]
            head = len(f":{server} 353 {nick} {symbol} {name} :")
            data = [
                _numeric(server, nick, p.RPL_NAMREPLY, symbol, name, chunk)
                for chunk in _chunks(listed, head)
            ]
            if end:
                data.append(_numeric(server, nick, p.RPL_ENDOFNAMES, name, "End of /NAMES list"))
            return b"".join(data)

        return render

    def _send_names(self, out: Outbox, user: User, chan: Channel, marker: bool = False) -> None:
        """NAMES after a JOIN (rendered at once: what follows the JOIN comes after it)."""
        data = self._names_reply(user, chan, end=False)()
        out.charge(len(data))
        out.send(user, data)
        if marker:  # read-marker: after a JOIN, the marker comes before the end of NAMES
            self._send_marker(out, user, chan.name)
        self._reply(out, user, p.RPL_ENDOFNAMES, chan.name, "End of /NAMES list")

    @command("NAMES")
    def _names(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if not line.params:
            self._reply(out, user, p.RPL_ENDOFNAMES, "*", "End of /NAMES list")
            return
        # each channel once, and a few at most: a long list of a big channel is a lot of work
        names = list(dict.fromkeys(casefold(name) for name in line.params[0].split(",") if name))
        for name in names[: self.config.maxtargets]:
            chan = self.channels.get(name)
            if chan is not None and self._visible(chan, user):
                out.reply(user, self._names_reply(user, chan, end=True))
            else:
                self._reply(out, user, p.RPL_ENDOFNAMES, name, "End of /NAMES list")

    def _send_topic(self, out: Outbox, user: User, chan: Channel) -> None:
        if not chan.topic:
            self._reply(out, user, p.RPL_NOTOPIC, chan.name, "No topic is set")
            return
        self._reply(out, user, p.RPL_TOPIC, chan.name, chan.topic)
        self._reply(
            out, user, p.RPL_TOPICWHOTIME, chan.name, chan.topic_by, str(int(chan.topic_time))
        )

    @command("TOPIC", min_params=1)
    def _topic(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name = line.params[0]
        chan = self.channels.get(casefold(name))
        if chan is None or not self._visible(chan, user):
            self._no_such_channel(out, user, name)
            return
        if len(line.params) == 1:
            self._send_topic(out, user, chan)
            return
        modes = chan.members.get(user)
        if modes is None:
            self._not_on_channel(out, user, chan)
            return
        if "t" in chan.modes and "o" not in modes:
            self._not_channel_operator(out, user, chan)
            return
        chan.topic = _truncate(line.params[1], self.config.topiclen)
        chan.topic_by = user.prefix
        chan.topic_time = now
        self._persist(chan, now)
        out.broadcast(chan.users, self._from(user, "TOPIC", chan.name, chan.topic))

    @command("LIST")
    def _list(self, user: User, line: Line, now: float, out: Outbox) -> None:
        if line.params and not line.params[0].startswith((">", "<")):
            wanted = [self.channels.get(casefold(name)) for name in line.params[0].split(",")]
            chans = [chan for chan in wanted if chan is not None]
        else:
            chans = sorted(self.channels.values(), key=lambda chan: casefold(chan.name))
        self._reply(out, user, p.RPL_LISTSTART, "Channel", "Users  Name")
        for chan in chans:
            if self._visible(chan, user):
                self._reply(out, user, p.RPL_LIST, chan.name, str(len(chan.members)), chan.topic)
        self._reply(out, user, p.RPL_LISTEND, "End of /LIST")

    @command("INVITE", min_params=2)
    def _invite(self, user: User, line: Line, now: float, out: Outbox) -> None:
        nick, name = line.params[0], line.params[1]
        target = self.find_user(nick)
        if target is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, nick, "No such nick/channel")
            return
        chan = self.channels.get(casefold(name))
        if chan is None:
            self._no_such_channel(out, user, name)
            return
        modes = chan.members.get(user)
        if modes is None:
            self._not_on_channel(out, user, chan)
            return
        if "i" in chan.modes and "o" not in modes:
            self._not_channel_operator(out, user, chan)
            return
        if target in chan.members:
            self._reply(
                out, user, p.ERR_USERONCHANNEL, target.nick, chan.name, "is already on channel"
            )
            return
        if len(chan.invited) >= MAX_INVITES:  # bounded: the oldest invitation goes
            del chan.invited[next(iter(chan.invited))]
        chan.invited[target] = None
        self._reply(out, user, p.RPL_INVITING, target.nick, chan.name)
        invite = self._from(user, "INVITE", target.nick, chan.name)
        out.send(target, invite)
        for member in chan.users:  # invite-notify: the channel hears of it too
            if member is not user and "invite-notify" in member.caps:
                out.send(member, invite)
        if target.away is not None:
            self._reply(out, user, p.RPL_AWAY, target.nick, target.away)

    @command("KICK", min_params=2)
    def _kick(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name = line.params[0]
        chan = self.channels.get(casefold(name))
        if chan is None:
            self._no_such_channel(out, user, name)
            return
        modes = chan.members.get(user)
        if modes is None:
            self._not_on_channel(out, user, chan)
            return
        if "o" not in modes:
            self._not_channel_operator(out, user, chan)
            return
        reason = (
            _truncate(line.params[2], self.config.kicklen) if len(line.params) > 2 else user.nick
        )
        for nick in line.params[1].split(","):
            target = self.find_user(nick)
            if target is None or target not in chan.members:
                self._reply(
                    out,
                    user,
                    p.ERR_USERNOTINCHANNEL,
                    nick,
                    chan.name,
                    "They aren't on that channel",
                )
                continue
            out.broadcast(chan.users, self._from(user, "KICK", chan.name, target.nick, reason))
            self._leave(chan, target)
            if not chan.members:
                break

    def forget_idle_channels(self, now: float, before: float) -> list[str]:
        """Forget the channels that nobody has been in since `before` and that have no history
        left (--history-days), so that names are not held forever; return their names."""
        if self.store is None:
            return []
        in_use = [key for key, chan in self.channels.items() if chan.members]
        names = []
        for key in self.store.forget_idle_channels(in_use, now, before):
            chan = self.channels.get(key)
            if chan is not None and not chan.members:
                del self.channels[key]
                names.append(chan.name)
        return names
