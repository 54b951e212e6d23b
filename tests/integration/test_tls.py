"""The TLS listener: a self-signed certificate made with `tls.make_self_signed`, TLS and plain
clients side by side, the fingerprint in the log, handshakes that never come or are garbage, STS.

The clients verify the server against the generated certificate file (it is its own CA here), so
a wrong certificate or a server that does not speak TLS fails the test.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import tuichat.server
from tuichat import tls
from tuichat.server import STS_DURATION, Server, ServerConfig

from .helpers import HOST, Client, Connect, StartServer, read_until_closed

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made the way the server makes its own."""
    cert_file, key_file = tmp_path / "tls-cert.pem", tmp_path / "tls-key.pem"
    tls.make_self_signed(cert_file, key_file, "tuichat-test")
    return cert_file, key_file


@pytest.fixture
def context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts exactly the test certificate (and checks the host name)."""
    return ssl.create_default_context(cafile=str(cert[0]))


def tls_config(cert: tuple[Path, Path], *, sts: bool = False) -> ServerConfig:
    return ServerConfig(tls_port=0, tls_cert=str(cert[0]), tls_key=str(cert[1]), sts=sts)


@pytest.fixture
def tls_server(start_server: StartServer, cert: tuple[Path, Path]) -> Server:
    """A server with a plain port and a TLS port side by side."""
    return start_server(tls_config(cert))


@pytest.fixture
def raw_sockets() -> Iterator[list[socket.socket]]:
    """Plain sockets a test opens by hand (closed at teardown)."""
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def raw_connect(port: int, sockets: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=5)
    sockets.append(sock)
    return sock


def client_hello(context: ssl.SSLContext) -> bytes:
    """The first flight of a TLS client: a real ClientHello, as bytes."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def cap_ls(client: Client) -> dict[str, str]:
    """CAP LS 302: every capability offered, with its value."""
    client.send("CAP LS 302")
    caps: dict[str, str] = {}
    while True:
        match = client.expect(r"^:\S+ CAP \* LS (\* )?:(.*)$")
        for cap in match[2].split():
            name, _, value = cap.partition("=")
            caps[name] = value
        if match[1] is None:
            return caps


# chat over TLS ------------------------------------------------------------------------------------


def test_two_tls_clients_and_a_plain_one_chat(
    tls_server: Server, connect: Connect, context: ssl.SSLContext, cert: tuple[Path, Path]
) -> None:
    assert tls_server.tls_address[1] not in (0, tls_server.port)
    alice = connect("alice", server=tls_server, tls=context)
    bob = connect("bob", server=tls_server, tls=context)
    carol = connect("carol", server=tls_server)  # on the plain port
    for client in (alice, bob):
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        der = client.sock.getpeercert(binary_form=True)
        assert der is not None
        assert tls.fingerprint(der) == tls.certificate_fingerprint(cert[0])
    assert not isinstance(carol.sock, ssl.SSLSocket)
    for client in (alice, bob, carol):
        client.join("#secret")
    for client in (alice, bob, carol):
        client.sync()
    alice.send("PRIVMSG #secret :from alice over TLS")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG #secret :from alice over TLS$")
    carol.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG #secret :from alice over TLS$")
    carol.send("PRIVMSG #secret :from carol in the clear")
    alice.expect(r"^:carol!~carol@127\.0\.0\.1 PRIVMSG #secret :from carol in the clear$")
    bob.expect(r"^:carol!~carol@127\.0\.0\.1 PRIVMSG #secret :from carol in the clear$")
    # a long private message crosses several TLS records intact
    text = "é" * 200
    bob.send(f"PRIVMSG alice :{text}")
    assert alice.expect(r"^:bob!\S+ PRIVMSG alice :(.*)$")[1] == text
    # a QUIT over TLS is seen by both kinds of peers, and the TLS client gets its ERROR and EOF
    bob.send("QUIT :bye")
    carol.expect(r"^:bob!\S+ QUIT :Quit: bye$")
    alice.expect(r"^:bob!\S+ QUIT :Quit: bye$")
    assert bob.expect_closed()[-1].startswith("ERROR :Closing link")
    assert alice.sync() == []


def test_the_fingerprint_in_the_log_is_the_certificates(
    tls_server: Server,
    context: ssl.SSLContext,
    cert: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
    connect: Connect,
) -> None:
    pattern = re.compile(
        r"listening with TLS on 127\.0\.0\.1 port (\d+), certificate SHA-256 (\S+)$"
    )
    # the server started while the fixtures were set up
    records = caplog.get_records("setup")
    found = [
        match
        for record in records
        if record.name == "tuichat.server" and record.levelno == logging.INFO
        if (match := pattern.search(record.getMessage())) is not None
    ]
    assert len(found) == 1, [record.getMessage() for record in records]
    port, logged = int(found[0][1]), found[0][2]
    assert port == tls_server.tls_address[1]
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", logged)
    assert logged == tls.certificate_fingerprint(cert[0])
    # and it is the certificate a client is shown
    client = connect(server=tls_server, tls=context)
    assert isinstance(client.sock, ssl.SSLSocket)
    der = client.sock.getpeercert(binary_form=True)
    assert der is not None
    assert tls.fingerprint(der) == logged


def test_a_client_that_trusts_another_certificate_is_refused(
    tls_server: Server, tmp_path: Path
) -> None:
    other_cert, other_key = tmp_path / "other-cert.pem", tmp_path / "other-key.pem"
    tls.make_self_signed(other_cert, other_key, "impostor")
    context = ssl.create_default_context(cafile=str(other_cert))
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(tls_server.tls_address[1], tls=context)


# handshakes that never come or are not TLS --------------------------------------------------------


def test_a_connection_that_never_handshakes_is_closed_after_the_timeout(
    tls_server: Server,
    connect: Connect,
    context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
    raw_sockets: list[socket.socket],
) -> None:
    monkeypatch.setattr(tuichat.server, "HANDSHAKE_TIMEOUT", 0.5)
    alice = connect("alice", server=tls_server, tls=context)
    alice.join("#c")
    started = time.monotonic()
    silent = raw_connect(tls_server.tls_address[1], raw_sockets)
    # one that stops half-way through its ClientHello is a slowloris of the handshake
    stalled = raw_connect(tls_server.tls_address[1], raw_sockets)
    hello = client_hello(context)
    stalled.sendall(hello[: len(hello) // 2])
    # while they hang, TLS and plain clients come and go as usual
    bob = connect("bob", server=tls_server, tls=context)
    carol = connect("carol", server=tls_server)
    bob.join("#c")
    carol.join("#c")
    bob.send("PRIVMSG #c :not blocked")
    alice.expect(r"^:bob!\S+ PRIVMSG #c :not blocked$")
    carol.expect(r"^:bob!\S+ PRIVMSG #c :not blocked$")
    # the server says nothing to them (no plain-text ERROR on a TLS port) and hangs up
    assert read_until_closed(silent) == b""
    assert read_until_closed(stalled) == b""
    # not before the timeout (10 s in production, half a second here)
    assert time.monotonic() - started >= 0.5
    assert alice.sync() == []  # they never registered, so nobody saw them


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"NICK plain\r\nUSER plain 0 * :plain\r\n", id="plain-irc"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(random.Random(5).randbytes(4096), id="random-bytes"),
        # a TLS record header that announces a huge handshake message, then nothing sensible
        pytest.param(b"\x16\x03\x01\xff\xff" + b"\x01" * 2000, id="bogus-record"),
        pytest.param(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", id="truncated-hello"),
    ],
)
def test_garbage_instead_of_a_client_hello_is_closed_without_harm(
    tls_server: Server,
    connect: Connect,
    context: ssl.SSLContext,
    raw_sockets: list[socket.socket],
    garbage: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a message that waits for more bytes must still end, sooner than in production
    monkeypatch.setattr(tuichat.server, "HANDSHAKE_TIMEOUT", 1.0)
    alice = connect("alice", server=tls_server, tls=context)
    carol = connect("carol", server=tls_server)
    alice.join("#c")
    carol.join("#c")
    sock = raw_connect(tls_server.tls_address[1], raw_sockets)
    sock.sendall(garbage)
    received = read_until_closed(sock)
    # whatever the server answers is a TLS alert record at most, never IRC
    assert b"ERROR" not in received and b"NOTICE" not in received
    assert received == b"" or received[0] == 0x15, received[:16]
    alice.send("PRIVMSG #c :still fine")
    carol.expect(r"^:alice!\S+ PRIVMSG #c :still fine$")
    assert connect("dave", server=tls_server, tls=context).sync() == []


def test_garbage_records_after_the_handshake_end_only_that_connection(
    tls_server: Server, connect: Connect, context: ssl.SSLContext
) -> None:
    alice = connect("alice", server=tls_server, tls=context)
    bob = connect("bob", server=tls_server)
    mallory = connect("mallory", server=tls_server, tls=context)
    for client in (alice, bob, mallory):
        client.join("#c")
    alice.sync()
    # application data records the session keys never made, written under the TLS layer
    with socket.socket(fileno=os.dup(mallory.sock.fileno())) as under:
        under.sendall(b"\x17\x03\x03\x00\x20" + bytes(32))
    reason = alice.expect(r"^:mallory!\S+ QUIT :(.*)$")[1]
    assert reason.startswith("TLS error")
    alice.send("PRIVMSG #c :after mallory")
    bob.expect(r"^:alice!\S+ PRIVMSG #c :after mallory$")
    carol = connect("carol", server=tls_server, tls=context)
    carol.join("#c")
    alice.send("PRIVMSG #c :hello carol")
    carol.expect(r"^:alice!\S+ PRIVMSG #c :hello carol$")


# STS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sts", [True, False])
def test_sts_is_advertised_only_when_configured(
    start_server: StartServer,
    cert: tuple[Path, Path],
    context: ssl.SSLContext,
    connect: Connect,
    sts: bool,
) -> None:
    server = start_server(tls_config(cert, sts=sts))
    plain = cap_ls(connect(server=server))
    secure = cap_ls(connect(server=server, tls=context))
    if sts:
        # plain connections learn where to upgrade; TLS ones how long to keep to TLS
        assert plain["sts"] == f"port={server.tls_address[1]}"
        assert secure["sts"] == f"duration={STS_DURATION}"
    else:
        assert "sts" not in plain
        assert "sts" not in secure
    # everything else is the same on both ports
    plain.pop("sts", None)
    secure.pop("sts", None)
    assert plain == secure


def test_no_sts_without_a_tls_port(start_server: StartServer, connect: Connect) -> None:
    server = start_server(ServerConfig(sts=True))
    caps = cap_ls(connect(server=server))
    assert "sts" not in caps
    assert "sasl" in caps  # the list itself did come
