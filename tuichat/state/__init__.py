"""The server's shared state: users, channels, members, modes.

Pure: no sockets, no threads, no clock of its own. `State.handle` takes a parsed `Line` from a user
and the current time, updates the state and records in an `Outbox` what to deliver to whom and which
connections to close. The server calls it under its state lock and does the I/O after releasing it.

The package: `model` (settings, users, channels), `outbox` (what to deliver, and its delivery),
`wire` (formatting), `core` (what the command families share: dispatch, labeled-response,
disconnect, tick) and one module per command family, each a mixin of `Core`.
"""

from __future__ import annotations

from tuichat.state.accounts import Accounts
from tuichat.state.channels import Channels
from tuichat.state.core import Core
from tuichat.state.history import History
from tuichat.state.messages import Messages
from tuichat.state.model import Channel, Config, Sink, User, WhowasEntry
from tuichat.state.modes import Modes
from tuichat.state.operators import Operators
from tuichat.state.outbox import BIG_REPLY, BIG_REPLY_MOST, Outbox, Variants
from tuichat.state.queries import Queries
from tuichat.state.registration import Registration
from tuichat.state.wire import iso_time, parse_iso_time
from tuichat.store import Store

__all__ = [
    "BIG_REPLY",
    "BIG_REPLY_MOST",
    "Channel",
    "Config",
    "Outbox",
    "Sink",
    "State",
    "User",
    "Variants",
    "WhowasEntry",
    "iso_time",
    "parse_iso_time",
]


class State(Registration, Channels, Messages, Modes, Queries, Operators, Accounts, History, Core):
    """All users and channels of one server."""

    def __init__(self, config: Config | None = None, store: Store | None = None) -> None:
        super().__init__(config, store)
        self._handlers = {
            "CAP": self._cap,
            "PASS": self._pass,
            "NICK": self._nick,
            "USER": self._user,
            "PING": self._ping,
            "PONG": self._pong,
            "QUIT": self._quit,
            "JOIN": self._join,
            "PART": self._part,
            "PRIVMSG": self._privmsg,
            "NOTICE": self._privmsg,
            "NAMES": self._names,
            "TOPIC": self._topic,
            "LIST": self._list,
            "WHO": self._who,
            "WHOIS": self._whois,
            "WHOWAS": self._whowas,
            "AWAY": self._away,
            "INVITE": self._invite,
            "KICK": self._kick,
            "MODE": self._mode,
            "OPER": self._oper,
            "KILL": self._kill,
            "MOTD": self._motd,
            "LUSERS": self._lusers,
            "VERSION": self._version,
            "TIME": self._time,
            "ISON": self._ison,
            "USERHOST": self._userhost,
            "TAGMSG": self._tagmsg,
            "AUTHENTICATE": self._authenticate,
            "REGISTER": self._register,
            "VERIFY": self._verify,
            "CHATHISTORY": self._chathistory,
            "SETNAME": self._setname,
            "MARKREAD": self._markread,
            "KLINE": self._kline,
            "UNKLINE": self._unkline,
        }
