"""gc_tuning: what survives a full collection is frozen; collect_all still frees old cycles."""

from __future__ import annotations

import gc
import weakref

from tuichat import gc_tuning


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_survivors_of_a_full_collection_are_frozen_and_old_cycles_still_go() -> None:
    gc_tuning.install()
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle
        gc.collect()
        assert gc.get_freeze_count() > 0  # the survivors, a and b among them
        dead = weakref.ref(a)
        del a, b
        gc.collect()  # frozen: not looked at by ordinary collections
        assert dead() is not None
        gc_tuning.collect_all()
        assert dead() is None
    finally:
        gc_tuning.uninstall()
    assert gc.get_freeze_count() == 0


def test_install_is_counted() -> None:
    gc_tuning.install()
    gc_tuning.install()
    gc_tuning.uninstall()
    assert gc_tuning._freeze_survivors in gc.callbacks
    gc_tuning.uninstall()
    assert gc_tuning._freeze_survivors not in gc.callbacks


def test_eager_makes_full_collections_frequent_and_is_undone() -> None:
    before = gc.get_threshold()
    full: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            full.append(info["generation"])

    gc_tuning.install(eager=True)
    # gc runs a full collection only once new survivors pass a quarter of what the last one
    # kept: after this, next to nothing (the app's idle collection ends the same way)
    gc_tuning.collect_all()
    gc.callbacks.append(count)
    try:
        # enough allocations for a few collections of the middle generation (700 x 10 each),
        # not for an ordinary full one (10 of those, and then only past a quarter of the old)
        keep = []
        for _ in range(40_000):
            a, b = Node(), Node()
            a.other, b.other = b, a
            keep.append(a)
        assert full.count(2) >= 2, full
    finally:
        gc.callbacks.remove(count)
        gc_tuning.uninstall(eager=True)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
