"""Messages per second through a tuichat server with history on (SQLite) and off.

    python bench/history.py [--messages 20000] [--senders 10] [--members 20] [--runs 3]

Starts `tuichat serve` as a subprocess on a free loopback port, once with `--db` in a temporary
directory and once with `--no-history`; S senders each send M/S PRIVMSGs into one channel as fast
as they can while every member reads. Reports messages/s (accepted and delivered to every member)
and the ratio history-on / history-off, median of the runs. Bounded in time; leaves no process.
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def start_server(extra: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuichat",
            "serve",
            "--port",
            "0",
            "--log-level",
            "warning",
            # flood control and the per-address limits are tuichat's defence against exactly this
            "--flood-rate",
            "0",
            "--max-clients-per-ip",
            "0",
            "--connects-per-minute",
            "0",
            *extra,
        ],
        stderr=subprocess.PIPE,
    )
    # the port: ask the OS which one the child listens on (its log is quiet at warning level)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if f"pid={proc.pid}," in line:
                match = re.search(r"127\.0\.0\.1:(\d+)", line)
                if match:
                    return proc, int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def connect(port: int, nick: str) -> socket.socket:
    sock = socket.create_connection((HOST, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #bench\r\n".encode())
    buffer = b""
    while b" 366 " not in buffer:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("server closed")
        buffer += data
    sock.setblocking(False)
    return sock


def run(port: int, messages: int, senders: int, members: int) -> float:
    socks = [connect(port, f"m{i}") for i in range(members)]
    per_sender = messages // senders
    expected = per_sender * senders * members - per_sender * senders  # senders do not get own
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    payload = [
        b"".join(
            f"PRIVMSG #bench :msg {s} {n} xxxxxxxxxxxxxxxxxxxxxxxx\r\n".encode()
            for n in range(per_sender)
        )
        for s in range(senders)
    ]
    received = 0
    partial = {sock: b"" for sock in socks}  # an incomplete line at the end of the last recv
    start = time.perf_counter()
    pending = {socks[s]: memoryview(payload[s]) for s in range(senders)}
    deadline = time.monotonic() + 120
    while received < expected and time.monotonic() < deadline:
        for sock, view in list(pending.items()):
            try:
                sent = sock.send(view)
            except BlockingIOError:
                sent = 0
            if sent >= len(view):
                del pending[sock]
            else:
                pending[sock] = view[sent:]
        for key, _ in selector.select(timeout=0.05):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                data = ready.recv(1 << 20)
            except BlockingIOError:
                continue
            data = partial[ready] + data
            end = data.rfind(b"\n") + 1
            partial[ready] = data[end:]
            received += data.count(b" PRIVMSG #bench ", 0, end)
    elapsed = time.perf_counter() - start
    for sock in socks:
        sock.close()
    if received < expected:
        raise RuntimeError(f"only {received} of {expected} deliveries arrived")
    return per_sender * senders / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for mode in ("off", "on"):
                extra = (
                    ["--no-history"] if mode == "off" else ["--db", os.path.join(tmp, f"{i}.db")]
                )
                proc, port = start_server(extra)
                try:
                    rate = run(port, args.messages, args.senders, args.members)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                results[mode].append(rate)
                print(f"run {i + 1} history {mode:>3}: {rate:10.0f} messages/s", flush=True)
    off = statistics.median(results["off"])
    on = statistics.median(results["on"])
    print(f"median history off: {off:.0f} messages/s ({off * (args.members - 1):.0f} deliveries/s)")
    print(f"median history on:  {on:.0f} messages/s ({on * (args.members - 1):.0f} deliveries/s)")
    print(f"history on / off: {on / off:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
