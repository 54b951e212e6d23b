"""Stopping a busy server: quick, whatever the number of clients, and nothing left open."""

from __future__ import annotations

import socket
import time

import pytest

from tuichat.server import Server, ServerConfig

from .helpers import HOST


@pytest.mark.timeout(30)
def test_stop_with_many_members_of_one_channel_is_quick_and_closes_everything() -> None:
    server = Server(
        ServerConfig(host=HOST, port=0, flood_rate=0, max_per_ip=0, connects_per_minute=0)
    )
    server.start()
    clients: list[socket.socket] = []
    try:
        for i in range(400):
            sock = socket.create_connection((HOST, server.port))
            sock.sendall(f"NICK u{i}\r\nUSER u 0 * :u\r\nJOIN #big\r\n".encode())
            clients.append(sock)
        # the last one's JOIN done means every JOIN before it is done (one state lock, in order)
        last = clients[-1]
        buffer = b""
        last.settimeout(10)
        while b" 366 u399 #big " not in buffer:
            buffer += last.recv(65536)
        connections = list(server._connections)
        assert len(connections) == 400
        start = time.monotonic()
        server.stop()
        assert time.monotonic() - start < 2
        assert all(conn.closed for conn in connections)
        assert server.client_threads == 0
    finally:
        server.stop()
        for sock in clients:
            sock.close()


def test_per_address_limits_count_an_ipv6_64_as_one_address() -> None:
    from tuichat.server import _address_key

    assert _address_key("127.0.0.1") == "127.0.0.1"
    assert _address_key("2001:db8:1:2::1") == _address_key("2001:db8:1:2:ffff::9")
    assert _address_key("2001:db8:1:2::1") != _address_key("2001:db8:1:3::1")
    assert _address_key("::1") == _address_key("0:0:0:0:0:0:0:1")
