"""A crowd: many users in a process of their own, who all disconnect at once when it ends.

Run as `python crowd.py PORT COUNT PREFIX CHANNEL [CHANNEL2 EVERY]`: COUNT users (nicks PREFIX0,
PREFIX1, ...) register and join CHANNEL, and one in EVERY also joins CHANNEL2. It prints `ready`
once all have joined, then reads (and drops) what the server sends them, answering PINGs, until
a line arrives on its standard input or it closes; then it exits, and the kernel closes every
socket at once, as when a client farm dies or a network link drops. Killing it does the same.
`tests/integration/test_mass_quit.py` drives it.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import threading

AT_ONCE = 100  # registrations in flight


def main() -> None:
    port, count, prefix, channel = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    other, every = (sys.argv[5], int(sys.argv[6])) if len(sys.argv) > 6 else (None, 0)
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    waiting: set[str] = set()  # "nick channel" of the JOINs not yet complete
    opened = 0

    def open_one(i: int) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        nick = f"{prefix}{i}"
        joins = [channel] if not other or i % every else [channel, other]
        waiting.update(f"{nick} {name}" for name in joins)
        sock.sendall(
            f"NICK {nick}\r\nUSER {nick} 0 * :crowd\r\nJOIN {','.join(joins)}\r\n".encode()
        )
        sock.setblocking(False)
        buffers[sock] = b""
        selector.register(sock, selectors.EVENT_READ)

    def read(timeout: float) -> None:
        for key, _ in selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("crowd: the server closed a connection")
            data = buffers[sock] + data
            end = data.rfind(b"\n") + 1
            buffers[sock] = data[end:]
            for line in data[:end].split(b"\r\n"):
                if line.startswith(b"PING"):
                    sock.sendall(b"PONG" + line[4:] + b"\r\n")
                elif b" 366 " in line:
                    words = line.split(b" ")
                    waiting.discard(f"{words[2].decode()} {words[3].decode()}")

    while opened < count or waiting:
        while opened < count and len(waiting) < AT_ONCE:
            open_one(opened)
            opened += 1
        read(1.0)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        read(0.05)
    os._exit(0)  # every socket closed by the kernel, at once


if __name__ == "__main__":
    main()
