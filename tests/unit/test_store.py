"""Unit tests for the stores: history, accounts, bans, read markers and channels. The tests of
behaviour run against both implementations of the storage Protocols (the `store` fixture: SQLite
on ":memory:", and `MemoryStore`); those of SQLite itself (files, query plans, statements, upgrades)
against `Store` only, on ":memory:" or a file in tmp_path, where a second `sqlite3` connection to
the file plays the part of "after a crash": it sees only what was committed."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tuichat.store import (
    LAST,
    SCHEMA,
    SCHEMA_VERSION,
    MemoryStore,
    Message,
    Store,
    StoredChannel,
    check_password,
    hash_password,
    new_salt,
)

T = 1_700_000_000_000  # ms

AnyStore = Store | MemoryStore


def message(
    store: AnyStore,
    text: str,
    time_ms: int = T,
    key: str = "#chan",
    target: str = "#Chan",
    source: str = "alice!~alice@127.0.0.1",
    tags: dict[str, str] | None = None,
) -> Message:
    return Message(store.new_msgid(), time_ms, key, target, source, None, "PRIVMSG", text, tags)


def add(store: AnyStore, *messages: Message) -> list[Message]:
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


@pytest.fixture(params=["sqlite", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[AnyStore]:
    """Each implementation of the storage Protocols in turn."""
    s = Store(":memory:") if request.param == "sqlite" else MemoryStore()
    yield s
    s.close()


# a test of SQLite itself (its statements and query plans): `store` is a `Store` on ":memory:"
sqlite_only = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


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
        # messages sort by time, and within a millisecond in the order written
        add(second, message(second, "new 1", T + 5), message(second, "new 2", T + 1))
        assert texts(second.query("#chan", 10)) == ["old 1", "new 2", "old 2", "new 1"]
        found = second.find(old[1].msgid)
        assert found is not None
        assert found[0] == old[1]
        after = second.query("#chan", 10, after=(old[1].time, found[1]), newest=False)
        assert texts(after) == ["new 1"]
    finally:
        second.close()


def test_client_tags_round_trip(store: AnyStore) -> None:
    tagged = message(store, "hi", tags={"+typing": "active", "+draft/reply": "abc;def"})
    plain = message(store, "plain")
    add(store, tagged, plain)
    assert store.query("#chan", 10) == [tagged, plain]


# reading ------------------------------------------------------------------------------------------


@pytest.fixture
def ten(store: AnyStore) -> list[Message]:
    """m0..m9 in #chan, one a second, and noise in other conversations."""
    rows = []
    for i in range(10):
        rows.append(message(store, f"m{i}", T + 1000 * i))
        store.add(message(store, f"other{i}", T + 1000 * i + 1, key="#other", target="#other"))
    add(store, *rows)
    return rows


def test_query_newest_or_oldest_first_always_ascending(store: AnyStore, ten: list[Message]) -> None:
    assert texts(store.query("#chan", 3)) == ["m7", "m8", "m9"]
    assert texts(store.query("#chan", 3, newest=False)) == ["m0", "m1", "m2"]
    assert texts(store.query("#chan", 100)) == [f"m{i}" for i in range(10)]
    assert store.query("#chan", 0) == []
    assert store.query("#nowhere", 10) == []


def test_query_bounds_are_exclusive(store: AnyStore, ten: list[Message]) -> None:
    found = store.find(ten[5].msgid)
    assert found is not None
    at = (ten[5].time, found[1])
    assert texts(store.query("#chan", 3, before=at)) == ["m2", "m3", "m4"]
    assert texts(store.query("#chan", 3, after=at, newest=False)) == ["m6", "m7", "m8"]
    # a timestamp: before its millisecond's messages as an upper bound, after them as a lower
    ms = ten[5].time
    assert texts(store.query("#chan", 3, before=(ms, 0))) == ["m2", "m3", "m4"]
    assert texts(store.query("#chan", 3, after=(ms, LAST), newest=False)) == ["m6", "m7", "m8"]
    low = store.locate(ten[2].msgid)
    assert low is not None and low[0] == "#chan"
    between = store.query("#chan", 10, after=low[1], before=(ms, 0), newest=False)
    assert texts(between) == ["m3", "m4"]


def test_messages_of_one_millisecond_keep_the_order_written(store: AnyStore) -> None:
    same = add(store, *(message(store, f"s{i}", T) for i in range(5)))
    found = store.locate(same[2].msgid)
    assert found is not None
    assert texts(store.query("#chan", 10, before=found[1])) == ["s0", "s1"]
    assert texts(store.query("#chan", 10, after=found[1], newest=False)) == ["s3", "s4"]
    assert texts(store.query("#chan", 2, after=found[1])) == ["s3", "s4"]
    assert texts(store.query("#chan", 10, before=(T, 0))) == []
    assert texts(store.query("#chan", 10, after=(T, LAST))) == []


def test_query_through_leaves_out_what_was_written_later(
    store: AnyStore, ten: list[Message]
) -> None:
    through = store.written()
    add(store, message(store, "later", T + 20_000))
    assert texts(store.query("#chan", 2, through=through)) == ["m8", "m9"]
    assert texts(store.query("#chan", 2)) == ["m9", "later"]


def test_find_and_locate(store: AnyStore, ten: list[Message]) -> None:
    assert store.find("no-such-id") is None
    assert store.locate("no-such-id") is None
    found = store.find(ten[3].msgid)
    assert found is not None
    assert found[0] == ten[3]
    assert store.locate(ten[3].msgid) == ("#chan", (ten[3].time, found[1]))


def test_count_and_prune(store: AnyStore, ten: list[Message]) -> None:
    assert store.count() == 20
    # strictly older than the bound goes
    assert store.prune(ten[5].time) == 10
    assert texts(store.query("#chan", 100)) == [f"m{i}" for i in range(5, 10)]
    assert store.prune(ten[5].time) == 0
    assert store.count() == 10


def test_targets_lists_channels_and_private_conversations(store: AnyStore) -> None:
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


def test_targets_does_not_treat_nick_characters_as_wildcards(store: AnyStore) -> None:
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


def test_read_markers_only_move_forward(store: AnyStore) -> None:
    assert store.read_marker("alice", "#chan") is None
    assert store.set_read_marker("alice", "#chan", T + 10) == T + 10
    assert store.set_read_marker("alice", "#chan", T + 5) == T + 10
    assert store.set_read_marker("alice", "#chan", T + 20) == T + 20
    assert store.read_marker("alice", "#chan") == T + 20
    assert store.read_marker("alice", "#other") is None
    assert store.read_marker("bob", "#chan") is None


# query plans: every history read is a range scan that stops at its limit -----------------------


@pytest.fixture
def big(store: Store) -> Store:
    """#big with 3,000 messages, #small with 30, and private conversations of alice."""
    for i in range(3000):
        store.add(message(store, f"b{i}", T + i, key="#big", target="#big"))
        if i % 100 == 0:
            store.add(message(store, f"s{i}", T + i, key="#small", target="#small"))
            store.add(message(store, f"p{i}", T + i, key=f"alice u{i:04}", target="alice"))
    store.commit()
    return store


def traced(store: Store, read: Callable[[], object]) -> tuple[list[str], int]:
    """The statements `read` ran on a ":memory:" store, and how many thousand SQLite virtual
    machine steps they took."""
    statements: list[str] = []
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    db = store._db
    db.set_trace_callback(statements.append)
    db.set_progress_handler(step, 1000)
    try:
        read()
    finally:
        db.set_trace_callback(None)
        db.set_progress_handler(None, 0)
    return [s for s in statements if s.startswith("SELECT")], steps[0]


FAR = 4_102_444_800_000  # 2100-01-01 in ms
READS: dict[str, Callable[[Store, str], object]] = {
    "LATEST": lambda s, key: s.query(key, 100),
    "LATEST since": lambda s, key: s.query(key, 100, after=(T, LAST)),
    "BEFORE timestamp": lambda s, key: s.query(key, 100, before=(FAR, 0)),
    "AFTER timestamp": lambda s, key: s.query(key, 100, after=(T, LAST), newest=False),
    "BETWEEN forwards": lambda s, key: s.query(
        key, 100, after=(T, LAST), before=(FAR, 0), newest=False
    ),
    "BETWEEN backwards": lambda s, key: s.query(key, 100, after=(T, LAST), before=(FAR, 0)),
    "join replay": lambda s, key: s.query(key, 100, through=s.written()),
    "msgid": lambda s, key: s.locate("no-such-id"),
    "TARGETS": lambda s, key: s.targets([key, "#small"], "alice", 0, FAR, 100),
}


@sqlite_only
@pytest.mark.parametrize("name", list(READS))
def test_history_reads_are_index_range_scans(big: Store, name: str) -> None:
    statements, _ = traced(big, lambda: READS[name](big, "#big"))
    assert statements
    for sql in statements:
        plan = [row[3] for row in big._db.execute("EXPLAIN QUERY PLAN " + sql)]
        assert plan and all(step.startswith("SEARCH ") for step in plan), (sql, plan)
        assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)


@sqlite_only
@pytest.mark.parametrize("name", list(READS))
def test_history_reads_cost_the_same_in_a_big_and_a_small_conversation(
    big: Store, name: str
) -> None:
    # 100 times the messages, at most 100 rows back either way: about the same work, and little
    # (the old BEFORE with a timestamp sorted all 3,000 rows of #big, ~61k steps; the old TARGETS
    # grouped every message of the store, 33k-61k steps)
    _, small = traced(big, lambda: READS[name](big, "#small"))
    _, large = traced(big, lambda: READS[name](big, "#big"))
    assert large <= 3 * small + 5 and large <= 10, (small, large)


def test_an_old_database_is_upgraded_and_lists_its_conversations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:  # the schema as it was before `conversations`
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO messages (msgid, time, key, target, source, command, text) "
            "VALUES (?, ?, ?, ?, 'a!b@c', 'PRIVMSG', ?)",
            [
                ("m1", T + 10, "#chan", "#Chan", "one"),
                ("m2", T + 20, "alice bob", "bob", "two"),
                ("m3", T + 30, "#chan", "#Chan", "three"),
            ],
        )
        db.commit()
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    s = Store(path)
    try:
        assert s.targets(["#chan"], "bob", T, T + 100, 10) == [
            ("alice bob", "alice", T + 20),
            ("#chan", "#chan", T + 30),
        ]
        assert texts(s.query("#chan", 10, before=(T + 30, 0))) == ["one"]
        add(s, message(s, "four", T + 40, key="alice bob", target="alice"))
        assert s.targets([], "alice", T, T + 100, 10) == [("alice bob", "bob", T + 40)]
    finally:
        s.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = Store(path)  # opening an upgraded file changes nothing
    try:
        assert again.targets([], "bob", T, T + 100, 10) == [("alice bob", "alice", T + 40)]
    finally:
        again.close()


def test_pruning_and_rekeying_keep_the_conversations_listed(store: AnyStore) -> None:
    add(
        store,
        message(store, "old", T, key="#old", target="#old"),
        message(store, "guest", T + 10, key="alice g!tok", target="g"),
    )
    store.prune(T + 5)
    assert store.targets(["#old"], "alice", 0, FAR, 10) == [("alice g!tok", "g!tok", T + 10)]
    store.rekey([("alice g!tok", "alice gina")])
    assert store.targets([], "alice", 0, FAR, 10) == [("alice gina", "gina", T + 10)]
    assert store.targets([], "g!tok", 0, FAR, 10) == []
    assert store.targets([], "gina", 0, FAR, 10) == [("alice gina", "alice", T + 10)]


def test_a_file_store_reads_history_on_read_only_connections(file_store: Store) -> None:
    add(file_store, message(file_store, "one"))
    with file_store._reading() as db:
        assert db is not file_store._db
        with pytest.raises(sqlite3.OperationalError, match=r"readonly"):
            db.execute("DELETE FROM messages")
    assert texts(file_store.query("#chan", 10)) == ["one"]


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
    store: AnyStore,
) -> None:
    keys = ["#chan", "#unused x", "alice unused", "unused zed", "alice bob", "unused!tok bob"]
    for i, key in enumerate(keys):
        store.add(Message(f"id{i}", i, key, "t", "s!u@h", None, "PRIVMSG", "x"))
    store.commit()  # the server commits before it runs the job
    # SQLite's walk takes a few keys and rows at a time: the same outcome
    forgotten = (
        store.forget_conversations({"unused"}, hops=2, chunk=1)
        if isinstance(store, Store)
        else store.forget_conversations({"unused"})
    )
    assert forgotten == 2
    left = {m.key for key in keys for m in store.query(key, 10)}
    assert left == {"#chan", "#unused x", "alice bob", "unused!tok bob"}
    # nor does TARGETS list what went
    assert store.targets([], "alice", 0, FAR, 10) == [("alice bob", "bob", 4)]
    assert store.targets([], "zed", 0, FAR, 10) == []


@sqlite_only
def test_pruning_deletes_a_chunk_at_a_time_and_leaves_what_is_not_written(store: Store) -> None:
    # the server prunes outside its state lock: each hold of the store's lock deletes at most
    # `chunk` rows, found on the time index, and rows added but not committed are not touched
    add(store, *(message(store, f"old{i}", T + i) for i in range(10)))
    store.add(message(store, "pending", T))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        assert store.prune(T + 100, chunk=3) == 10
    finally:
        store._db.set_trace_callback(None)
    deletes = [s for s in statements if s.startswith("DELETE FROM messages")]
    assert len(deletes) == 4  # 3 + 3 + 3 + 1
    plan = [row[3] for row in store._db.execute("EXPLAIN QUERY PLAN " + deletes[0])]
    assert any("messages_by_time" in step for step in plan), plan
    store.commit()
    assert texts(store.query("#chan", 100)) == ["pending"]


# the rest of the Protocols, in both stores --------------------------------------------------------


def channel(name: str, founder: str | None = None, last_used: float = 100.0) -> StoredChannel:
    return StoredChannel(
        name,
        1.0,
        founder,
        "topic",
        "alice",
        2.0,
        "nt",
        None,
        None,
        [("*!*@bad", "op", 3)],
        [],
        last_used,
    )


def test_a_store_in_memory_reads_what_was_added(store: AnyStore) -> None:
    # a read commits first: the state's unit tests read what a handler just wrote (a file
    # store's readers see only what was committed: the server commits before any read)
    first = message(store, "one")
    store.add(first)
    assert texts(store.query("#chan", 10)) == ["one"]
    found = store.locate(first.msgid)
    assert found is not None and found[0] == "#chan" and found[1][0] == T


def test_a_commit_that_fails_stores_none_of_its_messages(store: AnyStore) -> None:
    first = add(store, message(store, "first"))[0]
    store.add(Message(first.msgid, T + 1, "#chan", "#chan", "s!u@h", None, "PRIVMSG", "again"))
    store.add(message(store, "with it", T + 2))
    assert not store.commit()
    assert store.take_failure() is not None
    assert store.take_failure() is None
    assert texts(store.query("#chan", 10)) == ["first"]
    assert add(store, message(store, "later", T + 3)) and store.take_failure() is None
    assert texts(store.query("#chan", 10)) == ["first", "later"]


def test_has_messages_sees_what_was_added(store: AnyStore) -> None:
    assert not store.has_messages("#chan")
    store.add(message(store, "one"))
    assert store.has_messages("#chan")
    assert not store.has_messages("#other")


def test_guest_conversation_finds_the_latest_written(store: AnyStore) -> None:
    add(
        store,
        message(store, "1", T + 50, key="alice g!t1", target="g"),
        message(store, "2", T + 10, key="alice g!t2", target="g"),  # written later, earlier time
        message(store, "3", T, key="g!t1 zed", target="zed"),
        message(store, "4", T, key="g!t2 zed", target="zed"),
        message(store, "5", T, key="alice gina", target="gina"),  # not a guest called g
    )
    assert store.guest_conversation("alice", "g") == "alice g!t2"
    assert store.guest_conversation("alice", "g", reading=True) == "alice g!t2"
    assert store.guest_conversation("alice", "g", hops=1) == "alice g!t1"
    assert store.guest_conversation("zed", "g") == "g!t2 zed"
    assert store.guest_conversation("bob", "g") is None
    assert store.guest_conversation("alice", "gin") is None


def test_accounts_expire_unless_used(store: AnyStore) -> None:
    assert store.account("old") is None
    for name, created in [("old", T), ("older", T - 1), ("used", T), ("busy", T), ("new", T + 9)]:
        assert store.create_account(name, name.title(), b"salt", b"hash", created)
    assert not store.create_account("old", "OLD", b"other", b"other", T)
    assert store.account("old") == ("Old", b"salt", b"hash")
    store.logged_in("used", T + 1)
    store.save_channel("#c", channel("#C", founder="old"))
    store.set_read_marker("old", "#c", T)
    assert store.expire_accounts(T + 5, {"busy"}, most=1) == ["older"]
    assert store.expire_accounts(T + 5, {"busy"}) == ["old"]
    assert store.account("old") is None and store.account("used") is not None
    assert store.account("busy") is not None and store.account("new") is not None
    assert store.read_marker("old", "#c") is None
    assert [chan.founder for chan in store.channels()] == [None]


def test_klines(store: AnyStore) -> None:
    assert store.klines() == []
    store.add_kline("*!*@a", "spam", "op", 0)
    store.add_kline("*!*@b", "flood", "op", 5.5)
    store.add_kline("*!*@a", "spam again", "root", 9)
    assert store.klines() == [
        ("*!*@b", ("flood", "op", 5.5)),
        ("*!*@a", ("spam again", "root", 9.0)),
    ]
    store.remove_kline("*!*@b")
    assert store.klines() == [("*!*@a", ("spam again", "root", 9.0))]


def test_channels_are_kept_until_idle_without_history(store: AnyStore) -> None:
    for name in ["#used", "#idle", "#kept", "#new"]:
        store.save_channel(
            name, channel(name.upper(), last_used=300.0 if name == "#new" else 100.0)
        )
    add(store, message(store, "history", key="#kept", target="#KEPT"))
    store.save_channel("#used", channel("#USED", last_used=50.0))  # replaced: it comes last
    assert [chan.name for chan in store.channels()] == ["#IDLE", "#KEPT", "#NEW", "#USED"]
    assert store.channels()[0] == channel("#IDLE")
    assert store.forget_idle_channels(["#used"], 400.0, 200.0) == ["#idle"]
    assert {chan.name: chan.last_used for chan in store.channels()} == {
        "#KEPT": 100.0,
        "#NEW": 300.0,
        "#USED": 400.0,
    }
    store.forget_channel("#new")
    assert [chan.name for chan in store.channels()] == ["#KEPT", "#USED"]


def test_read_markers_are_capped_per_account(store: AnyStore) -> None:
    store.set_read_marker("alice", "#a", T + 1, cap=2)
    store.set_read_marker("alice", "#b", T + 2, cap=2)
    assert store.set_read_marker("alice", "#a", T + 3, cap=2) == T + 3  # moving one keeps all
    assert store.read_marker("alice", "#b") == T + 2
    store.set_read_marker("alice", "#c", T + 4, cap=2)  # a third: the one set longest ago goes
    assert store.read_marker("alice", "#b") is None
    assert store.read_marker("alice", "#a") == T + 3
    assert store.read_marker("alice", "#c") == T + 4
    store.set_read_marker("bob", "#b", T, cap=2)  # another account's are its own
    assert store.read_marker("alice", "#a") == T + 3
