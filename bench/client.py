"""The client under a flood: the Textual app, headless, in a channel fed at a fixed rate.

    python bench/client.py [--rate 2000] [--seconds 10] [--runs 3]

`tuichat serve` runs as its own process; bench/loadgen.py (another process) sends `--rate` lines
a second into #load0, where the app (this process, under Textual's `run_test`) sits. Every line
carries its send time, so the app's log records how far behind the socket each line was shown.
Meanwhile a key is pressed every 100 ms (through the driver, as a terminal's key arrives), and
the time until the input line holds it is measured. Prints medians over the runs as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual import events

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import free_port, start, stop  # noqa: E402

from tuichat.app import TuichatApp  # noqa: E402
from tuichat.client_state import Entry  # noqa: E402
from tuichat.net import client as net  # noqa: E402
from tuichat.widgets.chat_log import ChatLog  # noqa: E402
from tuichat.widgets.input_line import InputLine  # noqa: E402

CHANNEL = "#load0"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def _until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("the app did not get there in time")
        await asyncio.sleep(0.01)


async def one_run(rate: float, seconds: float, tmp: str) -> dict[str, float]:
    gc.collect()  # what the last run left, collected now, not during this one
    port = free_port()
    shown: list[float] = []  # seconds behind the sender, per line shown
    original_add = ChatLog.add

    def add(log: ChatLog, entry: Entry) -> None:
        original_add(log, entry)
        if entry.text.startswith("LOAD "):
            shown.append(time.time() - float(entry.text.split(" ")[3]))

    keys: list[float] = []
    feeder: asyncio.subprocess.Process | None = None
    server = start("tuichat", port, tmp)
    try:
        ChatLog.add = add  # type: ignore[method-assign,assignment]
        app = TuichatApp(net.ClientConfig("127.0.0.1", port, nick="viewer"), channels=[CHANNEL])
        async with app.run_test(size=(120, 40)) as pilot:
            await _until(lambda: CHANNEL in app.logs, 10)
            feeder = await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "loadgen.py"), "--port", str(port),
                "--clients", "1", "--senders", "1", "--rate", str(rate),
                "--seconds", str(seconds), "--duration", str(seconds + 30),
                stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            line = app.query_one("#input", InputLine)
            driver = app._driver
            assert driver is not None
            await _until(lambda: len(shown) > 0, 10)
            end = time.monotonic() + seconds - 0.5
            while time.monotonic() < end:
                before = line.value
                key = events.Key("x", "x")
                key.set_sender(app)
                pressed = time.perf_counter()
                driver.send_message(key)
                while line.value == before:
                    await asyncio.sleep(0.0005)
                keys.append(time.perf_counter() - pressed)
                await asyncio.sleep(0.1)
            await feeder.wait()
            expected = int(rate * seconds)
            await _until(lambda: len(shown) >= expected, 30)
            await pilot.pause()
    finally:
        ChatLog.add = original_add  # type: ignore[method-assign]
        if feeder is not None and feeder.returncode is None:
            feeder.kill()
            await feeder.wait()
        stop(server)
    return {
        "lines_shown": len(shown),
        "behind_p50_ms": statistics.median(shown) * 1000,
        "behind_p99_ms": _percentile(shown, 0.99) * 1000,
        "behind_max_ms": max(shown) * 1000,
        "key_p50_ms": statistics.median(keys) * 1000,
        "key_p99_ms": _percentile(keys, 0.99) * 1000,
        "key_max_ms": max(keys) * 1000,
        "keys": len(keys),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            result = asyncio.run(one_run(args.rate, args.seconds, tmp))
            print(json.dumps({k: round(v, 1) for k, v in result.items()}), flush=True)
            results.append(result)
    medians = {key: round(statistics.median(r[key] for r in results), 1) for key in results[0]}
    print(json.dumps({"median": medians}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
