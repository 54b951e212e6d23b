"""The client's view of IRC, the numeric replies it is fed: where each is shown, NAMES and WHO
into member lists, ISUPPORT into what the server allows."""

from __future__ import annotations

from tuichat.client_state.base import StateBase
from tuichat.client_state.model import (
    ERROR,
    EVENT,
    INFO,
    MAX_MEMBERS,
    SERVER,
    Changes,
    Entry,
    Member,
    Members,
)
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, casefold, parse_uint

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


class Numerics(StateBase):
    """The handler of numeric replies."""

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
