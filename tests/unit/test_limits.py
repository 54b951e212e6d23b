"""tuichat.limits: Quota and Backoff, driven by an injected clock (plain numbers)."""

from __future__ import annotations

import math

from tuichat.limits import Backoff, Quota, address_key


def test_quota_allows_the_limit_at_once_then_refuses() -> None:
    quota = Quota(100, 3600)
    assert quota.take("a", 60, 0.0)
    assert quota.take("a", 40, 0.0)
    assert not quota.take("a", 1, 0.0)
    assert quota.take("b", 100, 0.0)  # another key has its own


def test_quota_refills_continuously_over_its_window() -> None:
    quota = Quota(100, 100)  # one unit a second
    assert quota.take("a", 100, 0.0)
    assert not quota.take("a", 10, 5.0)
    assert math.isclose(quota.retry_after("a", 10, 5.0), 5.0)
    assert quota.take("a", 10, 10.0)
    assert not quota.take("a", 1, 10.0)
    assert quota.take("a", 100, 1000.0)  # long unused: all of it again, never more
    assert not quota.take("a", 1, 1000.0)


def test_a_refused_take_uses_nothing() -> None:
    quota = Quota(10, 10)
    assert quota.take("a", 8, 0.0)
    assert not quota.take("a", 5, 0.0)
    assert quota.take("a", 2, 0.0)


def test_quota_more_than_the_limit_never_fits_and_zero_is_no_limit() -> None:
    assert Quota(10, 10).retry_after("a", 11, 0.0) == math.inf
    unbounded = Quota(0, 10)
    assert all(unbounded.take("a", 1e9, 0.0) for _ in range(10))


def test_quota_memory_is_bounded() -> None:
    quota = Quota(10, 10, max_keys=50)
    for i in range(1000):
        assert quota.take(i, 10, 0.0)
    assert len(quota) == 50
    # keys drained back to nothing are forgotten as others come
    for i in range(10):
        quota.take(("late", i), 1, 100.0)
    assert len(quota) < 50


def test_backoff_delays_double_after_the_free_failures_up_to_the_cap() -> None:
    backoff = Backoff(free=3, delay=1.0, cap=8.0, forget=3600.0)
    assert backoff.failed("k", 0.0) == 0.0
    assert backoff.failed("k", 0.0) == 0.0
    assert backoff.wait("k", 0.0) == 0.0
    assert backoff.failed("k", 0.0) == 1.0  # the third
    assert backoff.wait("k", 0.5) == 0.5
    assert backoff.wait("k", 1.0) == 0.0
    assert backoff.failed("k", 1.0) == 2.0
    assert backoff.failed("k", 3.0) == 4.0
    assert backoff.failed("k", 7.0) == 8.0
    assert backoff.failed("k", 15.0) == 8.0  # capped
    assert backoff.wait("other", 15.0) == 0.0


def test_backoff_success_clears_and_silence_forgets() -> None:
    backoff = Backoff(free=2, delay=1.0, cap=60.0, forget=600.0)
    backoff.failed("k", 0.0)
    backoff.failed("k", 0.0)
    assert backoff.wait("k", 0.0) == 1.0
    backoff.succeeded("k")
    assert backoff.wait("k", 0.0) == 0.0
    assert backoff.failures("k", 0.0) == 0
    backoff.failed("k", 0.0)
    backoff.failed("k", 0.0)
    assert backoff.failures("k", 599.0) == 2
    assert backoff.failures("k", 600.0) == 0
    assert backoff.failed("k", 600.0) == 0.0


def test_backoff_forgive_takes_back_one_failure_but_keeps_the_wait() -> None:
    backoff = Backoff(free=2, delay=4.0, cap=60.0)
    backoff.failed("k", 0.0)
    backoff.failed("k", 0.0)
    backoff.forgive("k", 0.0)
    assert backoff.failures("k", 0.0) == 1
    assert backoff.wait("k", 0.0) == 4.0


def test_backoff_memory_is_bounded_and_zero_is_no_bound() -> None:
    backoff = Backoff(free=1, max_keys=20)
    for i in range(500):
        backoff.failed(i, 0.0)
    assert len(backoff) == 20
    off = Backoff(free=0)
    assert all(off.failed("k", 0.0) == 0.0 for _ in range(100))
    assert off.wait("k", 0.0) == 0.0


def test_address_key_groups_ipv6_by_64() -> None:
    assert address_key("127.0.0.1") == "127.0.0.1"
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1")
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
