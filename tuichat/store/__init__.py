"""Storage: the Protocols the server codes against (`interfaces`), the records they pass
(`records`), password hashing (`passwords`), and two implementations of them all: `Store` on
SQLite (`sqlite`) and `MemoryStore` in plain dicts (`memory`: for `--no-history`-style use and
unit tests). Everything the rest of the package imports from here is re-exported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuichat.store.interfaces import Accounts, Bans, Channels, History, ReadMarkers, Storage
from tuichat.store.memory import MemoryStore
from tuichat.store.passwords import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    check_password,
    hash_password,
    new_salt,
)
from tuichat.store.records import LAST, Message, Position, StoredChannel, Watermark, parties
from tuichat.store.sqlite import (
    CHANNEL_SCHEMA,
    CONVERSATION_SCHEMA,
    PRUNE_CHUNK,
    READERS,
    SCHEMA,
    SCHEMA_VERSION,
    Store,
)

__all__ = [
    "CHANNEL_SCHEMA",
    "CONVERSATION_SCHEMA",
    "LAST",
    "PRUNE_CHUNK",
    "READERS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "Accounts",
    "Bans",
    "Channels",
    "History",
    "MemoryStore",
    "Message",
    "Position",
    "ReadMarkers",
    "Storage",
    "Store",
    "StoredChannel",
    "Watermark",
    "check_password",
    "hash_password",
    "new_salt",
    "parties",
]

if TYPE_CHECKING:
    # mypy checks here that both implementations have every method of every Protocol
    _implementations: tuple[Storage, Storage] = (Store(), MemoryStore())
