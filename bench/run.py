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
    ("N=10, S=10, unlimited", ["--clients", "10", "--senders", "10", "--messages", "20000"],
     "deliveries_per_s", True),
    ("N=100, S=10, unlimited", ["--clients", "100", "--senders", "10", "--messages", "20000"],
     "deliveries_per_s", True),
    ("N=1000, S=10, unlimited", ["--clients", "1000", "--senders", "10", "--messages", "2000"],
     "deliveries_per_s", True),
    ("N=100, 1000 lines/s: p99 ms", ["--clients", "100", "--senders", "10", "--rate", "1000",
     "--seconds", "5"], "p99_ms", False),
]  # fmt: skip


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


def start(kind: str, port: int, tmp: str) -> subprocess.Popen[bytes]:
    if kind == "tuichat":
        command = [
            sys.executable, "-m", "tuichat", "serve", "--port", str(port), "--no-history",
            "--flood-rate", "0", "--max-clients-per-ip", "0", "--connects-per-minute", "0",
            "--log-level", "warning",
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


def measure(kind: str, args: list[str], tmp: str) -> dict[str, object]:
    port = free_port()
    proc = start(kind, port, tmp)
    try:
        out = subprocess.run(
            [sys.executable, str(HERE / "loadgen.py"), "--port", str(port), "--duration", "90",
             *args],
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
    finally:
        stop(proc)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the first two scenarios only")
    args = parser.parse_args()
    servers = ["tuichat"] + (["ngircd"] if NGIRCD else [])
    scenarios = SCENARIOS[:2] if args.quick else SCENARIOS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, load, figure, higher in scenarios:
            medians: dict[str, float | None] = {}
            for kind in servers:
                values = []
                for _ in range(args.runs):
                    result = measure(kind, load, tmp)
                    lost = result.get("lost", 0)
                    if "error" in result or (isinstance(lost, int) and lost > 0):
                        print(
                            f"{label} {kind}: {result.get('error') or f'{lost} lost'}", flush=True
                        )
                        continue
                    value = result[figure]
                    assert isinstance(value, float | int)
                    values.append(float(value))
                    print(f"{label} {kind}: {value:.1f}", flush=True)
                medians[kind] = statistics.median(values) if values else None
            rows.append((label, medians, higher))
    print()
    print(f"{'load':<32} {'tuichat':>12} {'ngircd':>12} {'tuichat/ngircd':>15}")
    for label, medians, higher in rows:
        ours, theirs = medians.get("tuichat"), medians.get("ngircd")
        better = "above 1 is better" if higher else "below 1 is better"
        ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
        cells = [f"{v:>12.1f}" if v is not None else f"{'n/a':>12}" for v in (ours, theirs)]
        print(f"{label:<32} {cells[0]} {cells[1]} {ratio:>15}  ({better})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
