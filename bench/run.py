"""Run the load scenarios against tuichat and ngircd (when installed) and print a table of ratios.

    python bench/run.py [--runs 3] [--quick]

Each server is started fresh for each run on a free loopback port, loaded with bench/loadgen.py,
and stopped; the table gives the median of the runs and tuichat / ngircd. Bounded in time; leaves
no process behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NGIRCD = shutil.which("ngircd") or (
    "/usr/sbin/ngircd" if os.path.exists("/usr/sbin/ngircd") else None
)

# (label, loadgen arguments, the figure to compare, higher is better)
SCENARIOS = [
    ("N=10, S=10, unlimited", ["--clients", "10", "--senders", "10", "--messages", "50000"],
     "deliveries_per_s", True),
    ("N=100, S=10, unlimited", ["--clients", "100", "--senders", "10", "--messages", "20000"],
     "deliveries_per_s", True),
    ("N=1000, S=10, unlimited", ["--clients", "1000", "--senders", "10", "--messages", "2000"],
     "deliveries_per_s", True),
    ("N=100, 1000 lines/s: p99 ms", ["--clients", "100", "--senders", "10", "--rate", "1000",
     "--seconds", "5"], "p99_ms", False),
    # 1000 in one channel, 9000 over 100 more; 100 senders spread over all of them
    ("N=10000, 1000 lines/s: p99 ms", ["--clients", "10000", "--members", "1000", "--channels",
     "101", "--senders", "100", "--spread", "--rate", "1000", "--seconds", "10",
     "--check-every", "10"], "p99_ms", False),
]  # fmt: skip
SCALE = SCENARIOS[-1][0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def start(kind: str, port: int, tmp: str, db: str | None = None) -> subprocess.Popen[bytes]:
    """A fresh server listening on `port`; tuichat keeps history in `db` if given, else none."""
    if kind == "tuichat":
        # the load comes from one address: its history quota must not refuse it
        history = (
            ["--db", db, "--history-quota-per-address", "0", "--history-quota", "0"]
            if db
            else ["--no-history"]
        )
        command = [
            sys.executable, "-m", "tuichat", "serve", "--port", str(port), *history,
            "--flood-rate", "0", "--max-clients-per-ip", "0", "--connects-per-minute", "0",
            "--max-clients", "0", "--log-level", "warning",
        ]  # fmt: skip
    else:
        assert NGIRCD is not None
        conf = Path(tmp) / f"ngircd-{port}.conf"
        conf.write_text(
            "[Global]\nName = irc.bench.local\nInfo = bench\nListen = 127.0.0.1\n"
            f"Ports = {port}\nPidFile = {tmp}/ngircd-{port}.pid\n"
            "[Limits]\nMaxConnectionsIP = 0\nMaxConnections = 0\nMaxNickLength = 30\n"
            "MaxPenaltyTime = 0\n[Options]\nPAM = no\nIdent = no\nDNS = no\n"
        )
        command = [NGIRCD, "-n", "-f", str(conf)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(kind: str, args: list[str], tmp: str, db: str | None = None) -> dict[str, object]:
    """One run of loadgen.py against a fresh server: its JSON, or {"error": why}."""
    port = free_port()
    proc = start(kind, port, tmp, db)
    try:
        out = subprocess.run(
            [sys.executable, str(HERE / "loadgen.py"), "--port", str(port), "--duration", "90",
             "--server-pid", str(proc.pid), *args],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
    finally:
        stop(proc)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, object] = json.loads(out.stdout)
    return result


def number(result: dict[str, object], figure: str) -> float:
    """A figure of loadgen.py's JSON, as a number."""
    value = result[figure]
    assert isinstance(value, float | int), (figure, value)
    return float(value)


def _median(results: list[dict[str, object]], figure: str) -> float | None:
    values = []
    for result in results:
        value = result.get(figure)
        if isinstance(value, float | int):
            values.append(float(value))
    return statistics.median(values) if values else None


def _cell(value: float | None, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if value is not None else "n/a"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours and theirs else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the first two scenarios only")
    parser.add_argument("--only", help="the scenarios whose label contains this")
    args = parser.parse_args()
    servers = ["tuichat"] + (["ngircd"] if NGIRCD else [])
    scenarios = SCENARIOS[:2] if args.quick else SCENARIOS
    if args.only:
        scenarios = [s for s in scenarios if args.only in s[0]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, load, figure, higher in scenarios:
            runs: dict[str, list[dict[str, object]]] = {}
            for kind in servers:
                good = runs[kind] = []
                for _ in range(args.runs):
                    result = measure(kind, load, tmp)
                    lost = result.get("lost", 0)
                    if "error" in result or (isinstance(lost, int) and lost > 0):
                        print(
                            f"{label} {kind}: {result.get('error') or f'{lost} lost'}", flush=True
                        )
                        continue
                    good.append(result)
                    print(
                        f"{label} {kind}: {figure} {result[figure]:.1f}, CPU "
                        f"{result['cpu_us_per_delivery']:.2f} us/delivery, "
                        f"{result['kb_per_client']:.1f} KB/client, "
                        f"registered in {result['register_s']:.1f} s",
                        flush=True,
                    )
            rows.append((label, figure, higher, runs))
    print()
    print("Medians; tuichat/ngircd: above 1 is better for deliveries/s, below 1 for the rest.")
    print()
    print("| load | tuichat | ngircd | tuichat/ngircd | CPU us/delivery (t / n) | "
          "RSS KB/client (t / n) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for label, figure, _higher, runs in rows:
        t, n = runs.get("tuichat", []), runs.get("ngircd", [])
        ours, theirs = _median(t, figure), _median(n, figure)
        digits = 0 if figure == "deliveries_per_s" else 1
        cpu = [_median(r, "cpu_us_per_delivery") for r in (t, n)]
        kb = [_median(r, "kb_per_client") for r in (t, n)]
        print(
            f"| {label} | {_cell(ours, digits)} | {_cell(theirs, digits)} | "
            f"{_ratio(ours, theirs)} | {_cell(cpu[0], 2)} / {_cell(cpu[1], 2)} "
            f"({_ratio(cpu[0], cpu[1])}) | {_cell(kb[0])} / {_cell(kb[1])} "
            f"({_ratio(kb[0], kb[1])}) |"
        )
        if label == SCALE:
            reg = [_median(r, "register_s") for r in (t, n)]
            print(
                f"| {label}: registered and joined, s | {_cell(reg[0])} | {_cell(reg[1])} | "
                f"{_ratio(reg[0], reg[1])} | | |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
