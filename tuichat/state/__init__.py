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
]


class State(Registration, Channels, Messages, Modes, Queries, Operators, Accounts, History, Core):
    """All users and channels of one server."""
