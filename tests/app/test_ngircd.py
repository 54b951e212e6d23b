"""Interoperability: the app connects, joins and chats through ngircd, a real IRC server."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tuichat.app import TuichatApp

from .helpers import (
    HOST,
    SIZE,
    RawUser,
    client_config,
    fixed_clock,
    member_labels,
    screen_state,
    submit,
    topic_text,
    wait_for,
    wait_for_joined,
    wait_for_log,
    window_labels,
)

NGIRCD = shutil.which("ngircd") or shutil.which("ngircd", path="/usr/sbin:/usr/local/sbin")

pytestmark = [
    pytest.mark.skipif(NGIRCD is None, reason="ngircd is not installed"),
    pytest.mark.timeout(30),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


CONFIG = """\
[Global]
Name = irc.test.invalid
Info = tuichat interoperability test
AdminInfo1 = tuichat tests
AdminInfo2 = localhost
AdminEMail = nobody@invalid
Ports = {port}
Listen = {host}
MotdPhrase = hello from ngircd
PidFile = {dir}/ngircd.pid

[Limits]
MaxConnectionsIP = 0

[Options]
PAM = no
Ident = no
DNS = no
IncludeDir = {dir}/conf.d
"""


@pytest.fixture
def ngircd(tmp_path: Path) -> Iterator[int]:
    """ngircd in the foreground on a free port of 127.0.0.1; its port. Killed at teardown."""
    assert NGIRCD is not None
    port = free_port()
    (tmp_path / "conf.d").mkdir()
    config = tmp_path / "ngircd.conf"
    config.write_text(CONFIG.format(port=port, host=HOST, dir=tmp_path))
    log_path = tmp_path / "ngircd.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [NGIRCD, "--nodaemon", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(f"ngircd exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"ngircd is not listening after 10 s:\n{log_path.read_text()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.02)  # a bounded wait that also notices an early exit
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


async def test_chat_through_ngircd(ngircd: int, raw_users: Callable[..., RawUser]) -> None:
    alice = raw_users(ngircd, "alice", "#chat")
    app = TuichatApp(
        client_config(ngircd), channels=["#chat"], clock=fixed_clock, server_label="ngircd"
    )
    async with app.run_test(size=SIZE) as pilot:
        # ngircd throttles commands (about a second per JOIN): allow for it
        await wait_for_joined(pilot, "#chat", timeout=10)
        await wait_for(
            pilot,
            lambda: member_labels(app) == ["@alice", "me"],
            show=lambda: screen_state(app),
        )
        await alice.expect(pilot, r"^:me!\S+ JOIN :?#chat$")

        await submit(pilot, "hello through ngircd")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :hello through ngircd$")
        await wait_for_log(pilot, "08:00 <me> hello through ngircd")

        alice.send("PRIVMSG #chat :hi me, welcome")
        await wait_for_log(pilot, "08:00 <alice> hi me, welcome")

        await submit(pilot, "/me waves")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :\x01ACTION waves\x01$")
        await wait_for_log(pilot, "08:00 * me waves")

        alice.send("PRIVMSG me :a private word")
        await wait_for(
            pilot,
            lambda: "3 alice 1 !" in window_labels(app),
            show=lambda: screen_state(app),
        )
        await pilot.press("alt+3")
        assert topic_text(app) == "private conversation with alice"
        await wait_for_log(pilot, "08:00 <alice> a private word")

        alice.send("TOPIC #chat :ngircd topic")
        await pilot.press("alt+2")
        await wait_for(
            pilot,
            lambda: topic_text(app) == "#chat  ngircd topic",
            show=lambda: screen_state(app),
        )

        alice.send("QUIT :done")
        await wait_for(pilot, lambda: member_labels(app) == ["me"], show=lambda: screen_state(app))
        await wait_for_log(pilot, "alice has quit")
