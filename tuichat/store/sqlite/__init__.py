"""The SQLite implementation of the storage Protocols: `Store`, one file (or ":memory:") holding
history, accounts, bans, read markers and channels."""

from __future__ import annotations

from tuichat.store.sqlite.accounts import AccountTables
from tuichat.store.sqlite.database import (
    CHANNEL_SCHEMA,
    CONVERSATION_SCHEMA,
    READERS,
    SCHEMA,
    SCHEMA_VERSION,
)
from tuichat.store.sqlite.history import PRUNE_CHUNK, HistoryTables

__all__ = [
    "CHANNEL_SCHEMA",
    "CONVERSATION_SCHEMA",
    "PRUNE_CHUNK",
    "READERS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Store",
]


class Store(HistoryTables, AccountTables):
    """History and accounts in one SQLite file: the connection (`Database`) and the methods of
    its tables, on the one writer connection and its readers."""
