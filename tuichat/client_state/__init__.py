"""The client's view of IRC: windows, channels, members, topics, unread counts. Pure.

`ClientState.feed(line, now)` updates the state from one received line and returns the `Changes`
it made (entries to show in which window, which member lists and topics changed). The Textual app
renders from this; nothing here knows about widgets, sockets or the clock.
"""

from __future__ import annotations

from tuichat.client_state.lines import Lines
from tuichat.client_state.model import (
    ACTION,
    CHATTY,
    ERROR,
    EVENT,
    INFO,
    MAX_BATCHES,
    MAX_MEMBERS,
    MESSAGE,
    NEW_QUERIES,
    NOTICE,
    QUERY_WINDOW,
    SERVER,
    Changes,
    Entry,
    Member,
    Members,
    Window,
)
from tuichat.client_state.numerics import Numerics


class ClientState(Numerics, Lines):
    """Everything the client knows about its IRC session."""


__all__ = [
    "ACTION",
    "CHATTY",
    "ERROR",
    "EVENT",
    "INFO",
    "MAX_BATCHES",
    "MAX_MEMBERS",
    "MESSAGE",
    "NEW_QUERIES",
    "NOTICE",
    "QUERY_WINDOW",
    "SERVER",
    "Changes",
    "ClientState",
    "Entry",
    "Member",
    "Members",
    "Window",
]
