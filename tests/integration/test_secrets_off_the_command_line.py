"""Issue 10, item 15 (in part): `tuichat serve` takes its passwords from files or the environment,
so they are not in /proc/PID/cmdline, and warns about a secret file others can read."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import Client, ServeProcess


def test_oper_and_server_passwords_from_files_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opers = tmp_path / "opers"
    opers.write_text("# operators\nadmin:file-secret\n\n")
    opers.chmod(0o600)
    monkeypatch.setenv("TUICHAT_PASSWORD", "env-secret")
    process = ServeProcess("--no-history", "--oper-file", str(opers))
    try:
        port = process.port()
        cmdline = Path(f"/proc/{process.proc.pid}/cmdline").read_bytes()
        assert b"file-secret" not in cmdline and b"env-secret" not in cmdline
        refused = Client(port)
        refused.send("NICK nopass")
        refused.send("USER nopass 0 * :x")
        refused.expect(r"^:\S+ 464 ")
        refused.close()
        client = Client(port)
        client.register("alice", password="env-secret")
        client.send("OPER admin file-secret")
        client.expect(r"^:\S+ 381 alice ")
        client.close()
    finally:
        stderr = process.kill()
    assert "can be read by other users" not in stderr


def test_a_secret_file_others_can_read_is_warned_about(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("loose-secret\n")
    secret.chmod(0o644)
    process = ServeProcess("--no-history", "--password-file", str(secret))
    try:
        port = process.port()
        Client(port).register("alice", password="loose-secret").close()
    finally:
        stderr = process.kill()
    assert f"{secret} can be read by other users" in stderr


def test_an_unreadable_oper_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    process = ServeProcess("--no-history", "--oper-file", str(tmp_path / "missing"))
    assert process.proc.wait(10) == 2
    stderr = process.kill()
    assert stderr.strip().startswith("tuichat: cannot read a secret file")
