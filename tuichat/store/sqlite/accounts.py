"""`Store`'s tables besides history: accounts, server bans, read markers and channels. Each call
is one or two statements on the writer, under the store's lock (the server calls them under its
state lock)."""

from __future__ import annotations

import json
import sqlite3

from tuichat.store.records import StoredChannel
from tuichat.store.sqlite.database import Database


class AccountTables(Database):
    """Accounts, K-lines, read markers and stored channels."""

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
