"""Fixtures for the state unit tests: a fresh `Net` and registered users on it.

A module that needs another harness (test_history_state's store-backed `net`) overrides `net`, and
the users follow it.
"""

from __future__ import annotations

import pytest

from tests.unit.helpers import Net
from tuichat.state import Config, User


@pytest.fixture
def net() -> Net:
    return Net()


@pytest.fixture
def alice(net: Net) -> User:
    return net.register("alice")


@pytest.fixture
def bob(net: Net) -> User:
    return net.register("bob")


@pytest.fixture
def carol(net: Net) -> User:
    return net.register("carol")


@pytest.fixture
def opnet() -> Net:
    """A network with one operator block: admin / hunter2."""
    return Net(Config(created=0.0, opers={"admin": "hunter2"}))
