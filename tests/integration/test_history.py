"""History over real sockets: written before delivery, CHATHISTORY, join replay, restarts on the
same database, retention, and a server without history."""

from __future__ import annotations

import base64
import re
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from tuichat.net.protocol import Line, parse
from tuichat.server import Server, ServerConfig
from tuichat.state import Config, Outbox, Variants
from tuichat.store import Message, Store

from .helpers import OPER, Client, Connect, StartServer, fetch_history, read_batch

HISTORY_CAPS = ["batch", "message-tags", "server-time", "draft/chathistory"]


def modern(connect: Connect, server: Server, nick: str, caps: list[str] = HISTORY_CAPS) -> Client:
    client = connect(server=server)
    return client.register_with_caps(nick, caps)


# written before delivery --------------------------------------------------------------------------


def test_a_message_is_committed_before_anyone_gets_it(
    start_server: StartServer, connect: Connect, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every delivery is checked, as it is handed to the connections, against what another
    SQLite connection sees in the file: only committed rows."""
    server = start_server(ServerConfig(db=str(db_path), state=Config(opers=dict([OPER]))))
    disk = sqlite3.connect(db_path, check_same_thread=False)
    checked: list[str] = []
    not_yet: list[str] = []
    lock = threading.Lock()
    deliver = Outbox.deliver

    def checking_deliver(out: Outbox) -> None:
        with lock:
            for targets, blob, skip in out.sends:
                for user in targets:
                    if user is skip:
                        continue
                    data = blob.for_user(user) if isinstance(blob, Variants) else bytes(blob)
                    for msgid in re.findall(rb"msgid=([^; \r]+)", data):
                        checked.append(msgid.decode())
                        row = disk.execute(
                            "SELECT 1 FROM messages WHERE msgid = ?", (msgid.decode(),)
                        ).fetchone()
                        if row is None:
                            not_yet.append(msgid.decode())
        deliver(out)

    monkeypatch.setattr(Outbox, "deliver", checking_deliver)
    try:
        reader = modern(connect, server, "reader", ["message-tags"])
        reader.join("#d")
        senders = [connect(f"sender{i}", server=server).oper() for i in range(3)]
        for sender in senders:
            sender.join("#d")
        for i, sender in enumerate(senders):
            # a burst in one write: many lines handled and committed together
            sender.send_raw(b"".join(f"PRIVMSG #d :{i}-{k}\r\n".encode() for k in range(20)))
            sender.send(f"PRIVMSG reader :private {i}")
        got: list[str] = []
        while len(got) < 63:
            line = parse(reader.readline())
            if line.command == "PRIVMSG":
                got.append(line.tags["msgid"])
    finally:
        disk.close()
    assert not_yet == []
    assert set(got) <= set(checked)


def test_a_received_message_is_already_in_the_file(
    history_server: Server, connect: Connect, db_path: Path
) -> None:
    reader = modern(connect, history_server, "reader", ["message-tags"])
    reader.join("#d")
    sender = connect("sender", server=history_server).oper()
    sender.join("#d")
    with closing(sqlite3.connect(db_path)) as disk:
        for k in range(30):
            sender.send(f"PRIVMSG #d :message {k}")
            line = parse(reader.expect(r" PRIVMSG #d :").string)
            row = disk.execute(
                "SELECT text FROM messages WHERE msgid = ?", (line.tags["msgid"],)
            ).fetchone()
            assert row == (f"message {k}",)


# CHATHISTORY over the wire ------------------------------------------------------------------------


def test_chathistory_pages_through_bursts_exactly_once(
    history_server: Server, connect: Connect
) -> None:
    alice = modern(connect, history_server, "alice").oper()  # she pages a lot
    alice.join("#burst")
    bob = connect("bob", server=history_server).oper()
    bob.join("#burst")
    # one write: the lines are handled in one go, most of them in the same millisecond
    bob.send_raw(b"".join(f"PRIVMSG #burst :b{k}\r\n".encode() for k in range(150)))
    live: list[tuple[str, str]] = []
    while len(live) < 150:
        line = parse(alice.readline())
        if line.command == "PRIVMSG":
            live.append((line.tags["msgid"], line.params[1]))
    assert [text for _, text in live] == [f"b{k}" for k in range(150)]
    for page in (7, 100):
        got = [
            (line.tags["msgid"], line.params[1]) for line in fetch_history(alice, "#burst", page)
        ]
        assert got == live, page
    # the limit is capped at the advertised 100
    alice.send("CHATHISTORY LATEST #burst * 1000")
    latest = read_batch(alice)
    assert [(line.tags["msgid"], line.params[1]) for line in latest] == live[-100:]
    alice.send(f"CHATHISTORY BEFORE #burst msgid={live[50][0]} 10")
    assert [line.params[1] for line in read_batch(alice)] == [f"b{k}" for k in range(40, 50)]
    alice.send(f"CHATHISTORY BETWEEN #burst msgid={live[10][0]} msgid={live[13][0]} 10")
    assert [line.params[1] for line in read_batch(alice)] == ["b11", "b12"]
    alice.send(f"CHATHISTORY AROUND #burst msgid={live[70][0]} 5")
    around = [line.params[1] for line in read_batch(alice)]
    assert len(around) == 5 and "b70" in around
    window = "timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z"
    alice.send(f"CHATHISTORY TARGETS {window} 10")
    [target] = read_batch(alice, "draft/chathistory-targets")
    assert target.params[:2] == ("TARGETS", "#burst")


def test_chathistory_errors_over_the_wire(history_server: Server, connect: Connect) -> None:
    alice = modern(connect, history_server, "alice")
    bob = connect("bob", server=history_server)
    bob.join("#private")
    bob.send("PRIVMSG #private :secret")
    alice.send("CHATHISTORY LATEST #private * 10")
    alice.expect(r"^:\S+ FAIL CHATHISTORY INVALID_TARGET LATEST #private :")
    alice.join("#mine")
    alice.send("CHATHISTORY AFTER #mine msgid=nosuchmsgid 10")
    alice.expect(r"^:\S+ FAIL CHATHISTORY INVALID_MSGREFTYPE AFTER #mine :")
    alice.send("CHATHISTORY SIDEWAYS #mine * 10")
    alice.expect(r"^:\S+ FAIL CHATHISTORY INVALID_PARAMS SIDEWAYS :")
    assert not any("secret" in line for line in alice.sync())


def test_private_history_between_two_nicks(history_server: Server, connect: Connect) -> None:
    alice = modern(connect, history_server, "alice")
    bob = modern(connect, history_server, "bob")
    alice.send("PRIVMSG bob :are you there?")
    bob.expect(r" PRIVMSG bob :are you there\?$")
    bob.send("PRIVMSG alice :yes")
    alice.expect(r" PRIVMSG alice :yes$")
    bob.send("QUIT :later")
    bob.expect_closed()
    alice.send("PRIVMSG bob :gone already?")  # bob is gone: 401, nothing stored
    alice.expect(r"^:\S+ 401 alice bob ")
    # alice keeps the conversation with the bob who left (guests: for her connection's life)
    alice.send("CHATHISTORY LATEST bob * 10")
    got = read_batch(alice)
    assert [(line.nick, line.params) for line in got] == [
        ("alice", ("bob", "are you there?")),
        ("bob", ("alice", "yes")),
    ]
    # a new bob is somebody else: none of it is his (issue 10, item 1)
    bob = modern(connect, history_server, "bob")
    bob.send("CHATHISTORY LATEST alice * 10")
    assert read_batch(bob) == []
    carol = modern(connect, history_server, "carol")
    carol.send("CHATHISTORY LATEST alice * 10")
    assert read_batch(carol) == []


# join replay --------------------------------------------------------------------------------------


def test_join_replay_for_clients_without_chathistory(
    history_server: Server, connect: Connect
) -> None:
    talker = connect("talker", server=history_server)
    talker.join("#r")
    for k in range(3):
        talker.send(f"PRIVMSG #r :said {k}")
    talker.sync()

    old = connect("old", server=history_server)
    old.send("JOIN #r")
    old.expect(r"^:\S+ 366 old #r ")
    replay = [old.readline() for _ in range(3)]
    for k, line in enumerate(replay):
        assert re.fullmatch(
            rf":talker!~talker@127\.0\.0\.1 PRIVMSG #r :\[\d{{4}}-\d\d-\d\d \d\d:\d\d\] said {k}",
            line,
        ), line
    assert old.sync() == []

    stamped = connect(server=history_server)
    stamped.register_with_caps("stamped", ["batch", "server-time"])
    stamped.send("JOIN #r")
    stamped.expect(r"^:\S+ 366 stamped #r ")
    body = read_batch(stamped, "chathistory")
    assert [line.params for line in body] == [("#r", f"said {k}") for k in range(3)]
    times = [line.tags["time"] for line in body]
    assert times == sorted(times)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in times)

    historian = modern(connect, history_server, "historian")
    historian.send("JOIN #r")
    historian.expect(r"^:\S+ 366 historian #r ")
    assert historian.sync() == []


# restarts, retention, no history ------------------------------------------------------------------


def test_history_accounts_and_markers_survive_a_restart(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    first = start_server(ServerConfig(db=str(db_path)))
    alice = modern(connect, first, "alice", [*HISTORY_CAPS, "draft/read-marker"])
    alice.send("REGISTER * * correct-horse-battery")
    alice.expect(r"^:\S+ REGISTER SUCCESS alice ")
    alice.join("#keep")
    bob = connect("bob", server=first)
    bob.join("#keep")
    for k in range(5):
        bob.send(f"PRIVMSG #keep :before {k}")
    before: list[Line] = []
    while len(before) < 5:
        line = parse(alice.readline())
        if line.command == "PRIVMSG":
            before.append(line)
    alice.send(f"MARKREAD #keep timestamp={before[2].tags['time']}")
    alice.expect(r"^:\S+ MARKREAD #keep timestamp=")
    first.stop()

    second = start_server(ServerConfig(db=str(db_path)))
    assert second.port != 0
    again = connect(server=second)
    again.send("CAP LS 302")
    again.send("CAP REQ :" + " ".join([*HISTORY_CAPS, "draft/read-marker", "sasl"]))
    again.send("NICK alice")
    again.send("USER alice 0 * :alice")
    again.send("AUTHENTICATE PLAIN")
    again.expect(r"^AUTHENTICATE \+$")
    again.send("AUTHENTICATE " + base64.b64encode(b"\0alice\0correct-horse-battery").decode())
    again.expect(r"^:\S+ 903 alice ")
    again.send("CAP END")
    again.expect(r"^:\S+ 001 alice ")
    again.send("JOIN #keep")
    markers = [line for line in again.sync() if " MARKREAD " in line]
    assert markers == [f":tuichat MARKREAD #keep timestamp={before[2].tags['time']}"]
    again.send("CHATHISTORY LATEST #keep * 10")
    kept = read_batch(again)
    assert [(line.tags["msgid"], line.tags["time"], line.params) for line in kept] == [
        (line.tags["msgid"], line.tags["time"], line.params) for line in before
    ]
    # references from the first run still work, and new messages come after the old ones
    again.send(f"CHATHISTORY AFTER #keep msgid={before[2].tags['msgid']} 10")
    assert [line.params[1] for line in read_batch(again)] == ["before 3", "before 4"]
    bob = connect("bob", server=second)
    bob.join("#keep")
    bob.send("PRIVMSG #keep :after")
    after = parse(again.expect(r" PRIVMSG #keep :after$").string)
    assert after.tags["msgid"] not in {line.tags["msgid"] for line in before}
    again.send("CHATHISTORY LATEST #keep * 10")
    assert [line.params[1] for line in read_batch(again)] == [
        *(f"before {k}" for k in range(5)),
        "after",
    ]


@pytest.mark.parametrize(("days", "kept"), [(30.0, ["recent"]), (0.0, ["ancient", "recent"])])
def test_retention_at_start(
    start_server: StartServer, db_path: Path, days: float, kept: list[str]
) -> None:
    now_ms = int(time.time() * 1000)
    store = Store(db_path)
    for text, age_days in (("ancient", 40), ("recent", 1)):
        store.add(
            Message(
                store.new_msgid(),
                now_ms - age_days * 86_400_000,
                "#old",
                "#old",
                "x!~x@127.0.0.1",
                None,
                "PRIVMSG",
                text,
            )
        )
    store.close()
    start_server(ServerConfig(db=str(db_path), history_days=days))
    with closing(sqlite3.connect(db_path)) as disk:
        texts = [row[0] for row in disk.execute("SELECT text FROM messages ORDER BY seq")]
    assert texts == kept


def test_a_server_without_history(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(db=None, state=Config()))
    client = connect(server=server)
    client.send("CAP LS 302")
    caps = client.expect(r"^:\S+ CAP \* LS :(.*)$")[1].split()
    assert not {"draft/chathistory", "chathistory"} & {cap.split("=")[0] for cap in caps}
    client.send("CAP END")
    client.register("plain")
    client.join("#c")
    client.send("PRIVMSG #c :into the void")
    client.send("CHATHISTORY LATEST #c * 10")
    client.expect(r"^:\S+ 421 plain CHATHISTORY ")
    client.send("REGISTER * * correct-horse-battery")
    client.expect(r"^:\S+ FAIL REGISTER DISALLOWED plain :")
    other = connect("other", server=server)
    other.send("JOIN #c")
    other.expect(r"^:\S+ 366 other #c ")
    assert other.sync() == []  # no replay
