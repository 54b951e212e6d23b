"""`Store`'s history tables: reading history (`query`, `locate`, `targets`), pruning it, and the
slow walks over conversations (rekeying a guest's, forgetting an expired account's).

Every read is a range scan of one index that stops at its limit (`tests/unit/test_store.py`
checks the query plans), so none costs more with a bigger history. The slow writes hold the
store's lock a chunk at a time: the server runs them outside its state lock, and the writer
waits at most for one chunk.
"""

from __future__ import annotations

import json
from typing import Any

from tuichat.store.records import Message, Position, Watermark, parties, walk_guest_conversations
from tuichat.store.sqlite.database import Database

# rows deleted per hold of the store's lock when pruning (~10-30 ms of SQLite work)
PRUNE_CHUNK = 2000


class HistoryTables(Database):
    """Messages and the list of conversations: reads, pruning, rekeying, forgetting."""

    _COLUMNS = "msgid, time, key, target, source, account, command, text, tags"

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
        through: Watermark | None = None,
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

    def has_messages(self, key: str) -> bool:
        """Whether any message is stored under `key` (one index lookup)."""
        self.commit()
        with self._lock:
            row = self._db.execute("SELECT 1 FROM messages WHERE key = ? LIMIT 1", (key,))
            return row.fetchone() is not None

    def guest_conversation(
        self, party: str, nick: str, hops: int = 256, *, reading: bool = False
    ) -> str | None:
        """The key of the latest conversation of `party` with a guest that connected as `nick`
        (folded): a guest's party is "nick!token", so such keys are "party nick!token" or
        "nick!token party". Each guest connection costs an index lookup or two; after `hops` of
        them the search gives up (None), so one lookup stays cheap however many guests there were.
        `reading`: on a read-only connection, outside the state lock (what the server committed).
        """
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

            return walk_guest_conversations(party, nick, hops, first_after, latest)

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
