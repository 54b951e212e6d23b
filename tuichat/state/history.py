"""History: replay on JOIN, CHATHISTORY, who owns a private conversation, read markers (MARKREAD),
and SETNAME.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.model import MAX_MARKERS, MAX_PEERS, Channel, User
from tuichat.state.outbox import Outbox
from tuichat.state.spec import command
from tuichat.state.wire import _add_tag, _middle, _tagged
from tuichat.store import LAST, Message, Position, Storage


def _private_key(a: str, b: str) -> str:
    """The history key of a private conversation: both parties (State._party), sorted."""
    return f"{a} {b}" if a <= b else f"{b} {a}"


def _met(user: User, party: str) -> None:
    """Remember that the guest `user` talked with `party` (see State._adopt)."""
    if user.account is None:
        if user.peers is None:
            user.peers = set()
        if len(user.peers) < MAX_PEERS:
            user.peers.add(party)


def _read_history(
    store: Storage, key: str, sub: str, texts: tuple[str, ...], limit: int
) -> list[Message] | None:
    """The rows a CHATHISTORY subcommand asks for (`texts`: its message references, `*`,
    `msgid=` or `timestamp=`, checked), or None when a msgid is not one of `key`'s. Reads the
    store only (run outside the state lock): at most two range scans and two msgid lookups."""
    # a reference as an upper bound: a timestamp sorts before its millisecond's messages
    refs: list[Position | None] = []
    exact: list[bool] = []
    for text in texts:
        kind, _, value = text.partition("=")
        if text == "*":
            refs.append(None)
        elif kind == "msgid":
            found = store.locate(value)
            if found is None or found[0] != key:
                return None
            refs.append(found[1])
        else:
            ms = p.parse_server_time(value)
            assert ms is not None
            refs.append((ms, 0))
        exact.append(kind == "msgid")

    def lower(i: int) -> Position:  # as a lower bound, after its millisecond's messages
        ref = refs[i]
        assert ref is not None
        return ref if exact[i] else (ref[0], LAST)

    def upper(i: int) -> Position:
        ref = refs[i]
        assert ref is not None
        return ref

    if sub == "LATEST":
        return store.query(key, limit, after=lower(0) if refs[0] is not None else None)
    if sub == "BEFORE":
        return store.query(key, limit, before=upper(0))
    if sub == "AFTER":
        return store.query(key, limit, after=lower(0), newest=False)
    if sub == "AROUND":
        older = store.query(key, limit // 2, before=upper(0))
        at = upper(0)  # the reference itself, or its millisecond, and on
        return older + store.query(key, limit - len(older), after=(at[0], at[1] - 1), newest=False)
    # BETWEEN, either way round
    if upper(0) <= upper(1):
        return store.query(key, limit, after=lower(0), before=upper(1), newest=False)
    return store.query(key, limit, after=lower(1), before=upper(0))


def _nothing(result: object, now: float, out: Outbox) -> None:
    pass


class History(Core):
    """CHATHISTORY, MARKREAD, SETNAME, and the history of JOIN."""

    def _replay(self, out: Outbox, user: User, chan: Channel) -> None:
        """Context for a client that cannot ask for history: the channel's last lines."""
        limit = self.config.join_replay
        if self.store is None or limit <= 0 or user.caps & {"draft/chathistory", "chathistory"}:
            return
        store, key, name = self.store, casefold(chan.name), chan.name
        # read outside the lock, and only what was written before this JOIN: what comes later,
        # the joiner gets live
        through = store.written()

        def then(rows: object, now: float, follow: Outbox) -> None:
            if rows and not user.gone:
                assert isinstance(rows, list)
                stamp_text = "server-time" not in user.caps
                self._send_history(follow, user, name, rows, stamp_text=stamp_text)

        out.defer(lambda: store.query(key, limit, through=through), then)

    def _send_history(
        self, out: Outbox, user: User, target: str, rows: list[Message], stamp_text: bool = False
    ) -> None:
        """Stored messages in a `chathistory` batch (when the client has batch)."""
        server = self.config.server_name
        batch = self._batch_id().decode() if "batch" in user.caps else None
        parts: list[bytes] = []
        if batch:
            parts.append(f":{server} BATCH +{batch} chathistory {target}\r\n".encode())
        for row in rows:
            text = row.text
            if stamp_text:  # no server-time: say when in the text, as other servers do
                text = time.strftime("[%Y-%m-%d %H:%M] ", time.gmtime(row.time // 1000)) + text
            payload = _tagged(
                row.source,
                row.account,
                row.command,
                row.target,
                text,
                row.tags or {},
                row.msgid,
                row.time,
                batch,
            )
            parts.append(payload.for_user(user))
        if batch:
            parts.append(f":{server} BATCH -{batch}\r\n".encode())
        out.send(user, b"".join(parts))

    def _history_key(self, user: User, target: str) -> str | Callable[[], str] | None:
        """The history key of `target` as `user` may read it, or None; for a nick that only a
        guest who left had, a function that finds it by reading the history (to run outside the
        state lock)."""
        if target.startswith("#"):
            chan = self.channels.get(casefold(target))
            if chan is None or user not in chan.members:
                return None
            return casefold(chan.name)
        if not p.is_valid_nick(target, self.config.nicklen):
            return None
        folded = casefold(target)
        store = self.store
        if self.find_user(target) is not None or store is None or store.account(folded):
            return self._peer_key(user, target)
        me = self._party(user)
        return lambda: (
            store.guest_conversation(me, folded, reading=True) or _private_key(me, folded)
        )

    def _canonical(self, target: str) -> str:
        """A channel's or online nick's own spelling of `target`."""
        chan = self.channels.get(casefold(target))
        if chan is not None:
            return chan.name
        other = self.find_user(target)
        return other.nick if other is not None else target

    @command("CHATHISTORY", min_params=1)
    def _chathistory(self, user: User, line: Line, now: float, out: Outbox) -> None:
        params = line.params
        sub = params[0].upper()
        if self.store is None:
            self._reply(out, user, p.ERR_UNKNOWNCOMMAND, "CHATHISTORY", "Unknown command")
            return
        needed = {"LATEST": 4, "BEFORE": 4, "AFTER": 4, "AROUND": 4, "BETWEEN": 5, "TARGETS": 4}
        if sub not in needed:
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", sub, "Unknown subcommand")
            return
        limit = p.parse_uint(params[-1], self.config.chathistory_max)
        if len(params) < needed[sub] or limit is None:
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", sub, "Invalid parameters")
            return
        if sub == "TARGETS":
            self._history_targets(user, params[1], params[2], limit, out)
            return
        target = params[1]
        key = self._history_key(user, target)
        if key is None:
            self._fail(
                out,
                user,
                "CHATHISTORY",
                "INVALID_TARGET",
                sub,
                target,
                "No such target, or you may not read its history",
            )
            return
        texts = params[2 : needed[sub] - 1]
        if any(
            text.startswith("timestamp=") and p.parse_server_time(text[10:]) is None
            for text in texts
        ):
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", sub, "Invalid timestamp")
            return

        def bad_reference(to: Outbox) -> None:
            reason = "Invalid message reference"
            self._fail(to, user, "CHATHISTORY", "INVALID_MSGREFTYPE", sub, target, reason)

        if any(
            not (text == "*" or text.startswith(("msgid=", "timestamp="))) for text in texts
        ) or (sub != "LATEST" and "*" in texts):
            bad_reference(out)
            return
        store, name = self.store, self._canonical(target)

        def then(rows: object, now: float, follow: Outbox) -> None:
            if user.gone:
                return
            if rows is None:  # a msgid not found, or of another conversation
                bad_reference(follow)
                return
            assert isinstance(rows, list)
            self._send_history(follow, user, name, rows)

        # the rows are read outside the state lock, and sent under it
        find = key if callable(key) else None
        known = key if isinstance(key, str) else ""
        out.defer(lambda: _read_history(store, find() if find else known, sub, texts, limit), then)

    def _history_targets(
        self, user: User, first: str, second: str, limit: int, out: Outbox
    ) -> None:
        assert self.store is not None
        start = p.parse_server_time(first.partition("=")[2])
        end = p.parse_server_time(second.partition("=")[2])
        if start is None or end is None:
            self._fail(out, user, "CHATHISTORY", "INVALID_PARAMS", "TARGETS", "Invalid timestamps")
            return
        channels = list(user.channels)
        # private conversations: those of the account, or of this guest connection
        store, party = self.store, self._party(user)

        def then(found: object, now: float, follow: Outbox) -> None:
            if not user.gone:
                assert isinstance(found, list)
                self._send_targets(user, found, follow)

        out.defer(lambda: store.targets(channels, party, start, end, limit), then)

    def _send_targets(self, user: User, found: list[tuple[str, str, int]], out: Outbox) -> None:
        server = self.config.server_name
        batch = self._batch_id().decode() if "batch" in user.caps else None
        parts = []
        if batch:
            parts.append(f":{server} BATCH +{batch} draft/chathistory-targets\r\n".encode())
        for key, name, latest in found:
            if key in user.channels:
                name = user.channels[key].name
            elif " " in key:
                name = self._party_nick(name)
            line = Line(
                "CHATHISTORY", ("TARGETS", name, p.format_server_time(latest)), source=server
            )
            data = line.encode()
            parts.append(
                _add_tag(data[:-2], f"batch={batch}".encode()) + b"\r\n" if batch else data
            )
        if batch:
            parts.append(f":{server} BATCH -{batch}\r\n".encode())
        out.send(user, b"".join(parts))

    def _marker_key(self, user: User, target: str) -> str:
        return casefold(target) if target.startswith("#") else self._peer_key(user, target)

    def _party(self, user: User) -> str:
        """Who owns `user`'s private history: the folded account when logged in; for a guest, a
        party of this connection alone ("nick!token", made on first use: `!` is in no nick or
        account name, and the random token in no other connection). It stays across nick
        changes and dies with the connection: no later holder of the nick can ever have it."""
        if user.account is not None:
            return casefold(user.account)
        party = user.party
        if party is None:
            party = user.party = f"{casefold(user.nick)}!{secrets.token_hex(8)}"
            self._guests[party] = user
        return party

    def _party_nick(self, party: str) -> str:
        """The nick to show for a party: a guest's current nick (once gone, the one it had when
        its party was made); an account's name."""
        nick, bang, _ = party.partition("!")
        if bang:
            guest = self._guests.get(party)
            return guest.nick if guest is not None else nick
        found = self.store.account(party) if self.store is not None else None
        return found[0] if found is not None else party

    def _peer_key(self, user: User, target: str) -> str:
        """The key of `user`'s private conversation with the nick `target`: with whoever has
        that nick now; else with the account of that name; else with the latest guest of that
        nick `user` talked with (a guest who left stays in the history of whoever they talked
        to, under the nick they came with)."""
        me = self._party(user)
        other = self.find_user(target)
        if other is not None:
            return _private_key(me, self._party(other))
        folded = casefold(target)
        if self.store is not None and self.store.account(folded) is None:
            found = self.store.guest_conversation(me, folded)
            if found is not None:
                return found
        return _private_key(me, folded)

    def _adopt(self, user: User, guest: str, out: Outbox) -> None:
        """A guest logged in: their conversations so far move to the account (the same
        connection, so the same person), in the background and in chunks."""
        self._guests.pop(guest, None)
        user.party = None
        peers, user.peers = user.peers, None
        if self.store is None or not peers or user.account is None:
            return
        mine = casefold(user.account)
        for peer in peers:  # an online guest it talked with now talks with the account
            other = self._guests.get(peer)
            if other is not None and other.peers is not None and guest in other.peers:
                other.peers.discard(guest)
                other.peers.add(mine)
        changes = [
            (_private_key(guest, peer), _private_key(mine, mine if peer == guest else peer))
            for peer in peers
        ]
        store = self.store
        store.commit()  # the job runs outside the state lock, and commits nothing itself
        out.defer(lambda: store.rekey(changes), _nothing)

    def _send_marker(self, out: Outbox, user: User, target: str) -> None:
        key = self._marker_key(user, target)
        if user.account is not None and self.store is not None:
            ms = self.store.read_marker(casefold(user.account), key)
        else:
            ms = user.markers.get(key)
        stamp = "timestamp=" + p.format_server_time(ms) if ms is not None else "*"
        line = Line("MARKREAD", (_middle(target), stamp), source=self.config.server_name)
        out.send(user, line.encode())

    def _marker_target(self, user: User, target: str, key: str) -> bool:
        """Whether `user` has a conversation `target` (its history key `key`) to mark as read:
        a channel they are in, or a private conversation with stored history (without history,
        a nick that is online)."""
        if target.startswith("#"):
            return key in user.channels
        if not p.is_valid_nick(target, self.config.nicklen):
            return False
        if self.store is None:
            return self.find_user(target) is not None
        return self.store.has_messages(key)

    @command("MARKREAD", min_params=1)
    def _markread(self, user: User, line: Line, now: float, out: Outbox) -> None:
        target = line.params[0]
        if len(line.params) == 1:
            self._send_marker(out, user, target)
            return
        value = line.params[1]
        ms = (
            p.parse_server_time(value.partition("=")[2]) if value.startswith("timestamp=") else None
        )
        if ms is None:
            self._fail(out, user, "MARKREAD", "INVALID_PARAMS", target, "Invalid timestamp")
            return
        key = self._marker_key(user, target)
        if not self._marker_target(user, target, key):
            # no rows for made-up targets: only a conversation the user has can be marked
            text = "No such conversation to mark"
            self._fail(out, user, "MARKREAD", "INVALID_PARAMS", target, text)
            return
        if user.account is not None and self.store is not None:
            self.store.set_read_marker(casefold(user.account), key, ms, MAX_MARKERS)
            account = casefold(user.account)
            sessions = [
                other
                for other in self.clients
                if other.account is not None
                and casefold(other.account) == account
                and "draft/read-marker" in other.caps
            ]
        else:
            if key not in user.markers and len(user.markers) >= MAX_MARKERS:
                del user.markers[next(iter(user.markers))]  # bounded: the oldest goes
            user.markers[key] = max(ms, user.markers.get(key, 0))
            sessions = [user]
        for session in sessions or [user]:  # every client of the account learns of it
            self._send_marker(out, session, target)

    @command("SETNAME", min_params=1)
    def _setname(self, user: User, line: Line, now: float, out: Outbox) -> None:
        realname = line.params[0]
        if not realname or len(realname.encode()) > self.config.namelen:
            self._fail(out, user, "SETNAME", "INVALID_REALNAME", "That real name is not allowed")
            return
        user.realname = realname
        data = self._from(user, "SETNAME", realname)
        for other in [user, *self._neighbours(user)]:
            if "setname" in other.caps:
                out.send(other, data)
