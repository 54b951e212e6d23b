"""A TLS client's first lines sent in the same packet as its handshake's last message.

TLS 1.3 lets a client send application data right behind its Finished message; a fast client (or
Nagle's algorithm merging two writes) puts both in one TCP segment. The server must then find the
lines in what the handshake left over, not wait for more bytes that will never come."""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuichat import tls
from tuichat.server import Server, ServerConfig

HOST = "127.0.0.1"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    tls.make_self_signed(cert, key, "tuichat-test")
    config = ServerConfig(host=HOST, port=None, tls_port=0, tls_cert=str(cert), tls_key=str(key))
    with Server(config) as server:
        yield server, cert


def read_until(
    sock: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO, pattern: str, timeout: float
) -> str:
    """Decrypt what arrives until `pattern` is found; fail after `timeout` seconds."""
    text = ""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, text, re.MULTILINE):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} within {timeout} s; got:\n{text}"
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        assert data, f"the server closed the connection; got:\n{text}"
        incoming.write(data)
        while True:
            try:
                text += obj.read(65536).decode()
            except ssl.SSLWantReadError:
                break
    return text


def test_lines_sent_with_the_handshakes_last_message_are_handled(
    tls_server: tuple[Server, Path],
) -> None:
    server, cert = tls_server
    context = ssl.create_default_context(cafile=str(cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=HOST)
    with socket.create_connection(server.tls_address, timeout=5) as sock:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        # the client's Finished is still in `outgoing`: the first lines go in the same write
        obj.write(b"NICK fast\r\nUSER fast 0 * :fast\r\n")
        sock.sendall(outgoing.read())
        read_until(sock, obj, incoming, r"^:\S+ 001 fast ", timeout=3)
