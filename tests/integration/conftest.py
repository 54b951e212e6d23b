"""Fixtures for integration tests: a real server on 127.0.0.1 port 0 per test, raw-socket clients
made by a factory that closes them all at teardown."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import HOST, OPER, Client, Connect, StartServer


@pytest.fixture
def start_server(caplog: pytest.LogCaptureFixture) -> Iterator[StartServer]:
    """Start servers on 127.0.0.1 port 0 (any `ServerConfig`; host and port are overridden);
    stop them all at teardown and fail if the server logged an error."""
    caplog.set_level(logging.INFO, logger="tuichat")
    servers: list[Server] = []

    def start(config: ServerConfig | None = None, /) -> Server:
        config = config or ServerConfig()
        config.host = HOST
        config.port = 0
        server = Server(config)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [
        record
        for record in caplog.get_records("call")
        if record.name.startswith("tuichat") and record.levelno >= logging.ERROR
    ]
    assert not errors, f"the server logged errors: {[r.getMessage() for r in errors]}"


@pytest.fixture
def server(start_server: StartServer) -> Server:
    """A server with the default configuration."""
    return start_server(ServerConfig(state=Config()))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where a test's server keeps history and accounts."""
    return tmp_path / "tuichat.db"


@pytest.fixture
def history_server(start_server: StartServer, db_path: Path) -> Server:
    """A server with history and accounts in `db_path`, and the `OPER` login."""
    return start_server(ServerConfig(db=str(db_path), state=Config(opers=dict([OPER]))))


@pytest.fixture
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """Make clients (registered when given a nick) of `server`, or of the default `server`
    fixture; all are closed at teardown. `source` binds the client to another loopback address
    (127.0.0.2...); `tls` connects to the server's TLS port with that context."""
    clients: list[Client] = []

    def make(
        nick: str | None = None,
        *,
        server: Server | None = None,
        rcvbuf: int | None = None,
        answer_pings: bool = False,
        source: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Client:
        if server is None:
            server = request.getfixturevalue("server")
        client = Client(
            server.tls_address[1] if tls is not None else server.port,
            rcvbuf=rcvbuf,
            answer_pings=answer_pings,
            name=nick or "client",
            source=source,
            tls=tls,
        )
        clients.append(client)
        if nick is not None:
            client.register(nick)
        return client

    yield make
    for client in clients:
        client.close()
