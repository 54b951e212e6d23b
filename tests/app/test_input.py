"""The input line: Tab completes nicks (and commands), Up/Down walk the history."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .helpers import (
    InChat,
    RawUser,
    input_line,
    member_labels,
    submit,
    wait_for,
    wait_for_log,
)

pytestmark = pytest.mark.timeout(30)


async def test_tab_completes_a_nick_at_the_start_and_in_the_middle(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    user("alice", "#chat")
    user("albert", "#chat")
    user("bob", "#chat")
    async with in_chat() as (app, pilot):
        await wait_for(pilot, lambda: len(member_labels(app)) == 4, show=lambda: member_labels(app))
        field = input_line(app)

        await pilot.press("b", "tab")
        assert field.value == "bob: "
        assert field.cursor_position == len("bob: ")
        await pilot.press(*"hi", "enter")
        assert field.value == ""
        await wait_for_log(pilot, "<me> bob: hi")

        # two matches: Tab again cycles through them, sorted
        await pilot.press(*"ask al", "tab")
        assert field.value == "ask albert "
        await pilot.press("tab")
        assert field.value == "ask alice "
        await pilot.press("tab")
        assert field.value == "ask albert "
        await pilot.press(*"now", "enter")
        await wait_for_log(pilot, "<me> ask albert now")

        # case does not matter; nothing to complete leaves the text alone
        await pilot.press("A", "L", "I", "tab")
        assert field.value == "alice: "
        field.value = "xyz"
        field.cursor_position = 3
        await pilot.press("tab")
        assert field.value == "xyz"

        # commands complete at the start of the line
        field.value = "/jo"
        field.cursor_position = 3
        await pilot.press("tab")
        assert field.value == "/join "


async def test_up_and_down_walk_the_input_history(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        field = input_line(app)
        for text in ("first", "second", "third"):
            await submit(pilot, text)
        await alice.expect(pilot, r"PRIVMSG #chat :third$")

        await pilot.press(*"draft")
        await pilot.press("up")
        assert field.value == "third"
        assert field.cursor_position == len("third")
        await pilot.press("up", "up")
        assert field.value == "first"
        await pilot.press("up")  # stays at the oldest
        assert field.value == "first"
        await pilot.press("down")
        assert field.value == "second"
        await pilot.press("down", "down")  # back to what was being typed
        assert field.value == "draft"

        await pilot.press("enter")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :draft$")
        assert field.value == ""

        # a recalled line is sent again as it was
        await pilot.press("up", "up", "enter")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :third$")
        await pilot.press("up")
        assert field.value == "third"
