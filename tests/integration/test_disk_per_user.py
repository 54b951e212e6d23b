"""Disk one user or address may fill (issue 10, item 9): read markers only for real
conversations, account registration throttled per address, a history quota."""

from __future__ import annotations

import base64
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import Connect, StartServer

PASSWORD = "correct-horse-battery"
STAMP = "timestamp=2026-01-02T03:04:05.678Z"


def stored(db_path: Path, sql: str) -> int:
    with closing(sqlite3.connect(db_path)) as db:
        return int(db.execute(sql).fetchone()[0])


def test_markread_for_made_up_targets_is_refused_and_not_stored(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    server = start_server(ServerConfig(db=str(db_path)))
    alice = connect(server=server).register_with_caps("alice", ["draft/read-marker"])
    alice.send(f"REGISTER * * {PASSWORD}")
    alice.expect(r"^:\S+ REGISTER SUCCESS alice ")
    made_up = ["#nowhere", "#x1", "#x2", "nobody", "ghost1", "ghost2"]
    for target in made_up:
        alice.send(f"MARKREAD {target} {STAMP}")
        alice.expect(rf"^:\S+ FAIL MARKREAD INVALID_PARAMS {target} :")
    assert stored(db_path, "SELECT COUNT(*) FROM read_markers") == 0
    alice.join("#real")
    alice.send(f"MARKREAD #real {STAMP}")
    alice.expect(rf"^:\S+ MARKREAD #real {STAMP}$")
    assert stored(db_path, "SELECT COUNT(*) FROM read_markers") == 1


def test_registering_accounts_is_throttled_per_address(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    server = start_server(ServerConfig(db=str(db_path)))
    for i in range(5):
        client = connect(f"user{i}", server=server)
        client.send(f"REGISTER * * {PASSWORD}")
        client.expect(rf"^:\S+ REGISTER SUCCESS user{i} ")
    extra = connect("user5", server=server)
    extra.send(f"REGISTER * * {PASSWORD}")
    extra.expect(r"^:\S+ FAIL REGISTER TEMPORARILY_UNAVAILABLE user5 :.*try again in 12 min")
    assert stored(db_path, "SELECT COUNT(*) FROM accounts") == 5
    # another address may still register
    other = connect("elsewhere", server=server, source="127.0.0.2")
    other.send(f"REGISTER * * {PASSWORD}")
    other.expect(r"^:\S+ REGISTER SUCCESS elsewhere ")


def test_accounts_never_used_after_registering_expire(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    server = start_server(ServerConfig(db=str(db_path)))
    clients = [connect(nick, server=server) for nick in ("unused", "used")]
    for client in clients:
        client.send(f"REGISTER * * {PASSWORD}")
        client.expect(rf"^:\S+ REGISTER SUCCESS {client.nick} ")
    for client in clients:
        client.send("PRIVMSG used :a private line")
        client.send("QUIT")
        client.expect_closed()
    again = connect(server=server).register_with_caps("x", ["sasl"])
    again.send("AUTHENTICATE PLAIN")
    again.expect(r"^AUTHENTICATE \+$")
    again.send("AUTHENTICATE " + base64.b64encode(f"\0used\0{PASSWORD}".encode()).decode())
    again.expect(r"^:\S+ 903 ")
    again.send("QUIT")
    again.expect_closed()
    server.stop()
    assert stored(db_path, "SELECT COUNT(*) FROM messages") == 2
    # eight days later: the server prunes as it starts
    later = Server(
        ServerConfig(host="127.0.0.1", port=0, db=str(db_path)),
        clock=lambda: time.time() + 8 * 86400,
    )
    later.start()
    try:
        with closing(sqlite3.connect(db_path)) as db:
            names = [row[0] for row in db.execute("SELECT name FROM accounts ORDER BY name")]
        assert names == ["used"]
        # its private history went with it: only "used" talking to itself is left
        assert stored(db_path, "SELECT COUNT(*) FROM messages WHERE key = 'used used'") == 1
        assert stored(db_path, "SELECT COUNT(*) FROM messages") == 1
        newcomer = connect("unused", server=later)
        newcomer.send(f"REGISTER * * {PASSWORD}")
        newcomer.expect(r"^:\S+ REGISTER SUCCESS unused ")
    finally:
        later.stop()


def test_history_past_the_quota_is_refused_and_delivered_to_nobody(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    state = Config()
    state.history_quota_address = 3000  # set apart, so that older code runs the test (and fails)
    server = start_server(ServerConfig(db=str(db_path), state=state))
    reader = connect("reader", server=server, source="127.0.0.2")
    reader.join("#chat")
    speakers = [connect(f"speaker{i}", server=server) for i in range(2)]
    for speaker in speakers:
        speaker.join("#chat")
    text = "x" * 300
    refused = None
    for i in range(12):  # two connections, one address: one quota (about 400 bytes a line)
        speaker = speakers[i % 2]
        speaker.send(f"PRIVMSG #chat :{i} {text}")
        got = speaker.sync()
        if any(" FAIL " in line for line in got):
            refused = i
            break
        reader.expect(rf" PRIVMSG #chat :{i} x")
    assert refused is not None and 5 <= refused <= 8, refused
    fail = [line for line in got if " FAIL " in line]
    assert fail == [
        f":tuichat FAIL PRIVMSG TEMPORARILY_UNAVAILABLE #chat :history quota exceeded; "
        f"try again in {fail[0].rsplit(' in ', 1)[1]}"
    ]
    assert not [line for line in reader.sync() if " PRIVMSG " in line]  # nobody got it
    assert stored(db_path, "SELECT COUNT(*) FROM messages") == refused
    # another address still speaks
    reader.send("PRIVMSG #chat :from elsewhere")
    speakers[0].expect(r" PRIVMSG #chat :from elsewhere$")
