"""WHO and NAMES floods (issue 10, items 4 and 7): what they do to a bystander.

    python bench/who_names.py [--tree DIR] [--only who|names] [--seconds 10]

Starts `tuichat serve` from the source tree DIR (default: this checkout; give an older checkout
for "before") with its default flood control (10 lines at once, then 2 a second) and no
per-address limits, and measures a bystander (tests/integration/bystander.py: two users
chatting and PINGing every 0.1 s from their own process) while, from one address:

- `who` (item 4): 100 connections with 480-byte realnames (USER cuts them to NAMELEN) send a
  slow WHO mask twice a second for --seconds: the issue's `*` + 240 `?` + `x`, and `*` + 50 `?`
  + `x` (the worst such mask for a 100-byte realname);
- `names` (item 7): 2,000 members of one channel; 100 of them send `NAMES #big` and `WHO #big`
  in turn, twice a second, for --seconds.

Prints, per scenario, the bystander's worst and p99 PING round trip, PINGs lost (unanswered in
10 s), how many requests were answered and how long the last answer took to come after the
flood stopped. Bounded in time; leaves no process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

from run import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[1]
BYSTANDER = ROOT / "tests" / "integration" / "bystander.py"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serve(tree: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "tuichat", "serve", "--port", str(port), "--no-history",
        "--max-clients-per-ip", "0", "--connects-per-minute", "0", "--max-clients", "0",
        "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(command, cwd=tree, env=env)
    wait_listening(port, proc)
    return proc


class Crowd:
    """Many connections on one selector: each answers PING and counts the lines that end a
    reply (315 or 366)."""

    def __init__(self, port: int, count: int) -> None:
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.partial = {sock: b"" for sock in self.socks}
        self.ends = dict.fromkeys(self.socks, 0)
        self.selector = selectors.DefaultSelector()
        for sock in self.socks:
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)

    def send(self, sock: socket.socket, data: bytes) -> None:
        sock.setblocking(True)
        sock.sendall(data)
        sock.setblocking(False)

    def pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError("the server closed a connection")
            *lines, self.partial[sock] = (self.partial[sock] + data).split(b"\r\n")
            for line in lines:
                if line.startswith(b"PING "):
                    self.send(sock, b"PONG " + line[5:] + b"\r\n")
                elif line.startswith(b":") and line.split(b" ", 2)[1] in (b"315", b"366"):
                    self.ends[sock] += 1

    def wait(self, wanted: int, timeout: float) -> bool:
        """Read until every connection has `wanted` reply ends; False after `timeout` s."""
        deadline = time.monotonic() + timeout
        while min(self.ends.values()) < wanted:
            if time.monotonic() > deadline:
                return False
            self.pump(0.1)
        return True

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.selector.close()


def register(crowd: Crowd, realname: str, channel: str | None, prefix: str) -> None:
    join = f"JOIN {channel}\r\n" if channel else "PING :registered\r\n"
    for i, sock in enumerate(crowd.socks):
        nick = f"{prefix}{i:04d}"
        crowd.send(sock, f"NICK {nick}\r\nUSER {nick} 0 * :{realname}\r\n{join}".encode())
        crowd.pump(0)
    if channel:
        if not crowd.wait(1, 600):
            raise RuntimeError("the members did not all join")
        for sock in crowd.socks:
            crowd.ends[sock] = 0


def flood(
    proc: subprocess.Popen[bytes],
    port: int,
    crowd: Crowd,
    flooders: int,
    requests: list[bytes],
    seconds: float,
) -> dict[str, object]:
    """`flooders` of the crowd send `requests` in turn, twice a second each, while a bystander
    measures; returns its figures and how the replies came."""
    bystander = subprocess.Popen(
        [sys.executable, str(BYSTANDER), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert bystander.stdout is not None
        if bystander.stdout.readline().strip() != "ready":
            raise RuntimeError("the bystander did not start")
        socks = crowd.socks[:flooders]
        sent = 0
        cpu = cpu_seconds(proc.pid)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            for sock in socks:
                crowd.send(sock, requests[sent % len(requests)])
            sent += 1
            tick = start + sent * 0.5
            while time.monotonic() < tick:
                crowd.pump(max(0.0, tick - time.monotonic()))
        stopped = time.monotonic()
        wanted = sent
        answered = crowd.wait(wanted, 30)
        drained = time.monotonic() - stopped
        cpu = cpu_seconds(proc.pid) - cpu
        out, _ = bystander.communicate("stop\n", timeout=60)
    finally:
        if bystander.poll() is None:
            bystander.kill()
            bystander.wait()
    last = out.strip().splitlines()[-1:] if out else []
    if not last or not last[0].startswith("{"):
        # its connection was closed: its PINGs and chat piled up past the flood queue while the
        # server did not answer, so it stalled for 10 s or more
        return {
            "bystander": "cut off (Excess Flood after a stall)",
            "requests": sent * flooders,
            "answered": sum(min(n, sent) for n in list(crowd.ends.values())[:flooders]),
        }
    result = json.loads(last[0])
    pings = sorted(result["pings"])
    return {
        "worst_s": round(max(pings, default=0.0), 3),
        "p99_s": round(pings[min(len(pings) - 1, int(len(pings) * 0.99))], 3) if pings else 0.0,
        "lost": result["lost"],
        "requests": wanted * flooders,
        "answered": sum(min(n, wanted) for n in list(crowd.ends.values())[:flooders]),
        "all_answered": answered,
        "last_answer_after_s": round(drained, 2),
        "server_cpu_s": round(cpu, 1),
    }


def scenario_who(tree: Path, seconds: float, mask: str) -> dict[str, object]:
    port = free_port()
    proc = serve(tree, port)
    crowd = None
    try:
        crowd = Crowd(port, 100)
        register(crowd, "a" * 480, None, "who")
        return flood(proc, port, crowd, 100, [f"WHO {mask}\r\n".encode()], seconds)
    finally:
        if crowd is not None:
            crowd.close()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def scenario_names(tree: Path, seconds: float, members: int) -> dict[str, object]:
    port = free_port()
    proc = serve(tree, port)
    crowd = None
    try:
        crowd = Crowd(port, members)
        began = time.monotonic()
        register(crowd, "a member of a big channel", "#big", "m")
        joined = time.monotonic() - began
        result = flood(proc, port, crowd, 100, [b"NAMES #big\r\n", b"WHO #big\r\n"], seconds)
        result["join_s"] = round(joined, 1)
        return result
    finally:
        if crowd is not None:
            crowd.close()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree of the server")
    parser.add_argument("--only", choices=("who", "names"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--members", type=int, default=2000)
    args = parser.parse_args()
    tree = args.tree.resolve()
    if args.only in (None, "who"):
        for mask in ("*" + "?" * 240 + "x", "*" + "?" * 50 + "x"):
            result = scenario_who(tree, args.seconds, mask)
            print(f"who  mask=*+{mask.count('?')}?+x  {json.dumps(result)}", flush=True)
    if args.only in (None, "names"):
        result = scenario_names(tree, args.seconds, args.members)
        print(f"names members={args.members}  {json.dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
