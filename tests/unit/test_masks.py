"""Unit tests for IRC wildcard masks (`Mask`, `mask_matches`): the answers, checked against
`fnmatch` on random masks, and the time they take on the masks that make a backtracking matcher
slow (issue 10, item 4: `WHO *???...?x` froze the server)."""

from __future__ import annotations

import fnmatch
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.net.protocol import Mask, casefold, compile_mask, mask_matches

CASES = [
    ("", "", True),
    ("", "a", False),
    ("?", "", False),
    ("*?", "", False),
    ("*?", "a", True),
    ("?*?", "ab", True),
    ("?*?", "a", False),
    ("a*", "a", True),
    ("*a", "a", True),
    ("*a*", "bab", True),
    ("a*a", "a", False),  # the first and last pieces may not overlap
    ("a*a", "aa", True),
    ("ab*ba", "aba", False),
    ("ab*ba", "abba", True),
    ("*ab*ab*", "abab", True),
    ("*ab*ab*", "aab", False),
    ("*a?c*", "xxabdabc", True),
    ("*a?c*", "xxabdabd", False),
    ("*a?c*b", "aXcb", True),
    ("*a?c*b", "aXc", False),
    ("*?a?*", "ab", False),
    ("*?a?*", "bab", True),
    ("x*?b?c*y", "xabcy", False),
    ("x*?b?c*y", "xabacy", True),
    ("x*?b?c*y", "xaaabacy", True),
    ("*[a]*", "{A}", True),  # rfc1459 casemapping in middle pieces too
    ("*?[?*", "x{y", True),
    # the WHO mask of the attack (issue 10, item 4)
    ("*" + "?" * 240 + "x", "a" * 99 + "x", False),
    ("*" + "?" * 240 + "x", "a" * 300 + "x", True),
    ("*" + "?" * 240 + "x", "a" * 300 + "y", False),
    ("*x" + "?" * 240 + "y*", "x" * 300, False),
    ("*x" + "?" * 240 + "y*", "x" * 300 + "y", True),
]


@pytest.mark.parametrize(("mask", "text", "matches"), CASES)
def test_mask_matches_cases(mask: str, text: str, matches: bool) -> None:
    assert mask_matches(mask, text) is matches
    assert Mask(mask).matches(text) is matches


def _reference(mask: str, text: str) -> bool:
    # fnmatch knows `*` and `?`; `[` starts a set there, so the alphabet below has none
    return fnmatch.fnmatchcase(casefold(text), casefold(mask))


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet="abAB?*", max_size=12),
    st.text(alphabet="abAB", max_size=16),
)
def test_mask_matches_like_fnmatch(mask: str, text: str) -> None:
    assert mask_matches(mask, text) is _reference(mask, text)


def test_mask_matches_like_fnmatch_on_longer_random_cases() -> None:
    rng = random.Random(10_4)
    for _ in range(3000):
        mask = "".join(rng.choice("ab??**") for _ in range(rng.randrange(0, 30)))
        text = "".join(rng.choice("aab") for _ in range(rng.randrange(0, 60)))
        assert Mask(mask).matches(text) is _reference(mask, text), (mask, text)


def test_compiled_masks_are_kept() -> None:
    assert compile_mask("*!*@host") is compile_mask("*!*@host")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("mask", "text"),
    [
        # the leading `*` made a backtracking matcher try every start: 20,000 x 241 steps
        ("*" + "?" * 240 + "x", "a" * 20_000),
        # a middle piece with `?`s found by one pass, not by trying it at every place
        ("*x" + "?" * 240 + "y*", "x" * 20_000),
        ("*a" * 30 + "*z", "a" * 20_000),
    ],
)
def test_matching_takes_time_linear_in_the_text(mask: str, text: str) -> None:
    # the old matcher takes 1.4 s for each of the first two (O(len(mask) x len(text))); linear
    # work on 20,000 characters is a few milliseconds, so 0.2 s is generous
    start = time.perf_counter()
    assert not mask_matches(mask, text)
    assert time.perf_counter() - start < 0.2


@given(st.text(alphabet=st.characters(max_codepoint=0x17F)))
def test_casefold_is_the_rfc1459_table(text: str) -> None:
    table = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
    assert casefold(text) == text.translate(table)
