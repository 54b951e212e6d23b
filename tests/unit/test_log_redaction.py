"""Issue 10, item 15 (in part): `--log-level debug` never shows a password or SASL payload."""

from __future__ import annotations

import pytest

from tuichat.server import redacted


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("PASS hunter2", "PASS <redacted>"),
        ("OPER admin hunter2", "OPER admin <redacted>"),
        ("AUTHENTICATE AGFsaWNlAGh1bnRlcjI=", "AUTHENTICATE <redacted>"),
        ("REGISTER * * hunter2", "REGISTER * * <redacted>"),
        ("REGISTER alice a@b.c :hunter2 with spaces", "REGISTER alice a@b.c <redacted>"),
        ("@label=x PASS :hunter2", "PASS <redacted>"),
        ("PRIVMSG NickServ :IDENTIFY hunter2", "PRIVMSG NickServ <redacted>"),
        ("NICKSERV IDENTIFY hunter2", "NICKSERV <redacted>"),
    ],
)
def test_secrets_are_redacted(line: str, shown: str) -> None:
    assert redacted(line) == shown
    assert "hunter2" not in redacted(line) and "AGFsaWNl" not in redacted(line)


@pytest.mark.parametrize(
    "line", ["PRIVMSG #c :my password is in plain sight", "NICK alice", "PASS", "JOIN #c key"]
)
def test_other_lines_are_logged_as_they_came(line: str) -> None:
    assert redacted(line) == line
