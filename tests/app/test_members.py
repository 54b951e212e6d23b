"""The member list follows joins, parts, quits, nick changes and operator status."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from tuichat.app import TuichatApp

from .helpers import (
    InChat,
    RawUser,
    member_labels,
    screen_state,
    status_text,
    submit,
    topic_text,
    wait_for,
    wait_for_log,
)

pytestmark = pytest.mark.timeout(30)


async def wait_for_members(pilot: Pilot[None], app: TuichatApp, expected: list[str]) -> None:
    await wait_for(
        pilot,
        lambda: member_labels(app) == expected,
        what=f"members {expected}",
        show=lambda: screen_state(app),
    )


async def test_member_list_follows_joins_parts_quits_nicks_and_ops(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")  # first in: the channel's operator
    async with in_chat() as (app, pilot):
        await wait_for_members(pilot, app, ["@alice", "me"])
        assert app.query_one("#member-list", OptionList).border_title == "2 users"

        bob = user("bob", "#chat")
        await wait_for_members(pilot, app, ["@alice", "bob", "me"])
        await wait_for_log(pilot, "bob (")
        assert app.query_one("#member-list", OptionList).border_title == "3 users"

        bob.send("NICK zed")
        await wait_for_members(pilot, app, ["@alice", "me", "zed"])
        await wait_for_log(pilot, "bob is now known as zed")

        alice.send("MODE #chat +o zed")
        await wait_for_members(pilot, app, ["@alice", "@zed", "me"])
        alice.send("MODE #chat +v me")
        await wait_for_members(pilot, app, ["@alice", "@zed", "+me"])
        alice.send("MODE #chat -o alice")
        await wait_for_members(pilot, app, ["@zed", "+me", "alice"])

        alice.send("PART #chat :bye all")
        await wait_for_members(pilot, app, ["@zed", "+me"])
        await wait_for_log(pilot, "alice has left (bye all)")

        bob.send("QUIT :gone fishing")
        await wait_for_members(pilot, app, ["+me"])
        await wait_for_log(pilot, "zed has quit (Quit: gone fishing)")
        assert app.query_one("#member-list", OptionList).border_title == "1 user"


async def test_our_own_nick_change_and_the_member_list_hides_outside_channels(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        await submit(pilot, "/nick newme")
        await alice.expect(pilot, r"^:me!\S+ NICK :?newme$")
        await wait_for_members(pilot, app, ["@alice", "newme"])
        await wait_for(
            pilot,
            lambda: status_text(app).startswith("newme  "),
            what="the status line to show the new nick",
        )

        member_list = app.query_one("#member-list", OptionList)
        assert member_list.display
        await pilot.press("alt+1")
        assert topic_text(app) == "tuichat — server messages"
        assert not member_list.display
