"""Disk one user or address may fill (issue 10, item 9): read markers only for real
conversations, account registration throttled per address, a history quota."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from tuichat.server import ServerConfig

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
