"""Fixtures for app tests: a real tuichat server on 127.0.0.1 port 0 per test, raw-socket IRC users
on the other side (closed at teardown), and the app with a fixed clock, made or already running
in #chat."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from textual.pilot import Pilot

from tuichat.app import TuichatApp
from tuichat.server import Server

from .helpers import SIZE, InChat, RawUser, Servers, client_config, fixed_clock, wait_for_joined

# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Timestamps render in UTC, so the fixed clock shows 08:00 on every machine."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture
def servers(caplog: pytest.LogCaptureFixture) -> Iterator[Servers]:
    """Start tuichat servers (`servers.start(port=0)`); stop them all at teardown, and fail if
    one logged an error."""
    caplog.set_level(logging.INFO, logger="tuichat")
    made = Servers()
    yield made
    made.stop_all()
    errors = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.name.startswith("tuichat") and record.levelno >= logging.ERROR
    ]
    assert not errors, f"tuichat logged errors: {errors}"


@pytest.fixture
def server(servers: Servers) -> Server:
    return servers.start()


@pytest.fixture
def raw_users() -> Iterator[Callable[..., RawUser]]:
    """`raw_users(port, nick, *channels)`: a registered raw user of the server on `port`, in
    `channels`; all are closed at teardown."""
    made: list[RawUser] = []

    def make(port: int, nick: str, *channels: str) -> RawUser:
        raw = RawUser(port, nick)
        made.append(raw)
        raw.register()
        for channel in channels:
            raw.join(channel)
        return raw

    yield make
    for raw in made:
        raw.close()


@pytest.fixture
def user(server: Server, raw_users: Callable[..., RawUser]) -> Callable[..., RawUser]:
    """`user(nick, *channels, port=server.port)`: a raw user of `server` (or of `port`)."""

    def make(nick: str, *channels: str, port: int | None = None) -> RawUser:
        return raw_users(port or server.port, nick, *channels)

    return make


@pytest.fixture
def make_app(server: Server) -> Callable[..., TuichatApp]:
    """`make_app(channels=[...], nick="me", port=...)`: the app on `server`, with a fixed clock."""

    def make(
        channels: list[str] | None = None, nick: str = "me", port: int | None = None
    ) -> TuichatApp:
        return TuichatApp(
            client_config(port or server.port, nick),
            channels=channels,
            clock=fixed_clock,
            server_label="test-server",
        )

    return make


@pytest.fixture
def in_chat(make_app: Callable[..., TuichatApp]) -> InChat:
    """`async with in_chat() as (app, pilot):` the app made by `make_app(channels=["#chat"])`,
    running at SIZE, once it is connected and in #chat, the setup most app tests share."""

    @asynccontextmanager
    async def run() -> AsyncIterator[tuple[TuichatApp, Pilot[Any]]]:
        app = make_app(channels=["#chat"])
        async with app.run_test(size=SIZE) as pilot:
            await wait_for_joined(pilot, "#chat")
            yield app, pilot

    return run
