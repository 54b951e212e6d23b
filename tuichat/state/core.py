"""The core of the server's state: what every command family shares (users, nicks, channels,
settings), building lines, connections, dispatch, labeled-response, disconnect and the periodic
tick."""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from tuichat.limits import Backoff, Quota, address_key
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.facts import Relayed
from tuichat.state.model import Channel, Config, User, WhowasEntry
from tuichat.state.outbox import Outbox, Variants, _joined, _same
from tuichat.state.spec import Spec, commands_of
from tuichat.state.wire import _label_answer, _middle, _truncate
from tuichat.store import Storage, StoredChannel


def _restored(stored: StoredChannel) -> Channel:
    """An empty channel as it was stored."""
    chan = Channel(stored.name, stored.created)
    chan.founder = stored.founder
    chan.topic, chan.topic_by, chan.topic_time = stored.topic, stored.topic_by, stored.topic_time
    chan.modes = set(stored.modes)
    chan.key, chan.limit = stored.key, stored.limit
    chan.bans, chan.quiets = list(stored.bans), list(stored.quiets)
    return chan


def _to_store(chan: Channel, now: float) -> StoredChannel:
    return StoredChannel(
        chan.name,
        chan.created,
        chan.founder,
        chan.topic,
        chan.topic_by,
        chan.topic_time,
        "".join(sorted(chan.modes)),
        chan.key,
        chan.limit,
        list(chan.bans),
        list(chan.quiets),
        now,
    )


def _worth_keeping(chan: Channel) -> bool:
    """Whether an emptied channel holds anything a rejoiner must respect or would miss (its
    history is checked apart): otherwise it goes, as on a server without history."""
    return bool(
        chan.founder
        or chan.topic
        or chan.modes != {"n", "t"}
        or chan.key is not None
        or chan.limit is not None
        or chan.bans
        or chan.quiets
    )


# the capabilities offered (CAP LS), with their values; a store adds draft/chathistory
CAPABILITIES: dict[str, str | None] = {
    "account-notify": None,
    "account-tag": None,
    "away-notify": None,
    "batch": None,
    "cap-notify": None,
    "draft/account-registration": "before-connect",
    "draft/read-marker": None,
    "echo-message": None,
    "extended-join": None,
    "invite-notify": None,
    "labeled-response": None,
    "message-tags": None,
    "multi-prefix": None,
    "sasl": "PLAIN",
    "server-time": None,
    "setname": None,
    "userhost-in-names": None,
}


class Core:
    """What every command family works on: the users, nicks, channels and settings of one server,
    and the machinery they share (building lines, dispatch, labeled-response, disconnect, tick).

    The families are mixins of this class; `State` puts them together."""

    # the commands this class handles, by name, from its handlers' specs (`spec.command`)
    commands: ClassVar[dict[str, Spec]] = {}

    if TYPE_CHECKING:
        # what one family uses of another's (State has them all)
        def _rename_guest(self, user: User, now: float, out: Outbox) -> None: ...
        def _kline_for(self, user: User, now: float) -> str | None: ...
        def _send_lusers(self, out: Outbox, user: User) -> None: ...
        def _send_motd(self, out: Outbox, user: User) -> None: ...
        def _replay(self, out: Outbox, user: User, chan: Channel) -> None: ...
        def _send_marker(self, out: Outbox, user: User, target: str) -> None: ...
        def _party(self, user: User) -> str: ...
        def _adopt(self, user: User, guest: str, out: Outbox) -> None: ...
        def _banned(self, chan: Channel, user: User) -> bool: ...
        def _visible(self, chan: Channel, user: User) -> bool: ...
        def _visible_members(self, chan: Channel, user: User) -> list[User]: ...

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.commands = commands_of(cls)

    def __init__(self, config: Config | None = None, store: Storage | None = None) -> None:
        self.config = config or Config()
        self.store = store
        self.capabilities = dict(CAPABILITIES)
        if store is not None:
            # the spec is a draft: its unprefixed cap name must not be used yet
            self.capabilities["draft/chathistory"] = None
        if store is None or not self.config.open_registration:
            del self.capabilities["draft/account-registration"]
        self._batches = itertools.count(1)
        self.closing = False  # the server is shutting down
        # server bans by user@host mask: mask -> (reason, setter, expires or 0)
        self.klines: dict[str, tuple[str, str, float]] = dict(store.klines()) if store else {}
        self.sts_port: int | None = None  # the TLS port, advertised with STS when set
        self.sts_duration = 0  # seconds clients keep the policy; 0: not on TLS connections
        self.clients: set[User] = set()
        self.nicks: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.whowas: deque[WhowasEntry] = deque(maxlen=self.config.whowas)
        self._guests: dict[str, User] = {}  # party -> the guest it belongs to, while connected
        c = self.config
        # wrong passwords (OPER and SASL) by account or operator name, and by address
        self._guesses_by_name = Backoff(c.login_failures, 1.0, c.login_delay_cap)
        self._guesses_by_address = Backoff(c.login_failures_per_address, 1.0, c.login_delay_cap)
        self._registrations = Quota(c.registrations_per_hour, 3600.0)  # by address
        # expired accounts whose private history is being deleted: not to be registered yet
        self.expiring: set[str] = set()
        self._history_by_account = Quota(c.history_quota_account, 86400.0)
        self._history_by_address = Quota(c.history_quota_address, 86400.0)
        if store is not None:
            for stored in store.channels():
                self.channels[casefold(stored.name)] = _restored(stored)
        self._isupport = self._build_isupport()

    def _reply(self, out: Outbox, user: User, numeric: str, *params: str) -> None:
        """A numeric for `user`. Middle parameters that echo what a client sent are made
        sendable: `NICK :a b` earns `432 * a :Erroneous nickname`, not a malformed line."""
        middle = [_middle(param) for param in params[:-1]]
        line = Line(
            numeric, (user.nick or "*", *middle, *params[-1:]), source=self.config.server_name
        )
        out.send(user, line.encode(trailing=True))

    def _from(
        self, user: User, command: str, *params: str, trailing: bool = True
    ) -> bytes | Variants:
        """A line from `user`; with the account tag for those who asked for it (account-tag)."""
        data = Line(command, params, source=user.prefix).encode(trailing=trailing)
        if len(data) > p.MAX_BODY and params:
            # a client's longest text, relayed with its prefix, would pass the line limit: cut
            head = Line(command, (*params[:-1], ""), source=user.prefix).format(trailing=True)
            last = _truncate(params[-1], p.MAX_BODY - 2 - len(head.encode()))
            data = Line(command, (*params[:-1], last), source=user.prefix).encode(trailing=True)
        if user.account is None:
            return data
        return Variants.of(Relayed(user.account, data))

    def _fail(self, out: Outbox, user: User, command: str, code: str, *context: str) -> None:
        """A standard reply: FAIL <command> <code> [context...] :<description>."""
        # the context may echo what a client sent; the last parameter is the description
        middle = [_middle(param) for param in context[:-1]]
        line = Line("FAIL", (command, code, *middle, *context[-1:]), source=self.config.server_name)
        out.send(user, line.encode(trailing=True))

    # the channel guards' refusals, the same wherever they are checked
    def _no_such_channel(self, out: Outbox, user: User, name: str) -> None:
        self._reply(out, user, p.ERR_NOSUCHCHANNEL, name, "No such channel")

    def _not_on_channel(self, out: Outbox, user: User, chan: Channel) -> None:
        self._reply(out, user, p.ERR_NOTONCHANNEL, chan.name, "You're not on that channel")

    def _not_channel_operator(self, out: Outbox, user: User, chan: Channel) -> None:
        self._reply(out, user, p.ERR_CHANOPRIVSNEEDED, chan.name, "You're not channel operator")

    def _build_isupport(self) -> list[str]:
        c = self.config
        tokens = [
            f"AWAYLEN={c.awaylen}",
            f"CASEMAPPING={p.CASEMAPPING}",
            f"CHANLIMIT=#:{c.chanlimit}",
            "CHANMODES=bq,k,l,imnst",
            f"CHANNELLEN={c.channellen}",
            "CHANTYPES=#",
            "HOSTLEN=64",
            f"KICKLEN={c.kicklen}",
            f"MAXLIST=bq:{c.maxbans}",
            f"MAXTARGETS={c.maxtargets}",
            f"MODES={c.modes}",
            f"NETWORK={c.network}",
            f"NICKLEN={c.nicklen}",
            "PREFIX=(ov)@+",
            f"TARGMAX=PRIVMSG:{c.maxtargets},NOTICE:{c.maxtargets},NAMES:{c.maxtargets},JOIN:,"
            "PART:,KICK:1,WHOIS:1",
            f"TOPICLEN={c.topiclen}",
            f"USERLEN={c.userlen}",
            f"NAMELEN={c.namelen}",
        ]
        if self.store is not None:
            tokens += [f"CHATHISTORY={c.chathistory_max}", "MSGREFTYPES=msgid,timestamp"]
        return sorted(tokens)

    def _send_isupport(self, out: Outbox, user: User) -> None:
        for i in range(0, len(self._isupport), 13):
            self._reply(
                out,
                user,
                p.RPL_ISUPPORT,
                *self._isupport[i : i + 13],
                "are supported by this server",
            )

    def connect(self, user: User) -> None:
        """A new connection arrived."""
        self.clients.add(user)

    def handle(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """Handle one line from `user`."""
        if user.gone:
            return
        user.last_active = now
        user.ping_sent = None
        label = line.tags.get("label") if line.tags else None
        if label and "labeled-response" in user.caps and "batch" in user.caps:
            sub = Outbox(render_later=out.render_later)
            self._dispatch_command(user, line, now, sub)
            self._labeled(user, label[:64], sub, out)
        else:
            self._dispatch_command(user, line, now, out)

    def _dispatch_command(self, user: User, line: Line, now: float, out: Outbox) -> None:
        """Check the command's spec, then run its handler: the one place for these checks."""
        command = line.command
        spec = self.commands.get(command)
        if spec is None:
            if user.registered:
                self._reply(out, user, p.ERR_UNKNOWNCOMMAND, command, "Unknown command")
            else:
                self._reply(out, user, p.ERR_NOTREGISTERED, "You have not registered")
            return
        if not user.registered and not spec.before_registration:
            self._reply(out, user, p.ERR_NOTREGISTERED, "You have not registered")
            return
        if len(line.params) < spec.min_params:
            self._reply(out, user, p.ERR_NEEDMOREPARAMS, command, "Not enough parameters")
            return
        if spec.oper and "o" not in user.modes:
            self._reply(
                out, user, p.ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator"
            )
            return
        spec.handler(self, user, line, now, out)

    def _labeled(self, user: User, label: str, sub: Outbox, out: Outbox) -> None:
        """labeled-response: the user's share of `sub` goes out tagged with its label."""
        # an echo waits for its history row like every other delivery of the message
        recorded = any(isinstance(blob, Variants) and blob.recorded for _, blob, _ in sub.sends)
        lines = [line for line in sub.take(user).split(b"\r\n") if line]
        if not lines and sub.deferred:
            # the answer comes after slow work (password hashing): label it then
            deferred, sub.deferred = sub.deferred, []
            for job, then in deferred:
                sub.defer(job, self._labeled_then(user, label, then))
            out.extend(sub)
            return
        if sub.later:
            # a big reply rendered after the lock (only ever the requester's): labeled then
            later, sub.later = sub.later, []
            batch = self._batch_id()

            def render() -> bytes:
                rendered = b"".join(part() for _, part in later)
                every = lines + [line for line in rendered.split(b"\r\n") if line]
                return _label_answer(self.config.server_name, label, every, batch)

            out.later.append((user, render))
            out.extend(sub)
            return
        answer = _label_answer(
            self.config.server_name, label, lines, self._batch_id() if len(lines) > 1 else b""
        )
        if recorded:
            held = Variants(_same, lambda member: answer)
            held.recorded = True
            out.broadcast((user,), held)
        else:
            out.send(user, answer)
        out.extend(sub)

    def _labeled_then(
        self, user: User, label: str, then: Callable[[object, float, Outbox], None]
    ) -> Callable[[object, float, Outbox], None]:
        def labeled(result: object, now: float, out: Outbox) -> None:
            inner = Outbox()
            then(result, now, inner)
            self._labeled(user, label, inner, out)

        return labeled

    def _batch_id(self) -> bytes:
        return f"b{next(self._batches)}".encode()

    def input_too_long(self, user: User, out: Outbox) -> None:
        """`user` sent a line over the length limits; it was dropped."""
        self._reply(out, user, p.ERR_INPUTTOOLONG, "Input line was too long")

    def disconnect(self, user: User, reason: str, now: float, out: Outbox) -> None:
        """Remove `user` (idempotent): QUIT to those who share a channel, ERROR to the user."""
        self.disconnect_all((user,), (reason,), now, out)

    def disconnect_all(
        self, users: Sequence[User], reasons: Sequence[str], now: float, out: Outbox
    ) -> None:
        """Remove many users at once, each as `disconnect` would (idempotent): `reasons[i]` is
        why `users[i]` leaves.

        Everyone who stays is told of all the departures it shares a channel with in one blob,
        each QUIT once and in the order of `users`; each QUIT is rendered once, and each
        channel's member tuple is rebuilt once, however many of its members leave. So the cost
        is the sizes of the channels concerned, not their square (2,000 members closing at once
        would otherwise rebuild a 2,000-tuple 2,000 times and tell each who stays 2,000 times)."""
        leaving: dict[User, str] = {}
        for user, reason in zip(users, reasons, strict=True):
            if user.gone or user in leaving:
                continue
            user.gone = True
            self.clients.discard(user)
            if user.party is not None:
                self._guests.pop(user.party, None)
            leaving[user] = reason
        if not leaving:
            return
        if self.closing:  # the server is going: everyone leaves, nobody needs to be told
            for user, reason in leaving.items():
                out.close(user, f"Closing link ({reason})")
            return
        # each departure's QUIT, and who leaves each channel concerned, in departure order
        quits: dict[User, bytes | Variants] = {}
        left: dict[str, list[User]] = {}
        for user, reason in leaving.items():
            if not user.registered:
                continue
            self.whowas.append(WhowasEntry(user.nick, user.username, user.host, user.realname, now))
            quits[user] = self._from(user, "QUIT", reason)
            for key in user.channels:
                left.setdefault(key, []).append(user)
        self._tell_quits(quits, left, out)
        for key, gone in left.items():
            chan = self.channels[key]
            for user in gone:
                del chan.members[user]
                del user.channels[key]
            chan.users = tuple(chan.members)
            if not chan.members:
                self._emptied(chan, key)
        for user, reason in leaving.items():
            if user.nick and self.nicks.get(casefold(user.nick)) is user:
                del self.nicks[casefold(user.nick)]
            out.close(user, f"Closing link ({reason})")

    def _tell_quits(
        self, quits: dict[User, bytes | Variants], left: dict[str, list[User]], out: Outbox
    ) -> None:
        """Queue for each member who stays the QUITs of those in `left` it shares a channel with:
        once each, in the order of `quits`. Members of the same channels get the same blob."""
        # the channels concerned of each member who stays
        seen_in: dict[User, list[str]] = {}
        for key in left:
            for member in self.channels[key].users:
                if member not in quits and not member.gone:
                    where = seen_in.get(member)
                    if where is None:
                        seen_in[member] = [key]
                    else:
                        where.append(key)
        # the members who stay, grouped by the channels they share with the departures
        groups: dict[tuple[str, ...], list[User]] = {}
        for member, where in seen_in.items():
            groups.setdefault(tuple(where), []).append(member)
        order = {user: i for i, user in enumerate(quits)}
        for shared, members in groups.items():
            if len(shared) == 1:
                gone = left[shared[0]]
            else:  # in several channels: each departure once, in order
                gone = sorted({user for key in shared for user in left[key]}, key=order.__getitem__)
            out.broadcast(members, _joined([quits[user] for user in gone]))

    def tick(self, now: float, out: Outbox) -> None:
        """Periodic work: ping idle users, drop the silent and the never-registered (all those
        of one tick at once, `disconnect_all`)."""
        c = self.config
        leaving: list[User] = []
        reasons: list[str] = []
        for user in list(self.clients):
            if not user.registered:
                if now - user.connected_at >= c.registration_timeout:
                    leaving.append(user)
                    reasons.append("Registration timed out")
                continue
            if user.ping_sent is None:
                if now - user.last_active >= c.ping_interval:
                    user.ping_sent = now
                    out.send(user, Line("PING", (c.server_name,)).encode(trailing=True))
            elif now - user.ping_sent >= c.ping_timeout:
                leaving.append(user)
                reasons.append(f"Ping timeout: {int(now - user.last_active)} seconds")
                continue
            if user.nick_deadline is not None and now >= user.nick_deadline:
                self._rename_guest(user, now, out)
        if leaving:
            self.disconnect_all(leaving, reasons, now, out)

    def _neighbours(self, user: User) -> list[User]:
        """Every other user who shares a channel with `user`, once each."""
        seen: dict[User, None] = {}
        for chan in user.channels.values():
            for member in chan.users:
                if member is not user:
                    seen[member] = None
        return list(seen)

    def _leave(self, chan: Channel, user: User) -> None:
        key = casefold(chan.name)
        chan.remove(user)
        user.channels.pop(key, None)
        if not chan.members:
            self._emptied(chan, key)

    def _emptied(self, chan: Channel, key: str) -> None:
        """The last member of `chan` (at `key`) has left."""
        chan.invited.clear()  # invitations are its members' to give
        if not self._keep_empty(chan, key):
            del self.channels[key]

    def _keep_empty(self, chan: Channel, key: str) -> bool:
        """With history on, an emptied channel keeps its modes, bans and topic (they guard or
        describe its history) until --history-days pass unused; one that never held anything
        goes, as it always does without history."""
        if self.store is None:
            return False
        if _worth_keeping(chan) or self.store.has_messages(key):
            return True
        self.store.forget_channel(key)
        return False

    def _persist(self, chan: Channel, now: float) -> None:
        """Write a channel's state: on its creation and when its topic, modes or bans change."""
        if self.store is not None:
            self.store.save_channel(casefold(chan.name), _to_store(chan, now))

    def _guess_wait(self, user: User, name: tuple[str, str], now: float) -> int:
        """Whole seconds before `user` may try another password for `name`, by the failures
        for that name and from that address (0: now)."""
        wait = max(
            self._guesses_by_name.wait(name, now),
            self._guesses_by_address.wait(address_key(user.host), now),
        )
        return math.ceil(wait)

    def _guessed(self, user: User, name: tuple[str, str], now: float) -> None:
        """One more wrong password (or one about to be checked) for `name` from `user`."""
        self._guesses_by_name.failed(name, now)
        self._guesses_by_address.failed(address_key(user.host), now)

    def find_user(self, nick: str) -> User | None:
        user = self.nicks.get(casefold(nick))
        return user if user is not None and user.registered else None
