"""The SQLite connection behind `Store`: the schema (and its upgrade), one writer connection
under the store's lock, a small pool of read-only connections, and the write path of history
("persist, then deliver").

The writer is used under the server's state lock (the state calls it while handling lines).
Messages added while handling a batch of lines sit in a list that the server commits, in one
transaction, before it delivers anything: a message any client received is on disk, and `kill -9`
of the server loses none of them (WAL mode; SQLite's journal survives the death of the process).

History is read on the read-only connections, outside the state lock. A store on ":memory:" (the
unit tests) has no second connection: it reads on the writer, under its own lock, after
committing what was added.
"""

from __future__ import annotations

import contextlib
import json
import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from tuichat import files
from tuichat.store.records import Message, Watermark, parties

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msgid TEXT NOT NULL UNIQUE,
    time INTEGER NOT NULL,          -- milliseconds since the epoch
    key TEXT NOT NULL,              -- folded channel name, or "a b": the two folded nicks sorted
    target TEXT NOT NULL,           -- the channel or nick as addressed
    source TEXT NOT NULL,           -- nick!user@host of the sender
    account TEXT,                   -- the sender's account, if logged in
    command TEXT NOT NULL,          -- PRIVMSG or NOTICE
    text TEXT NOT NULL,
    tags TEXT                       -- client-only tags (JSON), if any
);
CREATE INDEX IF NOT EXISTS messages_by_key ON messages (key, time);
CREATE INDEX IF NOT EXISTS messages_by_key_seq ON messages (key, seq);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages (time);
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,          -- folded
    display TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created INTEGER NOT NULL,
    last_login INTEGER              -- ms of the last SASL login; NULL: never since REGISTER
);
CREATE TABLE IF NOT EXISTS klines (
    mask TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    setter TEXT NOT NULL,
    expires REAL NOT NULL           -- seconds since the epoch; 0: never
);
CREATE TABLE IF NOT EXISTS read_markers (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (account, key)
);
"""

# channels outlive their members (with history on): what a rejoiner must get past, and the topic
CHANNEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,          -- folded
    display TEXT NOT NULL,          -- as created
    created REAL NOT NULL,          -- seconds since the epoch
    founder TEXT,                   -- folded account of whoever created it logged in
    topic TEXT NOT NULL,
    topic_by TEXT NOT NULL,
    topic_time REAL NOT NULL,
    modes TEXT NOT NULL,            -- flags without a parameter (imnst)
    key TEXT,
    user_limit INTEGER,
    bans TEXT NOT NULL,             -- JSON: [[mask, setter, time], ...]
    quiets TEXT NOT NULL,           -- the same for +q
    last_used REAL NOT NULL         -- when it was created, or last seen with members
);
"""

# the latest message of each conversation, under each party that may list it (CHATHISTORY TARGETS):
# a channel under its own key, a private conversation "a b" under "a" and under "b"
CONVERSATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    party TEXT NOT NULL,            -- a channel's key, or one side of a private conversation's
    key TEXT NOT NULL,              -- the conversation (messages.key)
    time INTEGER NOT NULL,          -- of its latest message, milliseconds since the epoch
    PRIMARY KEY (party, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conversations_by_time ON conversations (party, time);
"""

# PRAGMA user_version: 0 before `conversations`; 2 with it (filled from the messages on upgrade)
SCHEMA_VERSION = 2

READERS = 4  # read-only connections for history queries: at most this many run at once


class Database:
    """One SQLite file: its writer connection, its readers, and the messages waiting for
    `commit`. `HistoryTables` and `AccountTables` build on it; `Store` is both."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            # every private message and the password hashes: for the owner's eyes only, whatever
            # the umask (SQLite makes its files 0644, and its -wal and -shm as the database)
            files.private_dir(Path(self.path).parent)
            files.private_file(Path(self.path))
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        if self.path != ":memory:":
            for suffix in ("-wal", "-shm"):  # left by an older run with looser modes
                files.tighten(Path(self.path + suffix))
        # NORMAL: a commit is in the WAL (safe from a killed process) without an fsync each time
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.executescript(CHANNEL_SCHEMA)
        self._upgrade()
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(accounts)")}
        if "last_login" not in columns:  # a database from before accounts could expire
            self._db.execute("ALTER TABLE accounts ADD COLUMN last_login INTEGER")
            # the accounts it has were in use then: none of them expires for being unused
            self._db.execute("UPDATE accounts SET last_login = created")
        self._lock = threading.Lock()
        # read-only connections for history, opened when first needed (none on ":memory:")
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._opened = 0
        self._readers_lock = threading.Lock()
        self._pending: list[tuple[object, ...]] = []
        self._latest: dict[str, int] = {}  # the latest time of each key in `_pending`
        # why rows added since the last `take_failure` could not be written (disk full), if so
        self._failure: sqlite3.Error | None = None
        # the sequence number of the last message written (SQLite's AUTOINCREMENT counter)
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        found = row.fetchone()
        self._last_seq = int(found[0]) if found else 0
        self._prefix = secrets.token_hex(6)  # 48 random bits a run: ids never collide
        self._counter = 0

    def _upgrade(self) -> None:
        """Bring an older database file up to SCHEMA_VERSION (once, at start): its conversations
        are listed from its messages, one pass over an index."""
        db = self._db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        db.executescript(CONVERSATION_SCHEMA)
        if version >= SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            latest = db.execute("SELECT key, MAX(time) FROM messages GROUP BY key").fetchall()
            db.executemany(
                "INSERT OR REPLACE INTO conversations (party, key, time) VALUES (?, ?, ?)",
                [(party, key, time) for key, time in latest for party in parties(key)],
            )
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.commit()
        with self._lock:
            self._db.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN ... COMMIT on the writer (the caller holds the store's lock); ROLLBACK and
        re-raise on any error."""
        db = self._db
        db.execute("BEGIN")
        try:
            yield db
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _delete_in_chunks(self, where: str, args: tuple[object, ...], chunk: int) -> int:
        """Delete the messages `where` holds, `chunk` rows per hold of the store's lock (so the
        writers wait at most for one chunk); return how many."""
        removed = 0
        while True:
            with self._lock:
                cursor = self._db.execute(
                    f"DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE {where} "
                    "LIMIT ?)",
                    (*args, chunk),
                )
            removed += cursor.rowcount
            if cursor.rowcount < chunk:
                return removed

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection to read history on: one of the read-only pool, outside the state lock
        (it sees what the server committed); on ":memory:", the writer, under the store's lock,
        after committing what was added (the unit tests read what they just wrote)."""
        if self.path == ":memory:":
            self.commit()
            with self._lock:
                yield self._db
            return
        reader: sqlite3.Connection | None = None
        try:
            reader = self._readers.get_nowait()
        except queue.Empty:
            with self._readers_lock:
                if self._opened < READERS:
                    self._opened += 1
                    reader = self._open_reader()
        if reader is None:
            reader = self._readers.get()  # all busy: wait for one (never under the state lock)
        try:
            yield reader
        finally:
            self._readers.put(reader)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def _open_reader(self) -> sqlite3.Connection:
        uri = Path(self.path).absolute().as_uri() + "?mode=ro"
        reader = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        reader.execute("PRAGMA query_only=1")
        return reader

    # -- writing history ---------------------------------------------------------------------------

    def new_msgid(self) -> str:
        """A unique message id: this run's random prefix and a counter."""
        self._counter += 1
        return f"{self._prefix}{self._counter:x}"

    def add(self, message: Message) -> None:
        """Queue a message for the next `commit`."""
        if self._latest.get(message.key, message.time) <= message.time:
            self._latest[message.key] = message.time
        self._pending.append(
            (
                message.msgid,
                message.time,
                message.key,
                message.target,
                message.source,
                message.account,
                message.command,
                message.text,
                json.dumps(message.tags) if message.tags else None,
            )
        )

    def commit(self) -> bool:
        """Write what was added, in one transaction. The server calls it before delivering.

        False when it could not be (disk full, SQLITE_FULL): the rows are dropped, and
        `take_failure` says why, so that the server delivers none of their messages."""
        if not self._pending:
            return True
        rows, self._pending = self._pending, []
        latest, self._latest = self._latest, {}
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO messages (msgid, time, key, target, source, account, command, "
                    "text, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.executemany(
                    "INSERT INTO conversations (party, key, time) VALUES (?, ?, ?) "
                    "ON CONFLICT (party, key) DO UPDATE SET time = MAX(time, excluded.time)",
                    [(party, key, time) for key, time in latest.items() for party in parties(key)],
                )
                written = self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._db.execute("COMMIT")
                self._last_seq = int(written)
            except sqlite3.Error as error:
                if self._db.in_transaction:  # SQLite may have rolled back already
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                self._failure = error
                return False
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return True

    def written(self) -> Watermark:
        """The sequence number the last message added so far gets once committed: a query
        bounded `through` it sees nothing added later (no SQL: safe under the state lock)."""
        return Watermark(self._last_seq + len(self._pending))

    def take_failure(self) -> sqlite3.Error | None:
        """Why a `commit` since the last call dropped its rows, or None (and forget it)."""
        failure, self._failure = self._failure, None
        return failure
