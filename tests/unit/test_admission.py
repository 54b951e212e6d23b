"""Who may connect (`tuichat.server.admission`), without sockets: the counts behind "Server is
full", "Too many connections from your address" and "Connecting too fast"."""

from __future__ import annotations

import time
import types

import pytest

from tuichat.server import ServerConfig
from tuichat.server import admission as module
from tuichat.server.admission import Admission


def test_the_bounds_in_order() -> None:
    gate = Admission(ServerConfig(max_clients=3, max_per_ip=2, connects_per_minute=0))
    assert gate.refusal("10.0.0.1", 0, None) is None
    assert gate.refusal("10.0.0.1", 1, None) is None
    assert gate.refusal("10.0.0.1", 2, None) == "Too many connections from your address"
    assert gate.refusal("10.0.0.2", 3, None) == "Server is full"
    gate.left("10.0.0.1")
    assert gate.refusal("10.0.0.1", 2, None) is None


def test_an_ipv6_64_is_one_address_and_a_ban_is_not_counted() -> None:
    gate = Admission(ServerConfig(max_per_ip=1, connects_per_minute=0))
    assert gate.refusal("2001:db8:1:2::1", 0, "You are banned") == "You are banned"
    assert gate.refusal("2001:db8:1:2::1", 0, None) is None  # the ban took no place
    assert gate.refusal("2001:db8:1:2::99", 1, None) == "Too many connections from your address"
    assert gate.refusal("2001:db8:1:3::1", 1, None) is None


def test_connects_per_minute_and_quiet_addresses_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    clock = types.SimpleNamespace(**vars(time))
    clock.monotonic = lambda: now[0]
    monkeypatch.setattr(module, "time", clock)
    gate = Admission(ServerConfig(max_per_ip=0, connects_per_minute=2))
    assert gate.refusal("10.0.0.1", 0, None) is None
    assert gate.refusal("10.0.0.1", 0, None) is None
    assert gate.refusal("10.0.0.1", 0, None) == "Connecting too fast; try again in a minute"
    now[0] += 61
    assert gate.refusal("10.0.0.1", 0, None) is None
    now[0] += 61
    gate.forget_quiet()
    assert gate._recent == {}
