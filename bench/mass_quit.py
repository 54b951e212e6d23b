"""Many members of one channel disconnect at once: how long until every QUIT is handled, and how
long a bystander waits meanwhile.

    python bench/mass_quit.py [--members 2000] [--runs 1] [--before ROOT] [--no-ngircd]
    python bench/mass_quit.py --only-ngircd

Per run and server: a fresh server on a free loopback port (bench/run.py starts it); `--members`
clients register and join `#mass` (50 at a time, for ngircd's sake), with one more member that
stays (the observer); the bystander of the tests (tests/integration/bystander.py: two users in
another channel, PINGing every 0.1 s) starts; then every member but the observer closes its socket
at once. "quits" is the time from the closes until the observer has read all their QUITs;
"bystander" is the bystander's slowest PING round trip over the whole run. `--before ROOT` also
measures the tuichat of another checkout (ROOT on PYTHONPATH), in the same run. Prints one JSON
line per measurement and a table of medians. Bounded in time; leaves no process behind.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import NGIRCD, free_port, stop, wait_listening

HERE = Path(__file__).resolve().parent
BYSTANDER = HERE.parent / "tests" / "integration" / "bystander.py"
HOST = "127.0.0.1"
AT_ONCE = 50  # registrations in flight (ngircd resets connections past about 150)


def start(kind: str, port: int, tmp: str, root: str | None) -> subprocess.Popen[bytes]:
    """tuichat (of `root`, when given) without history or limits, or ngircd, on `port`."""
    if kind == "ngircd":
        import run

        return run.start("ngircd", port, tmp)
    env = dict(os.environ)
    if root is not None:
        env["PYTHONPATH"] = root
    command = [
        sys.executable, "-m", "tuichat", "serve", "--port", str(port), "--no-history",
        "--flood-rate", "0", "--max-clients-per-ip", "0", "--connects-per-minute", "0",
        "--max-clients", "0", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp
    )
    wait_listening(port, proc)
    return proc


def join_all(port: int, count: int, deadline: float) -> list[socket.socket]:
    """`count` clients registered and in #mass (PINGs answered on the way)."""
    socks: list[socket.socket] = []
    poll = select.epoll()
    inbuf: dict[int, bytes] = {}
    joined: set[int] = set()
    by_fd: dict[int, socket.socket] = {}
    while len(joined) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(joined)} of {count} joined")
        while len(socks) < count and len(socks) - len(joined) < AT_ONCE:
            sock = socket.create_connection((HOST, port))
            nick = f"m{len(socks)}"
            sock.sendall(f"NICK {nick}\r\nUSER {nick} 0 * :mass\r\nJOIN #mass\r\n".encode())
            sock.setblocking(False)
            socks.append(sock)
            by_fd[sock.fileno()] = sock
            inbuf[sock.fileno()] = b""
            poll.register(sock.fileno(), select.EPOLLIN)
        for fd, _ in poll.poll(0.05):
            sock = by_fd[fd]
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            if not data:
                raise SystemExit("a member was disconnected while joining")
            data = inbuf[fd] + data
            end = data.rfind(b"\n") + 1
            inbuf[fd] = data[end:]
            for line in data[:end].split(b"\r\n"):
                if line.startswith(b"PING"):
                    sock.sendall(b"PONG" + line[4:] + b"\r\n")
                elif b" 366 " in line:
                    joined.add(fd)
    poll.close()
    return socks


def drain(socks: list[socket.socket], seconds: float) -> None:
    """Read (and drop) what the members are sent for a while: the join burst must be over."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for sock in socks:
            try:
                while data := sock.recv(1 << 18):
                    for line in data.split(b"\r\n") if b"PING" in data else ():
                        if line.startswith(b"PING"):
                            sock.sendall(b"PONG" + line[4:] + b"\r\n")
            except BlockingIOError:
                pass
        time.sleep(0.05)


def measure(kind: str, members: int, root: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start(kind, port, tmp, root)
        try:
            deadline = time.monotonic() + 600  # ngircd joins slowly on a busy machine
            socks = join_all(port, members + 1, deadline)
            observer, leaving = socks[0], socks[1:]
            drain(socks, 1.0)
            bystander = subprocess.Popen(
                [sys.executable, str(BYSTANDER), str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert bystander.stdout is not None and bystander.stdin is not None
                if bystander.stdout.readline().strip() != "ready":
                    raise SystemExit("the bystander did not start")
                time.sleep(0.5)  # a baseline of quiet PINGs
                observer.setblocking(True)
                observer.settimeout(60)
                start_time = time.monotonic()
                for sock in leaving:
                    sock.close()
                quits = 0
                buffer = b""
                while quits < members:
                    data = observer.recv(1 << 18)
                    if not data:
                        raise SystemExit("the observer was disconnected")
                    buffer += data
                    end = buffer.rfind(b"\n") + 1
                    chunk, buffer = buffer[:end], buffer[end:]
                    quits += chunk.count(b" QUIT ")
                    if b"PING" in chunk:
                        for line in chunk.split(b"\r\n"):
                            if line.startswith(b"PING"):
                                observer.sendall(b"PONG" + line[4:] + b"\r\n")
                quit_s = time.monotonic() - start_time
                time.sleep(0.5)
                out, _ = bystander.communicate("stop\n", timeout=30)
            finally:
                if bystander.poll() is None:
                    bystander.kill()
                    bystander.wait()
            observer.close()
            result = json.loads(out.strip().splitlines()[-1])
        finally:
            stop(proc)
    pings = result["pings"]
    return {
        "server": kind if root is None or kind == "ngircd" else "tuichat-before",
        "members": members,
        "quits_s": round(quit_s, 3),
        "bystander_worst_s": round(max(pings, default=0.0), 3),
        "bystander_lost": result["lost"],
        "chat_worst_s": round(max(result["chat"], default=0.0), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--before", help="a checkout whose tuichat to measure too (old code)")
    parser.add_argument("--no-ngircd", action="store_true")
    parser.add_argument("--only-ngircd", action="store_true", help="ngircd alone")
    args = parser.parse_args()
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    kinds: list[tuple[str, str | None]] = [("tuichat", None)]
    if args.before:
        kinds.insert(0, ("tuichat", args.before))
    if args.only_ngircd:
        kinds = []
    if NGIRCD and not args.no_ngircd:
        kinds.append(("ngircd", None))
    rows: dict[str, list[dict[str, object]]] = {}
    for _ in range(args.runs):
        for kind, root in kinds:
            result = measure(kind, args.members, root)
            print(json.dumps(result), flush=True)
            rows.setdefault(str(result["server"]), []).append(result)
    print(f"\n{args.members} members closing at once, median of {args.runs}:")
    print("| server | all QUITs handled | bystander worst PING | PINGs lost |")
    print("|---|---|---|---|")
    for name, results in rows.items():
        quits = statistics.median(float(str(r["quits_s"])) for r in results)
        worst = statistics.median(float(str(r["bystander_worst_s"])) for r in results)
        lost = sum(int(str(r["bystander_lost"])) for r in results)
        print(f"| {name} | {quits:.2f} s | {worst:.2f} s | {lost} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
