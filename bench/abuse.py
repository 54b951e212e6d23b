"""What one address (or ten) can do against a tuichat server in a few seconds: password guesses
(OPER, SASL), accounts registered, read-marker rows for made-up targets, history stored.

    python bench/abuse.py [--seconds 10] [--before-ref REF] [--only oper,sasl]

Each scenario starts a fresh `tuichat serve` (default limits: flood control on, the
per-address limits on, except where a scenario says) with history in a temporary directory,
runs its clients for --seconds, and prints the rate it reached. With --before-ref, every
scenario runs first against that commit's code (`git archive` into a temporary directory) and
then against the working tree, in the same run. Loopback only; bounded in time; leaves no
process behind.

Scenarios (the figures of issue 10, items 9 and 12):
- oper: 50 connections of one address send OPER with wrong passwords as fast as they are
  answered: checked guesses a second (464), refused unchecked (491);
- sasl: 10 connection loops from one address, AUTHENTICATE PLAIN with wrong passwords for one
  account, reconnecting when closed: checked guesses a minute (904 "failed");
- sasl10: the same from 10 addresses (127.0.0.2-11), 5 loops each;
- register: 5 loops from one address: connect, REGISTER a new account, quit: accounts a minute;
- markers: one account sends MARKREAD for made-up targets: rows stored an hour;
- history: 100 connections of one address (connects-per-minute off) each say 400-byte lines
  in one channel at the flood rate: history bytes stored an hour (from the rows' sizes).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPER = "tester:tester-password"
PASSWORD = "correct-horse-battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Serve:
    """`tuichat serve` from the source tree `code`, on a free port, history in `db`."""

    def __init__(self, code: Path, db: str, extra: list[str]) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(code))
        command = [sys.executable, "-m", "tuichat", "serve", "--port", str(self.port),
                   "--db", db, "--oper", OPER, "--log-level", "warning", *extra]  # fmt: skip
        # run from `code`: `python -m` puts the working directory first on the path
        self.proc = subprocess.Popen(
            command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Conn:
    """A blocking line client with a deadline on every read."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError):  # closed by the server: the next expect says so
            self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, pattern: str, deadline: float) -> str | None:
        """The first line matching `pattern`; None at the deadline or when closed."""
        regex = re.compile(pattern)
        while True:
            while b"\n" in self.buf:
                raw, self.buf = self.buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                if line.startswith("PING "):
                    self.send("PONG " + line[5:])
                if regex.search(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                return None
            if not data:
                return None
            self.buf += data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def run_loops(count: int, loop: Callable[[int, float], None], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=loop, args=(i, deadline), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)


def register(conn: Conn, nick: str, deadline: float, caps: str = "") -> bool:
    if caps:
        conn.send(f"CAP REQ :{caps}")
    conn.send(f"NICK {nick}")
    conn.send(f"USER {nick} 0 * :bench")
    if caps:
        conn.send("CAP END")
    return conn.expect(r" (376|422) ", deadline) is not None


def oper(port: int, seconds: float, tally: Counter[str]) -> None:
    def loop(i: int, deadline: float) -> None:
        conn = Conn(port)
        try:
            if not register(conn, f"op{i}", deadline):
                return
            n = 0
            while time.monotonic() < deadline:
                n += 1
                conn.send(f"OPER tester guess-{i}-{n}")
                reply = conn.expect(r" (381|464|491) ", deadline)
                if reply is None:
                    return
                tally[reply.split()[1]] += 1
        finally:
            conn.close()

    run_loops(50, loop, seconds)


def sasl_loops(
    port: int, seconds: float, tally: Counter[str], sources: list[str], per: int
) -> None:
    payload = base64.b64encode(b"\0victim\0wrong-password").decode()

    def loop(i: int, deadline: float) -> None:
        source = sources[i % len(sources)]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                conn = Conn(port, source)
            except OSError:
                time.sleep(0.2)
                continue
            try:
                conn.send("CAP REQ :sasl")
                conn.send(f"NICK g{i}x{n}")
                conn.send("USER g 0 * :bench")
                while time.monotonic() < deadline:
                    conn.send("AUTHENTICATE PLAIN")
                    if conn.expect(r"^AUTHENTICATE \+| 90[4-7] ", deadline) is None:
                        break
                    conn.send("AUTHENTICATE " + payload)
                    reply = conn.expect(r" 90[34] ", deadline)
                    if reply is None:
                        break  # closed after 3 failures (or the deadline)
                    tally["refused" if "try again" in reply else "checked"] += 1
            finally:
                conn.close()
            if n > 1000:
                return

    run_loops(len(sources) * per, loop, seconds)


def make_victim(port: int) -> None:
    conn = Conn(port, "127.0.0.250")
    deadline = time.monotonic() + 10
    register(conn, "victim", deadline)
    conn.send(f"REGISTER * * {PASSWORD}")
    assert conn.expect(r" REGISTER SUCCESS ", deadline), "cannot register the victim"
    conn.close()


def registrations(port: int, seconds: float, tally: Counter[str]) -> None:
    def loop(i: int, deadline: float) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            try:
                conn = Conn(port)
            except OSError:
                time.sleep(0.2)
                continue
            try:
                if not register(conn, f"r{i}x{n}", deadline):
                    time.sleep(0.2)  # refused: connecting too fast
                    continue
                conn.send(f"REGISTER * * {PASSWORD}")
                reply = conn.expect(r" (REGISTER SUCCESS|FAIL REGISTER) ", deadline)
                if reply is not None:
                    tally["created" if "SUCCESS" in reply else "refused"] += 1
                conn.send("QUIT")
            finally:
                conn.close()

    run_loops(5, loop, seconds)


def markers(port: int, seconds: float, tally: Counter[str]) -> None:
    deadline = time.monotonic() + seconds
    conn = Conn(port)
    try:
        register(conn, "marker", deadline, caps="draft/read-marker")
        conn.send(f"REGISTER * * {PASSWORD}")
        conn.expect(r" REGISTER SUCCESS ", deadline)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            conn.send(f"MARKREAD #made-up-{n} timestamp=2026-01-01T00:00:00.000Z")
            if conn.expect(r" MARKREAD ", deadline) is None:
                break
            tally["sent"] += 1
    finally:
        conn.close()


def history(port: int, seconds: float, tally: Counter[str]) -> None:
    text = "x" * 400

    def loop(i: int, deadline: float) -> None:
        conn = Conn(port)
        try:
            if not register(conn, f"h{i}", deadline):
                return
            conn.send("JOIN #flood")
            if conn.expect(r" 366 ", deadline) is None:
                return
            n = 0
            while time.monotonic() < deadline:
                n += 1
                conn.send(f"PRIVMSG #flood :{n} {text}")
                conn.send(f"PING p{n}")  # answered once the flood control let the line through
                if conn.expect(rf"PONG \S+ :?p{n}$", deadline) is None:
                    return
        finally:
            conn.close()

    run_loops(100, loop, seconds)


def stored_bytes(db: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(LENGTH(text) + LENGTH(source) + LENGTH(target) + 3 * LENGTH(key)"
            " + LENGTH(msgid) + 48), 0) FROM messages"
        ).fetchone()
    return int(row[0])


def count(db: str, table: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def scenario(name: str, code: Path, tmp: str, seconds: float, quota: float | None) -> str:
    db = os.path.join(tmp, f"{name}-{time.monotonic_ns()}.db")
    extra = ["--connects-per-minute", "0"] if name == "history" else []
    if name == "history" and quota is not None:
        extra += ["--history-quota-per-address", str(quota)]
    server = Serve(code, db, extra)
    tally: Counter[str] = Counter()
    start = time.monotonic()
    try:
        if name == "oper":
            oper(server.port, seconds, tally)
        elif name in ("sasl", "sasl10"):
            make_victim(server.port)
            start = time.monotonic()
            if name == "sasl":
                sasl_loops(server.port, seconds, tally, ["127.0.0.1"], 10)
            else:
                sasl_loops(server.port, seconds, tally, [f"127.0.0.{i}" for i in range(2, 12)], 5)
        elif name == "register":
            registrations(server.port, seconds, tally)
        elif name == "markers":
            markers(server.port, seconds, tally)
        elif name == "history":
            history(server.port, seconds, tally)
    finally:
        elapsed = time.monotonic() - start
        server.stop()
    if name == "oper":
        return (f"{tally['464'] / elapsed:7.1f} guesses checked/s "
                f"({tally['491']} refused unchecked, {tally['381']} right)")  # fmt: skip
    if name.startswith("sasl"):
        return (f"{tally['checked'] * 60 / elapsed:7.0f} guesses checked/min "
                f"({tally['refused']} refused unchecked)")  # fmt: skip
    if name == "register":
        accounts = count(db, "accounts")
        return (f"{accounts * 60 / elapsed:7.0f} accounts/min ({accounts} in {elapsed:.0f} s, "
                f"{tally['refused']} refused)")  # fmt: skip
    if name == "markers":
        rows = count(db, "read_markers")
        return f"{rows * 3600 / elapsed:9.0f} marker rows/hour ({tally['sent']} sent)"
    size = stored_bytes(db)
    return (f"{size * 3600 / elapsed / 1e9:7.2f} GB of history/hour ({size / 1e6:.1f} MB, "
            f"{count(db, 'messages')} rows in {elapsed:.0f} s)")  # fmt: skip


SCENARIOS = ["oper", "sasl", "sasl10", "register", "markers", "history"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--before-ref", help="also run each scenario against this commit first")
    parser.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument(
        "--history-quota",
        type=float,
        metavar="MIB",
        help="history: --history-quota-per-address for the working tree's server (the default, "
        "64 MiB a day, is not reached in a short run)",
    )
    args = parser.parse_args()
    names = args.only.split(",") if args.only else SCENARIOS
    with tempfile.TemporaryDirectory() as tmp:
        codes = [("after", ROOT)]
        if args.before_ref:
            before = Path(tmp) / "before"
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.before_ref, "tuichat"],
                check=True,
                capture_output=True,
            ).stdout
            with tarfile.open(fileobj=BytesIO(archive)) as tar:
                tar.extractall(before, filter="data")
            codes.insert(0, ("before", before))
        for name in names:
            for label, code in codes:
                quota = args.history_quota if label == "after" else None
                result = scenario(name, code, tmp, args.seconds, quota)
                print(f"{name:>9} {label:>6}: {result}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
