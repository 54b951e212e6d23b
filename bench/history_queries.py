"""CHATHISTORY on a big history: how long each query takes, how long it holds the state lock, and
what ten connections asking at the normal flood rate do to a bystander.

    python bench/history_queries.py [--tree DIR] [--rows 250000] [--total 500000] [--runs 5]
                                    [--seconds 10]

`--tree` is the checkout whose `tuichat/` is measured (default: this one): run it once with an
older checkout (`--tree /path/to/old`) for the "before" figures. The history is written straight
into a fresh SQLite file (SQLite generates the rows, in the schema of that checkout's store):
`--rows` messages in #big, one every 10 ms ending a minute ago, and as many more as make
`--total`, spread over 100 channels and 1,000 private conversations.

1. Queries, one at a time, on a server in this process without flood control: for each query,
   `--runs` times, the time from sending it to the end of its batch, and the longest time the
   server held its state lock meanwhile (the lock is wrapped to time every hold).
2. Live: a fresh server with the default flood control (burst 10, 2 lines/s); ten connections
   send timestamp-bounded BEFORE, BETWEEN and TARGETS (the burst, then 2 a second) for
   `--seconds`, while `tests/integration/bystander.py` (another process) chats and PINGs every
   0.1 s: its worst and p99 ping, PINGs lost (unanswered in 10 s), and this process's CPU use.

Prints one line per figure, and a JSON object at the end. Loopback only; bounded in time (the
live part gives up on answers 60 s after the end); leaves no process behind.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BYSTANDER = HERE.parent / "tests" / "integration" / "bystander.py"
CAPS = "batch server-time message-tags draft/chathistory"
FAR_PAST, FAR_FUTURE = "timestamp=2000-01-01T00:00:00.000Z", "timestamp=2100-01-01T00:00:00.000Z"
QUERIES = {
    "BEFORE timestamp": f"CHATHISTORY BEFORE #big {FAR_FUTURE} 100",
    "BETWEEN timestamps": f"CHATHISTORY BETWEEN #big {FAR_PAST} {FAR_FUTURE} 100",
    "AFTER timestamp": f"CHATHISTORY AFTER #big {FAR_PAST} 100",
    "LATEST *": "CHATHISTORY LATEST #big * 100",
    "TARGETS all time": f"CHATHISTORY TARGETS {FAR_PAST} {FAR_FUTURE} 100",
}
LIVE = [QUERIES["BEFORE timestamp"], QUERIES["BETWEEN timestamps"], QUERIES["TARGETS all time"]]


class TimedLock:
    """A `threading.Lock` that remembers how long each hold lasted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since = 0.0
        self.holds: list[tuple[float, float]] = []  # (when it began, how long), perf_counter

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        got = self._lock.acquire(blocking, timeout)
        if got:
            self._since = time.perf_counter()
        return got

    def release(self) -> None:
        self.holds.append((self._since, time.perf_counter() - self._since))
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def build(path: Path, schema: str, rows: int, total: int) -> None:
    """#big with `rows` messages, and `total - rows` more over other conversations."""
    newest = int(time.time() * 1000) - 60_000
    first = newest - 10 * (rows - 1)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(schema)
        db.execute("BEGIN")
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO messages (msgid, time, key, target, source, command, text) "
            "SELECT printf('big%x', i), ? + 10 * i, '#big', '#big', 'speaker!~s@127.0.0.1', "
            "'PRIVMSG', 'message ' || i FROM n",
            (rows - 1, first),
        )
        others = total - rows
        if others > 0:
            db.execute(
                "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                "INSERT INTO messages (msgid, time, key, target, source, command, text) "
                "SELECT printf('other%x', i), ? + (i * ?) / ?, "
                "CASE WHEN i % 2 = 0 THEN '#c' || (i % 100) "
                "ELSE 'p' || (i % 1000) || ' q' || (i % 1000) END, "
                "'x', 'speaker!~s@127.0.0.1', 'PRIVMSG', 'other ' || i FROM n",
                (others - 1, first, 10 * rows, others),
            )
        db.execute("COMMIT")


class Reader:
    """A raw client: registers with CAPS, joins #big, counts the ends of batches it gets."""

    def __init__(self, port: int, nick: str, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=30, source_address=(source, 0)
        )
        self.nick = nick
        self.buffer = b""
        self.ends = 0
        self.fails = 0
        self.send(f"CAP LS 302\r\nCAP REQ :{CAPS}\r\nNICK {nick}\r\nUSER {nick} 0 * :r\r\nCAP END")
        self.until(rb" 376 | 422 ")
        self.send("JOIN #big")
        self.until(rb" 366 ")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def until(self, pattern: bytes) -> None:
        while True:
            for line in self.read():
                if re.search(pattern, line):
                    return

    def read(self) -> list[bytes]:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError(f"{self.nick}: closed")
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        for line in lines:
            if line.startswith(b"PING "):
                self.sock.sendall(b"PONG " + line[5:] + b"\r\n")
            elif re.match(rb"^:\S+ BATCH -", line):
                self.ends += 1
            elif b" FAIL " in line:
                self.fails += 1
        return lines

    def close(self) -> None:
        with suppress(OSError):
            self.sock.sendall(b"QUIT\r\n")
        self.sock.close()


def start(tuichat: Any, db: Path, flood: bool) -> Any:
    config = tuichat.server.ServerConfig(
        host="127.0.0.1", port=0, db=str(db), max_per_ip=0, connects_per_minute=0,
        state=tuichat.state.Config(),
    )  # fmt: skip
    if not flood:
        config.flood_rate = 0
    server = tuichat.server.Server(config)
    server.lock = TimedLock()
    server.start()
    return server


def queries(tuichat: Any, db: Path, runs: int) -> dict[str, dict[str, float]]:
    server = start(tuichat, db, flood=False)
    results: dict[str, dict[str, float]] = {}
    try:
        reader = Reader(server.port, "timer")
        for name, query in QUERIES.items():
            took, held = [], []
            for _ in range(runs):
                begin, ends = time.perf_counter(), reader.ends
                reader.send(query)
                while reader.ends == ends:
                    reader.read()
                took.append((time.perf_counter() - begin) * 1000)
                time.sleep(0.05)  # let the answer's last hold end (not synchronisation: a pause)
                holds = [hold for since, hold in server.lock.holds if since >= begin]
                server.lock.holds.clear()
                held.append(max(holds, default=0.0) * 1000)
            results[name] = {
                "median_ms": statistics.median(took), "max_ms": max(took),
                "lock_median_ms": statistics.median(held), "lock_max_ms": max(held),
            }  # fmt: skip
            print(
                f"{name:>20}: {statistics.median(took):7.1f} ms median, {max(took):7.1f} max; "
                f"lock held {statistics.median(held):7.1f} ms median, {max(held):7.1f} max",
                flush=True,
            )
        reader.close()
    finally:
        server.stop()
    return results


def live(tuichat: Any, db: Path, seconds: float) -> dict[str, float]:
    server = start(tuichat, db, flood=True)
    readers: list[Reader] = []
    bystander = None
    try:
        readers = [Reader(server.port, f"flood{i}", f"127.0.0.{2 + i}") for i in range(10)]
        bystander = subprocess.Popen(
            [sys.executable, str(BYSTANDER), str(server.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert bystander.stdout is not None
        if bystander.stdout.readline().strip() != "ready":
            raise RuntimeError("the bystander did not start")
        per_client = 10 + int(2 * seconds)  # the burst, then the flood rate for `seconds`
        cpu, wall = time.process_time(), time.monotonic()
        for reader in readers:  # the server paces them at its flood rate
            reader.send("\r\n".join(LIVE[n % len(LIVE)] for n in range(per_client)))
        stop = threading.Event()

        def drain(reader: Reader) -> None:
            reader.sock.settimeout(0.5)
            while not stop.is_set() and reader.ends < per_client:
                try:
                    reader.read()
                except (TimeoutError, OSError):
                    continue

        threads = [threading.Thread(target=drain, args=(r,), daemon=True) for r in readers]
        for thread in threads:
            thread.start()
        time.sleep(seconds)  # a benchmark's measuring period, not synchronisation
        out, _ = bystander.communicate("stop\n", timeout=60)
        deadline = time.monotonic() + 60
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        done = time.monotonic()
        cpu = time.process_time() - cpu
        stop.set()
        for thread in threads:
            thread.join(2)
        result = json.loads(out.strip().splitlines()[-1])
        pings = sorted(result["pings"])
        answered = sum(reader.ends for reader in readers)
        figures = {
            "worst_ping_s": max(pings, default=0.0),
            "p99_ping_s": pings[min(len(pings) - 1, int(len(pings) * 0.99))] if pings else 0.0,
            "pings_lost": result["lost"],
            "chat_lost": result["chat_lost"],
            "queries_sent": 10 * per_client,
            "queries_answered": answered,
            "answers_took_s": done - wall,
            "cpu_percent": 100 * cpu / (done - wall),
        }
        print(
            f"live: worst ping {figures['worst_ping_s']:.3f} s, p99 {figures['p99_ping_s']:.3f} s, "
            f"{result['lost']} PINGs lost, {result['chat_lost']} chat lines lost; "
            f"{answered}/{10 * per_client} queries answered in {done - wall:.1f} s; "
            f"CPU {figures['cpu_percent']:.0f}% of a core",
            flush=True,
        )
        return figures
    finally:
        if bystander is not None and bystander.poll() is None:
            bystander.kill()
            bystander.wait()
        for reader in readers:
            reader.close()
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent)
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--total", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    import tuichat.server
    import tuichat.state
    import tuichat.store

    print(f"tuichat from {Path(tuichat.__file__).parent}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "big.db"
        began = time.monotonic()
        build(db, tuichat.store.SCHEMA, args.rows, args.total)
        print(
            f"history: {args.rows} in #big, {args.total} in all ({time.monotonic() - began:.1f} s)"
        )
        report = {"tree": str(args.tree), "queries": queries(tuichat, db, args.runs)}
        report["live"] = live(tuichat, db, args.seconds)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
