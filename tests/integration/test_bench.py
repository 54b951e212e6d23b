"""The benchmarks in bench/ still run and still count right, on a small load (their figures
are for bench/README.md, not for tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuichat.server import ServerConfig

from .conftest import StartServer

BENCH = Path(__file__).resolve().parents[2] / "bench"


def loadgen(port: int, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, str(BENCH / "loadgen.py"), "--port", str(port), "--duration", "30",
         *args],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def number(result: dict[str, object], key: str) -> float:
    value = result[key]
    assert isinstance(value, int | float)
    return float(value)


def unlimited_server(start_server: StartServer, sendq: int = ServerConfig.sendq) -> int:
    """A server without flood control or per-address limits (all load comes from one address)."""
    config = ServerConfig(flood_rate=0, max_per_ip=0, connects_per_minute=0, sendq=sendq)
    return start_server(config).port


@pytest.mark.timeout(60)
def test_loadgen_counts_every_delivery_at_full_speed(start_server: StartServer) -> None:
    port = unlimited_server(start_server)
    result = loadgen(port, "--clients", "12", "--senders", "3", "--messages", "3000")
    assert result["expected"] == 3000 * 11
    assert result["delivered"] == result["expected"]
    assert (result["lost"], result["duplicates"], result["out_of_order"]) == (0, 0, 0)
    # one member in ten is parsed line by line: u0 (a sender) and u10
    assert result["checked"] == 2000 + 3000
    assert result["errors"] == []


@pytest.mark.timeout(60)
def test_loadgen_spreads_senders_over_channels_at_a_rate(start_server: StartServer) -> None:
    port = unlimited_server(start_server)
    result = loadgen(
        port, "--clients", "40", "--members", "10", "--channels", "4", "--senders", "8",
        "--spread", "--rate", "400", "--seconds", "0.5", "--check-every", "3",
    )  # fmt: skip
    # 10 in #load0, 10 in each of three more; senders in proportion: 2 per channel
    assert result["sent"] == 200
    assert result["expected"] == 200 * 9
    assert result["delivered"] == result["expected"]
    assert (result["lost"], result["duplicates"], result["out_of_order"]) == (0, 0, 0)
    assert number(result, "p99_ms") > 0


@pytest.mark.timeout(60)
def test_loadgen_reports_a_server_that_drops_lines(start_server: StartServer) -> None:
    """A server that cuts off some members: their lines count as lost, and say why."""
    port = unlimited_server(start_server, sendq=4096)
    result = loadgen(port, "--clients", "5", "--senders", "5", "--messages", "20000",
                     "--duration", "5")  # fmt: skip
    assert number(result, "lost") > 0
    errors = result["errors"]
    assert isinstance(errors, list)
    assert any("SendQ" in error or "closed" in error for error in errors)
