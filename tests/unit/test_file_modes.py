"""Files that hold secrets are their owner's alone, whatever the umask (issue 10, item 13): the
history database (every private message, the password hashes) and its -wal and -shm files, the
directory made for it, TLS keys, known hosts."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuichat import tls
from tuichat.store import Message, Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000, as the audit had it; restored after the test."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_the_database_its_journal_and_its_directory_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "data" / "tuichat.db"
    store = Store(path)
    try:
        store.add(Message("m1", 1, "#c", "#c", "a!a@h", None, "PRIVMSG", "secret", None))
        store.commit()
        assert mode(path.parent) == 0o700
        for name in ("tuichat.db", "tuichat.db-wal", "tuichat.db-shm"):
            assert (path.parent / name).exists(), name
            assert mode(path.parent / name) == 0o600, name
    finally:
        store.close()


def test_an_existing_database_is_made_private_at_open(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "tuichat.db"
    Store(path).close()
    for name in ("tuichat.db", "tuichat.db-wal", "tuichat.db-shm"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o666)
    store = Store(path)
    try:
        for name in ("tuichat.db", "tuichat.db-wal", "tuichat.db-shm"):
            if (tmp_path / name).exists():
                assert mode(tmp_path / name) == 0o600, name
    finally:
        store.close()


def test_a_self_signed_key_and_its_directory_are_private(tmp_path: Path, open_umask: None) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    tls.make_self_signed(cert, key, "localhost")
    assert mode(key.parent) == 0o700
    assert mode(key) == 0o600


def test_known_hosts_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "client" / "known_hosts"
    tls.KnownServers(path).add("example.org", 6697, "AB:CD")
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600
