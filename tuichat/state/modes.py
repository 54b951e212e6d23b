"""Modes: MODE on a user and on a channel (flags, key, limit, bans, quiets, member status)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold
from tuichat.state.core import Core
from tuichat.state.model import Channel, User
from tuichat.state.outbox import Outbox
from tuichat.state.spec import command

CHANNEL_MODES = "imnst"  # flags without a parameter
CHANNEL_MODES_ALL = "biklmnoqstv"
USER_MODES = "io"
MAX_LIMIT = 2**31 - 1  # the largest +l (InspIRCd's bound too); more is taken as this


def _mode_param_ok(param: str, mode: str) -> bool:
    """Whether a ban or quiet mask or a key (`mode`) can be kept: sendable as a middle parameter,
    and for a key, a JOIN's key list can hold it."""
    if not param or " " in param or param[0] == ":":
        return False
    return mode != "k" or "," not in param


def _compress(changes: list[str]) -> str:
    """["+o", "+v", "-b"] -> "+ov-b"."""
    text = ""
    sign = ""
    for change in changes:
        if change[0] != sign:
            sign = change[0]
            text += sign
        text += change[1]
    return text


@dataclass(slots=True)
class _Changes:
    """What one MODE line on a channel has changed so far, for the line that tells the members."""

    chan: Channel
    user: User
    now: float
    out: Outbox
    modes: list[str] = field(default_factory=list)  # "+o", "-k"...
    args: list[str] = field(default_factory=list)  # their parameters, in order

    def add(self, mode: str, arg: str | None = None) -> None:
        self.modes.append(mode)
        if arg is not None:
            self.args.append(arg)


class Modes(Core):
    """MODE."""

    @command("MODE", min_params=1)
    def _mode(self, user: User, line: Line, now: float, out: Outbox) -> None:
        target = line.params[0]
        if target.startswith("#"):
            self._channel_mode(user, line, now, out)
            return
        other = self.find_user(target)
        if other is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, target, "No such nick/channel")
            return
        if other is not user:
            self._reply(out, user, p.ERR_USERSDONTMATCH, "Can't change mode for other users")
            return
        if len(line.params) == 1:
            self._reply(out, user, p.RPL_UMODEIS, "+" + "".join(sorted(user.modes)))
            return
        sign = "+"
        changes: list[str] = []
        unknown = False
        for ch in line.params[1]:
            if ch in "+-":
                sign = ch
            elif ch == "i" or (ch == "o" and sign == "-"):
                if (ch in user.modes) != (sign == "+"):
                    user.modes.symmetric_difference_update(ch)
                    changes.append(sign + ch)
            elif ch != "o":
                unknown = True
        if unknown:
            self._reply(out, user, p.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
        if changes:
            out.send(
                user,
                Line("MODE", (user.nick, _compress(changes)), source=user.prefix).encode(
                    trailing=True
                ),
            )

    def _channel_mode(self, user: User, line: Line, now: float, out: Outbox) -> None:
        name = line.params[0]
        chan = self.channels.get(casefold(name))
        if chan is None:
            self._no_such_channel(out, user, name)
            return
        modes = chan.members.get(user)
        if len(line.params) == 1:
            self._reply(
                out, user, p.RPL_CHANNELMODEIS, chan.name, *chan.mode_string(modes is not None)
            )
            self._reply(out, user, p.RPL_CREATIONTIME, chan.name, str(int(chan.created)))
            return
        is_op = modes is not None and "o" in modes
        args = list(line.params[2:])
        sign = "+"
        changes = _Changes(chan, user, now, out)
        refused = False
        listed = ""
        with_param = 0

        def allowed() -> bool:
            nonlocal refused
            if not is_op and not refused:
                refused = True
                self._not_channel_operator(out, user, chan)
            return is_op

        for ch in line.params[1]:
            if ch in "+-":
                sign = ch
                continue
            letter = _LETTERS.get(ch)
            if letter is None:
                self._reply(out, user, p.ERR_UNKNOWNMODE, ch, "is unknown mode char to me")
                continue
            if sign not in letter.param:
                if allowed():
                    letter.apply(self, changes, sign, ch, None)
                continue
            if not args:
                if letter.lists:
                    if ch not in listed:  # each list once
                        listed += ch
                        self._send_mask_list(out, user, chan, ch)
                elif sign == "-" and letter.unset_without_param:
                    if allowed():
                        letter.apply(self, changes, sign, ch, None)
                else:
                    self._reply(out, user, p.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
                continue
            arg = args.pop(0)
            with_param += 1
            if with_param > self.config.modes or not allowed():
                continue
            if letter.checked and not _mode_param_ok(arg, ch):
                # it could not be shown as a middle parameter of MODE, 324 or 367 (`:x`), and
                # no JOIN could give such a key: refused, as modern.ircdocs.horse advises
                self._reply(
                    out,
                    user,
                    p.ERR_INVALIDMODEPARAM,
                    chan.name,
                    ch,
                    "*",
                    "Invalid mode parameter: empty, or a space, a comma or a leading colon",
                )
                continue
            letter.apply(self, changes, sign, ch, arg)
        if changes.modes:
            params = (chan.name, _compress(changes.modes), *changes.args)
            out.broadcast(chan.users, Line("MODE", params, source=user.prefix).encode())
            if any(mode[1] not in "ov" for mode in changes.modes):  # member status is not kept
                self._persist(chan, now)

    def _send_mask_list(self, out: Outbox, user: User, chan: Channel, ch: str) -> None:
        """The ban list (`b`) or the quiet list (`q`) of `chan`."""
        entries, item, end, what = (
            (chan.bans, p.RPL_BANLIST, p.RPL_ENDOFBANLIST, "ban")
            if ch == "b"
            else (chan.quiets, p.RPL_QUIETLIST, p.RPL_ENDOFQUIETLIST, "quiet")
        )
        extra = ("q",) if ch == "q" else ()
        for mask, setter, when in entries:
            self._reply(out, user, item, chan.name, *extra, mask, setter, str(when))
        self._reply(out, user, end, chan.name, *extra, f"End of channel {what} list")

    # what each letter does, with its parameter (None for one that takes none): see _LETTERS

    def _mode_flag(self, changes: _Changes, sign: str, ch: str, arg: str | None) -> None:
        chan = changes.chan
        if (ch in chan.modes) != (sign == "+"):
            chan.modes.symmetric_difference_update(ch)
            changes.add(sign + ch)

    def _mode_mask(self, changes: _Changes, sign: str, ch: str, arg: str | None) -> None:
        assert arg is not None
        chan = changes.chan
        entries = chan.bans if ch == "b" else chan.quiets
        mask = p.normalize_mask(arg)
        present = [ban for ban in entries if casefold(ban[0]) == casefold(mask)]
        if sign == "+" and not present and len(entries) >= self.config.maxbans:
            self._reply(
                changes.out,
                changes.user,
                p.ERR_BANLISTFULL,
                chan.name,
                mask,
                "Channel ban list is full",
            )
            return
        if sign == "+" and not present:
            entries.append((mask, changes.user.prefix, int(changes.now)))
        elif sign == "-" and present:
            entries.remove(present[0])
            mask = present[0][0]
        else:
            return
        changes.add(sign + ch, mask)

    def _mode_status(self, changes: _Changes, sign: str, ch: str, arg: str | None) -> None:
        assert arg is not None
        chan, out, user = changes.chan, changes.out, changes.user
        target = self.find_user(arg)
        if target is None:
            self._reply(out, user, p.ERR_NOSUCHNICK, arg, "No such nick/channel")
            return
        target_modes = chan.members.get(target)
        if target_modes is None:
            self._reply(
                out,
                user,
                p.ERR_USERNOTINCHANNEL,
                target.nick,
                chan.name,
                "They aren't on that channel",
            )
            return
        if (ch in target_modes) != (sign == "+"):
            target_modes.symmetric_difference_update(ch)
            changes.add(sign + ch, target.nick)

    def _mode_key(self, changes: _Changes, sign: str, ch: str, arg: str | None) -> None:
        chan = changes.chan
        if sign == "+":
            assert arg is not None
            chan.key = arg
            changes.add("+k", arg)
        elif chan.key is not None:
            chan.key = None
            changes.add("-k", "*")

    def _mode_limit(self, changes: _Changes, sign: str, ch: str, arg: str | None) -> None:
        chan = changes.chan
        if sign == "-":
            if chan.limit is not None:
                chan.limit = None
                changes.add("-l")
            return
        assert arg is not None
        limit = p.parse_uint(arg, MAX_LIMIT)
        if limit is not None and limit > 0 and limit != chan.limit:
            chan.limit = limit
            changes.add("+l", str(limit))


@dataclass(frozen=True, slots=True)
class _Letter:
    """How MODE treats one channel mode letter."""

    apply: Callable[[Modes, _Changes, str, str, str | None], None]
    param: str = ""  # the signs with which it takes a parameter
    lists: bool = False  # without a parameter, it shows its list (b, q)
    unset_without_param: bool = False  # it may be unset without its parameter (-k)
    checked: bool = False  # its parameter is kept, so it must be sendable (_mode_param_ok)


_LETTERS = {
    "b": _Letter(Modes._mode_mask, "+-", lists=True, checked=True),
    "q": _Letter(Modes._mode_mask, "+-", lists=True, checked=True),
    "k": _Letter(Modes._mode_key, "+-", unset_without_param=True, checked=True),
    "l": _Letter(Modes._mode_limit, "+"),
    "o": _Letter(Modes._mode_status, "+-"),
    "v": _Letter(Modes._mode_status, "+-"),
    **{flag: _Letter(Modes._mode_flag) for flag in CHANNEL_MODES},
}
