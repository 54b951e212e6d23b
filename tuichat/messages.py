"""Textual messages: facts that happened on the connection, posted by its thread."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tuichat.net.client import ClientEvent
from tuichat.net.protocol import Line


@dataclass
class LinesReceived(Message):
    """A batch of lines arrived (one `recv()` worth)."""

    lines: list[Line]


@dataclass
class ConnectionChanged(Message):
    """The connection's state changed: connecting, registered, lag measured, dropped..."""

    event: ClientEvent
