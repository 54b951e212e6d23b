"""SQLite storage: message history and accounts.

One writer connection, used under the server's state lock (the state calls it while handling
lines). Messages added while handling a batch of lines sit in an open transaction that the server
commits before it delivers anything: a message any client received is on disk, and `kill -9` of the
server loses none of them (WAL mode; SQLite's journal survives the death of the process).

History is read (`query`, `locate`, `targets`) on read-only connections of a small pool, outside
the state lock: the state defers each history read to a job (see `Outbox.defer`). Every such read
is a range scan of one index that stops at its limit (`tests/unit/test_store.py` checks the query
plans), so none costs more with a bigger history. A `Store` on ":memory:" (the unit tests) has no
second connection: it reads on the writer, under its own lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuichat import files

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

# scrypt cost: about 16 MiB and a few tens of milliseconds; verified outside the state lock
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


# where a message sorts in its conversation: (time in ms, sequence number). A history query is
# bounded by positions, strictly: a timestamp t is (t, 0) as an upper bound, (t, LAST) as a lower
Position = tuple[int, int]
LAST = 2**63 - 1


def parties(key: str) -> tuple[str, ...]:
    """Who may list a conversation: a channel's key, or both sides of "a b"."""
    a, space, b = key.partition(" ")
    return (a, b) if space else (key,)


# rows deleted per hold of the store's lock when pruning (~10-30 ms of SQLite work)
PRUNE_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class StoredChannel:
    """What a channel keeps while nobody is in it, and across restarts."""

    name: str
    created: float
    founder: str | None
    topic: str
    topic_by: str
    topic_time: float
    modes: str
    key: str | None
    limit: int | None
    bans: list[tuple[str, str, int]]
    quiets: list[tuple[str, str, int]]
    last_used: float


@dataclass(frozen=True, slots=True)
class Message:
    msgid: str
    time: int  # ms
    key: str
    target: str
    source: str
    account: str | None
    command: str
    text: str
    tags: dict[str, str] | None = None


# scrypt takes 16 MiB and releases the GIL: a crowd of logins at once must not take GBs
_HASHING = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def hash_password(password: str, salt: bytes) -> bytes:
    with _HASHING:
        return hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
        )


def check_password(password: str, salt: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(hash_password(password, salt), expected)


class Store:
    """History and accounts in one SQLite file."""

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

    # -- writing ----------------------------------------------------------------------------------

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

    def written(self) -> int:
        """The sequence number the last message added so far gets once committed: a query
        bounded `through` it sees nothing added later (no SQL: safe under the state lock)."""
        return self._last_seq + len(self._pending)

    def take_failure(self) -> sqlite3.Error | None:
        """Why a `commit` since the last call dropped its rows, or None (and forget it)."""
        failure, self._failure = self._failure, None
        return failure

    def prune(self, before_ms: int, chunk: int = PRUNE_CHUNK) -> int:
        """Delete written messages older than `before_ms`; return how many.

        Safe outside the state lock (the server prunes there): the store is held for `chunk`
        rows at a time, an index range scan of `messages_by_time`, so writers wait at most for
        one chunk however much goes. Rows only added (not committed yet) are not looked at."""
        removed = self._delete_in_chunks("time < ?", (before_ms,), chunk)
        with self._lock, self._transaction() as db:
            # a conversation whose latest message went has none left
            db.execute("DELETE FROM conversations WHERE time < ?", (before_ms,))
            # read markers go with the last of their conversation's history
            db.execute(
                "DELETE FROM read_markers WHERE NOT EXISTS "
                "(SELECT 1 FROM messages WHERE messages.key = read_markers.key)"
            )
        return removed

    # -- reading ----------------------------------------------------------------------------------

    _COLUMNS = "msgid, time, key, target, source, account, command, text, tags"

    @staticmethod
    def _message(r: Any) -> Message:
        tags = r[8]
        return Message(
            r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(tags) if tags else None
        )

    def find(self, msgid: str) -> tuple[Message, int] | None:
        """A message and its sequence number, by msgid."""
        with self._reading() as db:
            row = db.execute(
                f"SELECT {self._COLUMNS}, seq FROM messages WHERE msgid = ?", (msgid,)
            ).fetchone()
        return (self._message(row), int(row[9])) if row else None

    def locate(self, msgid: str) -> tuple[str, Position] | None:
        """The key and position of a message, by msgid (one lookup in its unique index)."""
        with self._reading() as db:
            row = db.execute(
                "SELECT key, time, seq FROM messages WHERE msgid = ?", (msgid,)
            ).fetchone()
        return (str(row[0]), (int(row[1]), int(row[2]))) if row else None

    def query(
        self,
        key: str,
        limit: int,
        *,
        after: Position | None = None,
        before: Position | None = None,
        newest: bool = True,
        through: int | None = None,
    ) -> list[Message]:
        """Up to `limit` messages of `key` strictly between two positions, oldest first; the
        newest ones when `newest`, else the oldest; none written after the sequence number
        `through`, if given. Messages sort by (time, seq): by time, and in
        the order written within a millisecond. One range scan of messages_by_key (key, time,
        and the rowid seq), stopping at `limit`."""
        if limit <= 0:
            return []
        where = ["key = ?"]
        args: list[object] = [key]
        # "(time, seq) > (t, s)", spelled so that the time range bounds the index scan
        if after is not None:
            where.append("time >= ? AND (time > ? OR seq > ?)")
            args += [after[0], after[0], after[1]]
        if before is not None:
            where.append("time <= ? AND (time < ? OR seq < ?)")
            args += [before[0], before[0], before[1]]
        if through is not None:
            where.append("seq <= ?")
            args.append(through)
        order = "DESC" if newest else "ASC"
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {self._COLUMNS} FROM messages INDEXED BY messages_by_key "
                f"WHERE {' AND '.join(where)} ORDER BY time {order}, seq {order} LIMIT ?",
                (*args, limit),
            ).fetchall()
        messages = [self._message(row) for row in rows]
        if newest:
            messages.reverse()
        return messages

    def targets(
        self, channels: list[str], party: str, start: int, end: int, limit: int
    ) -> list[tuple[str, str, int]]:
        """(key, a target name, latest time) of the conversations whose latest message is
        between two times, oldest first, at most `limit`: the given channels (one lookup each)
        and the private conversations of `party` (folded; one range scan of at most `limit`)."""
        low, high = min(start, end), max(start, end)
        if limit <= 0:
            return []
        rows: list[tuple[str, int]] = []
        with self._reading() as db:
            if channels:
                marks = ",".join("?" for _ in channels)
                rows += db.execute(
                    "SELECT key, time FROM conversations "
                    f"WHERE party IN ({marks}) AND key = party AND time > ? AND time < ?",
                    (*channels, low, high),
                ).fetchall()
            rows += db.execute(
                "SELECT key, time FROM conversations INDEXED BY conversations_by_time "
                "WHERE party = ? AND time > ? AND time < ? ORDER BY time LIMIT ?",
                (party, low, high, limit),
            ).fetchall()
        rows.sort(key=lambda row: (row[1], row[0]))
        result = []
        for key, latest in rows[:limit]:
            if " " in key:
                a, _, b = key.partition(" ")
                name = b if a == party else a
            else:
                name = key
            result.append((key, name, int(latest)))
        return result

    def count(self) -> int:
        self.commit()
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    # -- accounts ---------------------------------------------------------------------------------

    def account(self, folded: str) -> tuple[str, bytes, bytes] | None:
        """(display name, salt, hash) of an account, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT display, salt, hash FROM accounts WHERE name = ?", (folded,)
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def create_account(
        self, folded: str, display: str, salt: bytes, digest: bytes, now_ms: int
    ) -> bool:
        """False if the account exists already."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO accounts (name, display, salt, hash, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (folded, display, salt, digest, now_ms),
                )
            except sqlite3.IntegrityError:
                return False
            return True

    def logged_in(self, folded: str, now_ms: int) -> None:
        """Someone logged in to the account (SASL): it is in use."""
        with self._lock:
            self._db.execute("UPDATE accounts SET last_login = ? WHERE name = ?", (now_ms, folded))

    def expire_accounts(self, before_ms: int, in_use: set[str], most: int = 1000) -> list[str]:
        """Delete the accounts registered before `before_ms` that nobody logged in to since
        (but those `in_use`: folded names logged in now), with their read markers and their
        founder status; at most `most` a call, the oldest first. Return the folded names
        deleted: their private history is for `forget_conversations` (outside the state lock).
        """
        self.commit()
        with self._lock:
            rows = self._db.execute(
                "SELECT name FROM accounts WHERE last_login IS NULL AND created < ? "
                "ORDER BY created LIMIT ?",
                (before_ms, most + len(in_use)),
            ).fetchall()
            names = [row[0] for row in rows if row[0] not in in_use][:most]
            if not names:
                return []
            with self._transaction() as db:
                for name in names:
                    db.execute("DELETE FROM read_markers WHERE account = ?", (name,))
                    db.execute("UPDATE channels SET founder = NULL WHERE founder = ?", (name,))
                    db.execute("DELETE FROM accounts WHERE name = ?", (name,))
        return names

    def forget_conversations(self, names: set[str], hops: int = 200, chunk: int = 500) -> int:
        """Delete every private conversation of the folded account `names`; return how many
        messages. Called outside the state lock: the store is held for `hops` index lookups or
        `chunk` rows at a time, never for a scan. Private keys are "a b" (the parties, sorted):
        one lookup per distinct key walks them all, and channel keys ("#...") sort before any
        nick, so they are skipped at once."""
        keys: list[str] = []
        low = "$"  # past every "#channel"
        done = False
        while not done:
            with self._lock:
                for _ in range(hops):
                    row = self._db.execute(
                        "SELECT key FROM messages WHERE key > ? ORDER BY key LIMIT 1", (low,)
                    ).fetchone()
                    if row is None:
                        done = True
                        break
                    low = key = str(row[0])
                    first, space, second = key.partition(" ")
                    if space and (first in names or second in names):
                        keys.append(key)
        removed = 0
        for key in keys:
            removed += self._delete_in_chunks("key = ?", (key,), chunk)
            with self._lock:  # nor is it listed by TARGETS any more
                self._db.execute("DELETE FROM conversations WHERE key = ?", (key,))
        return removed

    def klines(self) -> list[tuple[str, tuple[str, str, float]]]:
        with self._lock:
            rows = self._db.execute("SELECT mask, reason, setter, expires FROM klines").fetchall()
        return [(row[0], (row[1], row[2], float(row[3]))) for row in rows]

    def add_kline(self, mask: str, reason: str, setter: str, expires: float) -> None:
        self.commit()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO klines (mask, reason, setter, expires) VALUES (?, ?, ?, ?)",
                (mask, reason, setter, expires),
            )

    def remove_kline(self, mask: str) -> None:
        self.commit()
        with self._lock:
            self._db.execute("DELETE FROM klines WHERE mask = ?", (mask,))

    def read_marker(self, account: str, key: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT time FROM read_markers WHERE account = ? AND key = ?", (account, key)
            ).fetchone()
        return int(row[0]) if row else None

    def set_read_marker(self, account: str, key: str, time_ms: int, cap: int = 0) -> int:
        """Move the marker forward only; return where it is. An account keeps at most `cap`
        markers (0: no bound): a new one beyond it replaces the one set longest ago."""
        with self._lock:
            if cap > 0:
                exists = self._db.execute(
                    "SELECT 1 FROM read_markers WHERE account = ? AND key = ?", (account, key)
                ).fetchone()
                (count,) = self._db.execute(
                    "SELECT COUNT(*) FROM read_markers WHERE account = ?", (account,)
                ).fetchone()
                if exists is None and count >= cap:
                    self._db.execute(
                        "DELETE FROM read_markers WHERE rowid IN (SELECT rowid FROM read_markers "
                        "WHERE account = ? ORDER BY time LIMIT ?)",
                        (account, count - cap + 1),
                    )
            self._db.execute(
                "INSERT INTO read_markers (account, key, time) VALUES (?, ?, ?) "
                "ON CONFLICT (account, key) DO UPDATE SET time = MAX(time, excluded.time)",
                (account, key, time_ms),
            )
            row = self._db.execute(
                "SELECT time FROM read_markers WHERE account = ? AND key = ?", (account, key)
            ).fetchone()
        return int(row[0])

    # -- channels and private conversations (who owns what) -------------------------------------

    def channels(self) -> list[StoredChannel]:
        """Every stored channel."""
        with self._lock:
            rows = self._db.execute(
                "SELECT display, created, founder, topic, topic_by, topic_time, modes, key, "
                "user_limit, bans, quiets, last_used FROM channels"
            ).fetchall()
        return [
            StoredChannel(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                [(m, s, int(t)) for m, s, t in json.loads(r[9])],
                [(m, s, int(t)) for m, s, t in json.loads(r[10])],
                r[11],
            )
            for r in rows
        ]

    def save_channel(self, folded: str, chan: StoredChannel) -> None:
        """Write a channel's state (a topic, mode or ban change; its creation)."""
        self.commit()
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO channels (name, display, created, founder, topic, "
                "topic_by, topic_time, modes, key, user_limit, bans, quiets, last_used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    folded,
                    chan.name,
                    chan.created,
                    chan.founder,
                    chan.topic,
                    chan.topic_by,
                    chan.topic_time,
                    chan.modes,
                    chan.key,
                    chan.limit,
                    json.dumps(chan.bans),
                    json.dumps(chan.quiets),
                    chan.last_used,
                ),
            )

    def forget_channel(self, folded: str) -> None:
        self.commit()
        with self._lock:
            self._db.execute("DELETE FROM channels WHERE name = ?", (folded,))

    def has_messages(self, key: str) -> bool:
        """Whether any message is stored under `key` (one index lookup)."""
        self.commit()
        with self._lock:
            row = self._db.execute("SELECT 1 FROM messages WHERE key = ? LIMIT 1", (key,))
            return row.fetchone() is not None

    def forget_idle_channels(self, in_use: list[str], now: float, before: float) -> list[str]:
        """Mark the channels `in_use` (folded) as used `now`, then forget the others unused since
        `before` that have no history left; return the folded names forgotten."""
        self.commit()
        with self._lock, self._transaction() as db:
            db.executemany(
                "UPDATE channels SET last_used = ? WHERE name = ?",
                [(now, name) for name in in_use],
            )
            rows = db.execute(
                "DELETE FROM channels WHERE last_used < ? AND NOT EXISTS "
                "(SELECT 1 FROM messages WHERE messages.key = channels.name) RETURNING name",
                (before,),
            ).fetchall()
        return [row[0] for row in rows]

    def guest_conversation(
        self, party: str, nick: str, hops: int = 256, *, reading: bool = False
    ) -> str | None:
        """The key of the latest conversation of `party` with a guest that connected as `nick`
        (folded): a guest's party is "nick!token", so such keys are "party nick!token" or
        "nick!token party". Each guest connection costs an index lookup or two; after `hops` of
        them the search gives up (None), so one lookup stays cheap however many guests there were.
        `reading`: on a read-only connection, outside the state lock (what the server committed).
        """
        best: tuple[int, str] | None = None
        if not reading:
            self.commit()
        with self._reading() if reading else self._writing() as db:

            def latest(key: str) -> int | None:
                row = db.execute("SELECT MAX(seq) FROM messages WHERE key = ?", (key,)).fetchone()
                return None if row is None or row[0] is None else int(row[0])

            def first_after(low: str, high: str) -> str | None:
                row = db.execute(
                    "SELECT key FROM messages WHERE key > ? AND key < ? ORDER BY key LIMIT 1",
                    (low, high),
                ).fetchone()
                return None if row is None else str(row[0])

            # "party nick!token": every key in the range is one such conversation
            low, high = f"{party} {nick}!", f'{party} {nick}"'
            for _ in range(hops):
                key = first_after(low, high)
                if key is None:
                    break
                seq = latest(key)
                if seq is not None and (best is None or seq > best[0]):
                    best = (seq, key)
                low = key
            # "nick!token party": walk the guests called nick, one lookup each for the key
            low, high = f"{nick}!", f'{nick}"'
            for _ in range(hops):
                key = first_after(low, high)
                if key is None:
                    break
                guest = key.partition(" ")[0]
                candidate = f"{guest} {party}"
                seq = latest(candidate) if guest < party else None  # else it is above
                if seq is not None and (best is None or seq > best[0]):
                    best = (seq, candidate)
                low = guest + "!"  # past every conversation of that guest
        return best[1] if best is not None else None

    def rekey(self, changes: list[tuple[str, str]], chunk: int = 500) -> None:
        """Move messages from one key to another, `chunk` rows at a time so that the store is
        never held long (a guest who logs in takes their conversations along). Called outside
        the state lock, after the server committed: it does not commit what is pending."""
        for old, new in changes:
            while old != new:
                with self._lock:
                    cursor = self._db.execute(
                        "UPDATE messages SET key = ? WHERE seq IN "
                        "(SELECT seq FROM messages WHERE key = ? LIMIT ?)",
                        (new, old, chunk),
                    )
                if cursor.rowcount < chunk:
                    break
            if old != new:
                self._move_conversation(old, new)

    def _move_conversation(self, old: str, new: str) -> None:
        """`old`'s messages are now `new`'s: so is its entry in the list of conversations."""
        with self._lock:
            db = self._db
            row = db.execute(
                "SELECT time FROM conversations WHERE party = ? AND key = ?", (parties(old)[0], old)
            ).fetchone()
            with self._transaction():
                db.executemany(
                    "DELETE FROM conversations WHERE party = ? AND key = ?",
                    [(party, old) for party in parties(old)],
                )
                if row is not None:
                    db.executemany(
                        "INSERT INTO conversations (party, key, time) VALUES (?, ?, ?) ON CONFLICT "
                        "(party, key) DO UPDATE SET time = MAX(time, excluded.time)",
                        [(party, new, row[0]) for party in parties(new)],
                    )


def new_salt() -> bytes:
    return os.urandom(16)
