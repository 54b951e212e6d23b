"""The client against a hostile server: floods no real server sends, and the keyboard meanwhile.

    python bench/client_backpressure.py [--tree DIR] [--only NAME] [--timeout 150]

A raw-socket fake server on 127.0.0.1 port 0 welcomes the app (run headless under Textual's
`run_test`, in a child process per scenario) and floods it:

- `names`: a JOIN of #big and a NAMES reply of 100,000 members (2,500 lines of 40 names);
- `lines`: 100,000 PRIVMSGs into #big (the window on show);
- `batch`: 200,000 `BATCH +id chathistory #big` that never end, then one line;
- `queries`: private messages from 2,000 different nicks.

Once the screen is first drawn (ten turns in a row of the event loop on time), the flood starts;
meanwhile a key is sent every 50 ms through the driver (as a terminal's key arrives) and timed
until the input line holds it, and a heartbeat task records the longest time the event loop did
not turn (what a key pressed at the worst moment would wait). Each scenario ends when the app
shows the flood's last item (the member count, the last line, the line after the batches, the
last stranger) or at `--timeout`.
Prints, per scenario, one JSON object: key latency (p50, max, count), seconds until done, the
growth of the process's resident memory, and what the app kept (open batches, windows, member
list options). `--tree DIR` runs the tuichat package found in DIR instead of this checkout's
(for "before" figures: `git archive <old commit> | tar -x -C /tmp/old`, then `--tree /tmp/old`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = ("names", "lines", "batch", "queries")
JOINED = ":me!~me@host JOIN #big"


def flood_lines(name: str) -> tuple[list[str], str]:
    """The scenario's lines, and what the app shows once it has taken all of them."""
    if name == "names":
        members = 100_000
        nicks = [f"user{i:06d}" for i in range(members)]
        replies = [
            f":fake.example 353 me = #big :{' '.join(nicks[i : i + 40])}"
            for i in range(0, members, 40)
        ]
        return [JOINED, *replies, ":fake.example 366 me #big :End of /NAMES list."], "members"
    if name == "lines":
        lines = [f":bob!~b@h PRIVMSG #big :flood line {i:06d} {'x' * 60}" for i in range(100_000)]
        return [JOINED, *lines], "flood line 099999"
    if name == "batch":
        batches = [f"BATCH +b{i} chathistory #big" for i in range(200_000)]
        return [JOINED, *batches, ":bob!~b@h PRIVMSG #big :after the batches"], "after the batches"
    if name == "queries":
        return [f":s{i}!~s@h PRIVMSG me :hello from {i}" for i in range(2000)], "hello from 1999"
    raise SystemExit(f"no scenario {name!r}")


class FakeServer:
    """Accepts one client, sends 001 after its USER, then the flood from a thread of its own."""

    def __init__(self, lines: list[str]) -> None:
        # the JOIN goes with the welcome; the rest waits for `go`
        self.prelude = b"".join(line.encode() + b"\r\n" for line in lines[:1] if line == JOINED)
        lines = lines[len(self.prelude and lines[:1]) :]
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.data = [
            ("\r\n".join(lines[i : i + 500]) + "\r\n").encode() for i in range(0, len(lines), 500)
        ]
        self.conn: socket.socket | None = None
        self.go = threading.Event()  # the flood waits for this (the measurement has started)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conn = conn
        seen = b""
        while b"USER " not in seen:
            data = conn.recv(65536)
            if not data:
                return
            seen += data
        threading.Thread(target=self._drain, args=(conn,), daemon=True).start()
        try:
            conn.sendall(b":fake.example 001 me :Welcome\r\n" + self.prelude)
            self.go.wait()
            for piece in self.data:
                conn.sendall(piece)
        except OSError:
            return

    def _drain(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while conn.recv(65536):
                pass

    def close(self) -> None:
        for sock in (self.conn, self.listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_scenario(name: str, timeout: float) -> dict[str, object]:
    from textual import events
    from textual.widgets import OptionList

    from tuichat.app import TuichatApp
    from tuichat.net.client import ClientConfig
    from tuichat.widgets.input_line import InputLine

    lines, done_text = flood_lines(name)
    total_members = sum(len(line.split(":")[-1].split()) for line in lines if " 353 " in line) + 1
    server = FakeServer(lines)
    del lines
    channels = [] if name == "queries" else ["#big"]
    app = TuichatApp(ClientConfig("127.0.0.1", server.port, nick="me"), channels=channels)

    def done() -> bool:
        if name == "names":
            title = app.query_one("#member-list", OptionList).border_title
            return title == f"{total_members} users"
        keys = ["#big"] if name != "queries" else list(app.logs)
        for key in keys:
            log = app.logs.get(key)
            rows = log.rows[-3:] if log is not None else []
            if any(row.entry is not None and done_text in row.entry.text for row in rows):
                return True
        return False

    keys: list[float] = []
    result: dict[str, object] = {"scenario": name}
    try:
        async with app.run_test(size=(120, 40)):
            start_rss = rss_mb()
            peak = start_rss
            line = app.query_one("#input", InputLine)
            driver = app._driver
            assert driver is not None
            if channels:  # in #big before the flood, as the user would be
                while "#big" not in app.logs:
                    await asyncio.sleep(0.01)
            # the first drawing of the screen (and of #big's window) is done before the flood:
            # ten turns in a row of the event loop within 5 ms of when they were due
            calm = 0
            while calm < 10:
                tick = time.perf_counter()
                await asyncio.sleep(0.01)
                calm = calm + 1 if time.perf_counter() - tick < 0.015 else 0
            stalls: list[float] = [0.0]

            async def heartbeat() -> None:
                # the longest the event loop went without turning: what a key could have waited
                while True:
                    tick = time.perf_counter()
                    await asyncio.sleep(0.01)
                    stalls.append(time.perf_counter() - tick - 0.01)
                    if len(stalls) > 1:
                        stalls[:] = [max(stalls)]

            beat = asyncio.create_task(heartbeat())
            server.go.set()
            start = time.monotonic()
            finished: float | None = None
            while time.monotonic() - start < timeout:
                if done():
                    finished = time.monotonic() - start
                    break
                before = line.value
                key = events.Key("x", "x")
                key.set_sender(app)
                pressed = time.perf_counter()
                driver.send_message(key)
                limit = pressed + timeout
                while line.value == before and time.perf_counter() < limit:
                    await asyncio.sleep(0.0005)
                keys.append(time.perf_counter() - pressed)
                peak = max(peak, rss_mb())
                print(json.dumps({"key_ms": round(keys[-1] * 1000, 1)}), flush=True)
                await asyncio.sleep(0.05)
            beat.cancel()
            member_list = app.query_one("#member-list", OptionList)
            big = app.logs.get("#big")
            entries = [row.entry for row in big.rows if row.entry is not None] if big else []
            result.update(
                done_s=None if finished is None else round(finished, 2),
                key_p50_ms=round(statistics.median(keys) * 1000, 1) if keys else None,
                key_max_ms=round(max(keys) * 1000, 1) if keys else None,
                keys=len(keys),
                stall_max_ms=round(max(stalls) * 1000, 1),
                rss_growth_mb=round(peak - start_rss, 1),
                open_batches=len(app.state.batches),
                windows=len(app.state.windows),
                member_options=member_list.option_count,
                last_line=entries[-1].text[:24] if entries else None,
            )
            app.exit()
    finally:
        server.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="the directory holding the tuichat package to measure")
    parser.add_argument("--only", choices=SCENARIOS)
    parser.add_argument("--timeout", type=float, default=150.0)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)  # the child's
    args = parser.parse_args()
    tree = str(Path(args.tree).resolve()) if args.tree else str(HERE.parent)
    if args.scenario:
        sys.path.insert(0, tree)
        result = asyncio.run(run_scenario(args.scenario, args.timeout))
        print(json.dumps(result), flush=True)
        return 0
    for name in [args.only] if args.only else SCENARIOS:
        command = [sys.executable, __file__, "--scenario", name, "--timeout", str(args.timeout)]
        command += ["--tree", tree]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        # a child frozen by the flood cannot stop itself: it is killed a while after the limit
        watchdog = threading.Timer(args.timeout + 30, child.kill)
        watchdog.start()
        keys: list[float] = []
        final: dict[str, object] | None = None
        try:
            assert child.stdout is not None
            for text in child.stdout:
                record = json.loads(text)
                if "key_ms" in record:
                    keys.append(record["key_ms"])
                else:
                    final = record
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
            child.wait()
        if final is None:  # the child did not finish: what it measured until then
            final = {"scenario": name, "done_s": None, "key_max_ms": max(keys, default=None)}
            final["keys"] = len(keys)
            final["note"] = f"killed {args.timeout + 30:.0f} s in: a key was still waiting"
        print(json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
