"""Issue 10, item 15 (in part): a real server at debug level logs what it received without the
passwords in it."""

from __future__ import annotations

import logging

import pytest

from tuichat.server import Server

from .helpers import OPER, Connect


def test_the_debug_log_shows_no_password(
    history_server: Server, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tuichat")
    client = connect(server=history_server)
    client.send("PASS server-secret")
    client.register("alice")
    client.send("REGISTER * * account-secret")
    client.expect(r" REGISTER SUCCESS alice ")
    client.oper(*OPER)
    received = [r.getMessage() for r in caplog.records if " <- " in r.getMessage()]
    assert any("OPER tester <redacted>" in line for line in received), received
    for secret in ("server-secret", "account-secret", OPER[1]):
        assert not any(secret in line for line in received), received
