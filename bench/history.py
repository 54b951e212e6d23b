"""Messages per second through a tuichat server with history on (SQLite) and off.

    python bench/history.py [--messages 20000] [--senders 10] [--members 20] [--runs 3]

Runs bench/loadgen.py (S senders with M/S PRIVMSGs each into one channel, as fast as they can,
every member reading) against a fresh `tuichat serve`, once with `--db` in a temporary directory
and once with `--no-history`. Reports messages/s (accepted and delivered to every member) and
the ratio history-on / history-off, median of the runs. Bounded in time; leaves no process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from run import measure, number


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = ["--clients", str(args.members), "--senders", str(args.senders),
            "--messages", str(args.messages)]  # fmt: skip
    results: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for mode in ("off", "on"):
                db = os.path.join(tmp, f"{i}.db") if mode == "on" else None
                result = measure("tuichat", load, tmp, db)
                lost = result.get("lost")
                if "error" in result or lost:
                    raise SystemExit(f"history {mode}: {result.get('error') or f'{lost} lost'}")
                rate = number(result, "sent") / number(result, "seconds")
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
