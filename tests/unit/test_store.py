"""Unit tests for the SQLite store: history, accounts and read markers, on ":memory:" or a file in
tmp_path. A second `sqlite3` connection to the file plays the part of "after a crash": it sees only
what was committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tuichat.store import Message, Store, check_password, hash_password, new_salt

T = 1_700_000_000_000  # ms


def message(
    store: Store,
    text: str,
    time_ms: int = T,
    key: str = "#chan",
    target: str = "#Chan",
    source: str = "alice!~alice@127.0.0.1",
    tags: dict[str, str] | None = None,
) -> Message:
    return Message(store.new_msgid(), time_ms, key, target, source, None, "PRIVMSG", text, tags)


def add(store: Store, *messages: Message) -> list[Message]:
    for item in messages:
        store.add(item)
    store.commit()
    return list(messages)


def texts(rows: list[Message]) -> list[str]:
    return [row.text for row in rows]


def committed(path: Path) -> list[tuple[str, str]]:
    """(msgid, text) of every message another connection sees in the file."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT msgid, text FROM messages ORDER BY seq").fetchall()


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "history.db")
    yield s
    s.close()


# writing and durability ---------------------------------------------------------------------------


def test_a_file_store_uses_wal(file_store: Store, tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "history.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_database_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "tuichat.db"
    Store(path).close()
    assert path.exists()


def test_added_messages_are_invisible_to_others_until_commit(
    file_store: Store, tmp_path: Path
) -> None:
    first = message(file_store, "one")
    file_store.add(first)
    file_store.add(message(file_store, "two"))
    assert committed(tmp_path / "history.db") == []
    file_store.commit()
    rows = committed(tmp_path / "history.db")
    assert [text for _, text in rows] == ["one", "two"]
    assert rows[0][0] == first.msgid
    file_store.commit()  # nothing open: harmless
    assert len(committed(tmp_path / "history.db")) == 2


def test_close_commits_what_is_open(tmp_path: Path) -> None:
    s = Store(tmp_path / "history.db")
    s.add(message(s, "last words"))
    s.close()
    assert [text for _, text in committed(tmp_path / "history.db")] == ["last words"]


def test_msgids_are_unique_within_and_across_runs(tmp_path: Path) -> None:
    first = Store(tmp_path / "history.db")
    ids = [first.new_msgid() for _ in range(2000)]
    first.close()
    second = Store(tmp_path / "history.db")
    ids += [second.new_msgid() for _ in range(2000)]
    second.close()
    assert len(set(ids)) == len(ids)
    # a msgid is a tag value: nothing that needs escaping
    assert all(msgid.isalnum() for msgid in ids)


def test_history_survives_reopening_and_new_messages_sort_after_old(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    first = Store(path)
    old = add(first, message(first, "old 1"), message(first, "old 2", T + 5))
    first.close()
    second = Store(path)
    try:
        # same millisecond as an old message, and an earlier one: the order is the order written
        add(second, message(second, "new 1", T + 5), message(second, "new 2", T + 1))
        assert texts(second.query("#chan", 10)) == ["old 1", "old 2", "new 1", "new 2"]
        found = second.find(old[1].msgid)
        assert found is not None
        assert found[0] == old[1]
        after = second.query("#chan", 10, after=("seq", found[1]), newest=False)
        assert texts(after) == ["new 1", "new 2"]
    finally:
        second.close()


def test_client_tags_round_trip(store: Store) -> None:
    tagged = message(store, "hi", tags={"+typing": "active", "+draft/reply": "abc;def"})
    plain = message(store, "plain")
    add(store, tagged, plain)
    assert store.query("#chan", 10) == [tagged, plain]


# reading ------------------------------------------------------------------------------------------


@pytest.fixture
def ten(store: Store) -> list[Message]:
    """m0..m9 in #chan, one a second, and noise in other conversations."""
    rows = []
    for i in range(10):
        rows.append(message(store, f"m{i}", T + 1000 * i))
        store.add(message(store, f"other{i}", T + 1000 * i + 1, key="#other", target="#other"))
    add(store, *rows)
    return rows


def test_query_newest_or_oldest_first_always_ascending(store: Store, ten: list[Message]) -> None:
    assert texts(store.query("#chan", 3)) == ["m7", "m8", "m9"]
    assert texts(store.query("#chan", 3, newest=False)) == ["m0", "m1", "m2"]
    assert texts(store.query("#chan", 100)) == [f"m{i}" for i in range(10)]
    assert store.query("#chan", 0) == []
    assert store.query("#nowhere", 10) == []


def test_query_bounds_are_exclusive(store: Store, ten: list[Message]) -> None:
    found = store.find(ten[5].msgid)
    assert found is not None
    seq = found[1]
    assert texts(store.query("#chan", 3, before=("seq", seq))) == ["m2", "m3", "m4"]
    assert texts(store.query("#chan", 3, after=("seq", seq), newest=False)) == ["m6", "m7", "m8"]
    at = ten[5].time
    assert texts(store.query("#chan", 3, before=("time", at))) == ["m2", "m3", "m4"]
    assert texts(store.query("#chan", 3, after=("time", at), newest=False)) == ["m6", "m7", "m8"]
    low = store.find(ten[2].msgid)
    assert low is not None
    between = store.query("#chan", 10, after=("seq", low[1]), before=("time", at), newest=False)
    assert texts(between) == ["m3", "m4"]


def test_find_and_query_seq(store: Store, ten: list[Message]) -> None:
    assert store.find("no-such-id") is None
    found = store.find(ten[3].msgid)
    assert found is not None
    assert found[0] == ten[3]
    assert store.query_seq(found[1]) == ten[3].time
    assert store.query_seq(10**9) is None


def test_count_and_prune(store: Store, ten: list[Message]) -> None:
    assert store.count() == 20
    # strictly older than the bound goes
    assert store.prune(ten[5].time) == 10
    assert texts(store.query("#chan", 100)) == [f"m{i}" for i in range(5, 10)]
    assert store.prune(ten[5].time) == 0
    assert store.count() == 10


def test_targets_lists_channels_and_private_conversations(store: Store) -> None:
    add(
        store,
        message(store, "c", T + 10, key="#chan", target="#Chan"),
        message(store, "x", T + 20, key="#secret", target="#secret"),
        message(store, "pm", T + 30, key="alice bob", target="bob"),
        message(store, "pm2", T + 40, key="alice carol", target="alice"),
        message(store, "not mine", T + 50, key="bob carol", target="carol"),
        message(store, "c again", T + 60, key="#chan", target="#Chan"),
    )
    found = store.targets(["#chan"], "alice", T, T + 100, 10)
    # ordered by the latest message; private conversations named by the other party
    assert found == [
        ("alice bob", "bob", T + 30),
        ("alice carol", "carol", T + 40),
        ("#chan", "#chan", T + 60),
    ]
    # the window is exclusive at both ends, and either order
    assert [name for _, name, _ in store.targets(["#chan"], "alice", T + 60, T + 30, 10)] == [
        "carol"
    ]
    assert len(store.targets(["#chan"], "alice", T, T + 100, 2)) == 2
    assert store.targets([], "dave", T, T + 100, 10) == []


def test_targets_does_not_treat_nick_characters_as_wildcards(store: Store) -> None:
    add(store, message(store, "private", T + 10, key="alice bob", target="bob"))
    assert store.targets([], "a_ice", T, T + 100, 10) == []
    assert store.targets([], "%", T, T + 100, 10) == []


# accounts and read markers ------------------------------------------------------------------------


def test_passwords_are_salted_scrypt_hashes() -> None:
    salt, other_salt = new_salt(), new_salt()
    assert len(salt) == 16 and salt != other_salt
    digest = hash_password("correct horse", salt)
    assert digest != b"correct horse" and len(digest) == 32
    assert hash_password("correct horse", other_salt) != digest
    assert check_password("correct horse", salt, digest)
    assert not check_password("correct hors", salt, digest)


def test_accounts(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    s = Store(path)
    salt = new_salt()
    digest = hash_password("hunter22", salt)
    assert s.account("alice") is None
    assert s.create_account("alice", "Alice", salt, digest, T)
    assert not s.create_account("alice", "ALICE", new_salt(), b"x" * 32, T)
    assert s.account("alice") == ("Alice", salt, digest)
    s.close()
    with closing(sqlite3.connect(path)) as db:
        stored = db.execute("SELECT name, display, hash FROM accounts").fetchall()
    assert stored == [("alice", "Alice", digest)]
    assert b"hunter22" not in path.read_bytes()


def test_read_markers_only_move_forward(store: Store) -> None:
    assert store.read_marker("alice", "#chan") is None
    assert store.set_read_marker("alice", "#chan", T + 10) == T + 10
    assert store.set_read_marker("alice", "#chan", T + 5) == T + 10
    assert store.set_read_marker("alice", "#chan", T + 20) == T + 20
    assert store.read_marker("alice", "#chan") == T + 20
    assert store.read_marker("alice", "#other") is None
    assert store.read_marker("bob", "#chan") is None


def test_accounts_of_an_older_database_count_as_used_and_do_not_expire(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE accounts (name TEXT PRIMARY KEY, display TEXT NOT NULL, "
            "salt BLOB NOT NULL, hash BLOB NOT NULL, created INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO accounts VALUES ('old', 'Old', x'00', x'00', 5)")
        db.commit()
    store = Store(path)
    assert store.create_account("new", "New", b"s", b"h", 10)
    assert store.expire_accounts(1_000, set()) == ["new"]
    assert store.account("old") is not None
    store.close()


def test_forget_conversations_deletes_only_the_private_history_of_those_names(
    store: Store,
) -> None:
    keys = ["#chan", "#unused x", "alice unused", "unused zed", "alice bob", "unused!tok bob"]
    for i, key in enumerate(keys):
        store.add(Message(f"id{i}", i, key, "t", "s!u@h", None, "PRIVMSG", "x"))
    store.commit()  # the server commits before it runs the job
    assert store.forget_conversations({"unused"}, hops=2, chunk=1) == 2
    left = {m.key for key in keys for m in store.query(key, 10)}
    assert left == {"#chan", "#unused x", "alice bob", "unused!tok bob"}
