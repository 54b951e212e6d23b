"""Textual messages: facts that happened on the connection, posted by its thread."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class InboxFilled(Message):
    """Lines or connection events arrived in the app's inbox, which was empty."""
