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
