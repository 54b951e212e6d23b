"""A bystander: two users who chat and PING the server every 0.1 s from a process of their own,
measuring how long the server keeps them waiting while a test attacks it.

Run as `python bystander.py PORT`; it prints `ready` once both users are registered and in a
channel, keeps measuring until a line arrives on its standard input (or it closes), then prints one
JSON object: `pings` (round-trip times of the answered PINGs, seconds), `lost` (PINGs unanswered
within 10 s), `chat` (how long each chat line took to reach the other user) and `chat_lost`.
`tests/integration/helpers.py` `Bystander` drives it.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import threading
import time

INTERVAL = 0.1
LOST_AFTER = 10.0


class _User:
    def __init__(self, port: int, nick: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.settimeout(None)
        self.nick = nick
        self.buffer = b""
        self.sent: dict[str, float] = {}  # token -> when
        self.rtts: list[float] = []

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def lines(self) -> list[str]:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError(f"{self.nick}: the server closed the connection")
        self.buffer += data
        *complete, self.buffer = self.buffer.split(b"\r\n")
        return [line.decode("utf-8", "replace") for line in complete]

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        try:
            while time.monotonic() < deadline:
                for line in self.lines():
                    if line.startswith("PING "):
                        self.send("PONG " + line[5:])
                    if needle in line:
                        return
        finally:
            self.sock.settimeout(None)
        raise TimeoutError(f"{self.nick}: no {needle!r} within {timeout} s")


def main() -> None:
    port = int(sys.argv[1])
    suffix = f"{time.monotonic_ns() % 100000}"
    users = [_User(port, f"by{i}_{suffix}") for i in range(2)]
    channel = f"#bystanders{suffix}"
    for user in users:
        user.send(f"NICK {user.nick}")
        user.send(f"USER {user.nick} 0 * :a bystander")
        user.wait_for(f" 001 {user.nick} ")
        user.send(f"JOIN {channel}")
        user.wait_for(f" 366 {user.nick} ")
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    print("ready", flush=True)

    chat_sent: dict[str, float] = {}
    chat: list[float] = []
    counter = 0
    selector = selectors.DefaultSelector()
    for user in users:
        selector.register(user.sock, selectors.EVENT_READ, user)

    def read(timeout: float) -> None:
        for key, _ in selector.select(timeout):
            user = key.data
            for line in user.lines():
                arrived = time.monotonic()
                if line.startswith("PING "):
                    user.send("PONG " + line[5:])
                elif " PONG " in line:
                    token = line.rsplit(" ", 1)[-1].lstrip(":")
                    if token in user.sent:
                        user.rtts.append(arrived - user.sent.pop(token))
                elif " PRIVMSG " in line:
                    text = line.rsplit(":", 1)[-1]
                    if text in chat_sent:
                        chat.append(arrived - chat_sent.pop(text))

    next_tick = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_tick:
            next_tick = now + INTERVAL
            counter += 1
            for user in users:
                token = f"t{counter}"
                user.sent[token] = now
                user.send(f"PING {token}")
            if counter % 5 == 0:  # a chat line every half second, alternating speakers
                text = f"chat{counter}"
                chat_sent[text] = now
                users[counter // 5 % 2].send(f"PRIVMSG {channel} :{text}")
        read(max(0.0, next_tick - time.monotonic()))
    # what is still outstanding waits up to LOST_AFTER for its answer
    deadline = time.monotonic() + LOST_AFTER
    while any(user.sent for user in users) or chat_sent:
        if time.monotonic() >= deadline:
            break
        read(0.1)
    pings = [rtt for user in users for rtt in user.rtts]
    lost = sum(1 for user in users for rtt in user.rtts if rtt > LOST_AFTER)
    lost += sum(len(user.sent) for user in users)
    for user in users:
        user.send("QUIT :done")
        user.sock.close()
    result = {"pings": pings, "lost": lost, "chat": chat, "chat_lost": len(chat_sent)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
