"""What N clients that stop reading cost a tuichat server: its peak RSS while one sender floods
their channel, how many were cut off, and whether a member who keeps reading gets every line.

    python bench/stuck_readers.py [--clients 1000] [--lines 6000] [--root CHECKOUT] [-- ARGS...]

Starts `tuichat serve` from CHECKOUT (default: this one; `--root /work/main` measures another
checkout's code) without history, flood control or connection limits, plus ARGS (for example
`--max-output-memory 67108864`). N clients (receive buffer 4 KB) register, join #flood and never
read again; a watcher in #flood reads everything and PINGs; a sender sends LINES lines of 400
bytes, in rounds of 50 that wait for the watcher to have the previous round. The server's RSS is
read from /proc every 50 ms. Prints one JSON object. Bounded in time; leaves no process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Line:
    """A blocking client that reads lines."""

    def __init__(self, port: int, nick: str, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(30)
        self.buffer = b""
        self.nick = nick
        self.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #flood\r\n")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def until(self, pattern: bytes) -> None:
        while pattern not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"{self.nick}: closed")
            self.buffer += data
        self.buffer = self.buffer[self.buffer.index(pattern) + len(pattern) :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=6000)
    parser.add_argument("--root", type=Path, default=HERE)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("args", nargs="*", help="more `tuichat serve` options (after --)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(args.root))
    command = [sys.executable, "-m", "tuichat", "serve", "--port", "0", "--no-history",
               "--flood-rate", "0", "--max-clients", "0", "--max-clients-per-ip", "0",
               "--connects-per-minute", "0", *args.args]  # fmt: skip
    server = subprocess.Popen(
        command, cwd=args.root, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    clients: list[Line] = []
    result: dict[str, object] = {"root": str(args.root), "args": args.args}
    try:
        assert server.stderr is not None
        port = 0
        for text in server.stderr:
            if (match := re.search(r"listening on 127\.0\.0\.1 port (\d+)$", text)) is not None:
                port = int(match[1])
                break
        if not port:
            raise SystemExit("the server did not start")
        log: list[str] = []
        threading.Thread(target=lambda: log.extend(server.stderr or []), daemon=True).start()
        deadline = time.monotonic() + args.duration
        base = rss_kb(server.pid)
        watcher = Line(port, "watcher")
        watcher.until(b" 366 watcher ")
        sender = Line(port, "sender")
        sender.until(b" 366 sender ")
        for n in range(args.clients):
            clients.append(Line(port, f"stuck{n}", rcvbuf=4096))
        for client in clients:  # registered and joined; from here on they never read
            client.until(f" 366 {client.nick} ".encode())
        joined = rss_kb(server.pid)
        peak = [joined]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.05):
                peak[0] = max(peak[0], rss_kb(server.pid))

        threading.Thread(target=sample, daemon=True).start()
        filler = "x" * 400
        started = time.monotonic()
        worst_round = 0.0
        sent = 0
        quits = 0
        while sent < args.lines and time.monotonic() < deadline:
            began = time.monotonic()
            batch = "".join(f"PRIVMSG #flood :{sent + i} {filler}\r\n" for i in range(50))
            sent += 50
            sender.send(batch + f"PING r{sent}\r\n")
            sender.until(b"PONG")
            # the watcher has the whole round when its last line has come
            while f":{sent - 1} ".encode() not in watcher.buffer:
                data = watcher.sock.recv(262144)
                if not data:
                    raise ConnectionError("the watcher was cut off")
                quits += len(re.findall(rb" QUIT :[^\r]*SendQ exceeded", data))
                watcher.buffer += data
            watcher.buffer = watcher.buffer[-1024:]
            worst_round = max(worst_round, time.monotonic() - began)
        seconds = time.monotonic() - started
        sampling.set()
        peak[0] = max(peak[0], rss_kb(server.pid))
        result.update(
            clients=args.clients,
            lines=sent,
            seconds=round(seconds, 2),
            rss_mb_before_clients=round(base / 1024, 1),
            rss_mb_joined=round(joined / 1024, 1),
            rss_mb_peak=round(peak[0] / 1024, 1),
            cut_off_seen=quits,
            watcher_worst_round_s=round(worst_round, 3),
            warnings=[line.strip() for line in log if "WARNING" in line][:5],
        )
    finally:
        for client in clients:
            client.sock.close()
        if server.poll() is None:
            server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
