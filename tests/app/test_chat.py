"""Talking: channel messages both ways, private messages, /me, and hostile text shown literally."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .helpers import (
    InChat,
    RawUser,
    current_log,
    input_line,
    log_entries,
    log_text,
    submit,
    topic_text,
    wait_for,
    wait_for_log,
    window_labels,
)

pytestmark = pytest.mark.timeout(30)


async def test_channel_message_typed_reaches_the_other_user_and_theirs_is_shown(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        await alice.expect(pilot, r"^:me!\S+ JOIN :?#chat$")

        await pilot.press(*"hello alice", "enter")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :hello alice$")
        await wait_for_log(pilot, "08:00 <me> hello alice")
        assert input_line(app).value == ""

        alice.send("PRIVMSG #chat :hi there, me")
        await wait_for_log(pilot, "08:00 <alice> hi there, me")
        # the line arrives once, after our own
        lines = log_entries(app)
        assert [line for line in lines if "<alice>" in line] == ["08:00 <alice> hi there, me"]
        assert lines.index("08:00 <me> hello alice") < lines.index("08:00 <alice> hi there, me")


async def test_private_message_opens_a_window_and_replies_go_back(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    bob = user("bob")
    async with in_chat() as (app, pilot):
        bob.send("PRIVMSG me :psst, are you there?")
        await wait_for(
            pilot,
            lambda: "3 bob 1 !" in window_labels(app),
            what="a window for bob with one unread, marked",
            show=lambda: window_labels(app),
        )
        assert topic_text(app).startswith("#chat")  # a query does not steal the focus

        await pilot.press("alt+3")
        await wait_for_log(pilot, "08:00 <bob> psst, are you there?")
        assert topic_text(app) == "private conversation with bob"
        assert window_labels(app)[2] == "3 bob"  # read now: no count, no mark

        await submit(pilot, "yes I am")
        await bob.expect(pilot, r"^:me!\S+ PRIVMSG bob :yes I am$")
        await wait_for_log(pilot, "08:00 <me> yes I am")


async def test_query_command_opens_a_window_and_sends(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    bob = user("bob")
    async with in_chat() as (app, pilot):
        await submit(pilot, "/query bob lunch?")
        await bob.expect(pilot, r"^:me!\S+ PRIVMSG bob :lunch\?$")
        await wait_for_log(pilot, "<me> lunch?")
        assert topic_text(app) == "private conversation with bob"


async def test_me_is_shown_as_an_action_both_ways(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        await submit(pilot, "/me waves")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :\x01ACTION waves\x01$")
        await wait_for_log(pilot, "08:00 * me waves")

        alice.send("PRIVMSG #chat :\x01ACTION waves back\x01")
        await wait_for_log(pilot, "08:00 * alice waves back")
        assert "\x01" not in log_text(app)


HOSTILE = [
    ("[bold]x[/]", "[bold]x[/]"),
    ("[@click=app.quit]click me[/]", "[@click=app.quit]click me[/]"),
    ("[/]", "[/]"),
    ("[red]unclosed", "[red]unclosed"),
    ("esc\x1b[2J\x1b]0;title\x07bel\x07 end", "esc[2J]0;titlebel end"),
    ("cr\rlf", "cr"),  # the server ends the line at a bare CR
]


async def test_markup_and_control_characters_are_shown_literally(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        for sent, _ in HOSTILE:
            alice.send(f"PRIVMSG #chat :{sent}")
        alice.send("PRIVMSG #chat :last one")
        await wait_for_log(pilot, "<alice> last one")

        lines = log_entries(app)
        for _, shown in HOSTILE:
            assert f"08:00 <alice> {shown}" in lines
        text = log_text(app)
        assert not any(ch in text for ch in "\x1b\x07\r\x00")
        # no clickable action sneaked in, and the app keeps going
        for strip in current_log(app).lines:
            for segment in strip:
                style = segment.style
                assert style is None or (not style.link and "@click" not in style.meta)
        assert app.is_running

        # our own hostile line goes out unchanged and shows literally too
        await submit(pilot, "[b]mine[/b] [@click=app.quit]")
        await alice.expect(pilot, r"^:me!\S+ PRIVMSG #chat :\[b\]mine\[/b\] \[@click=app.quit\]$")
        await wait_for_log(pilot, "08:00 <me> [b]mine[/b] [@click=app.quit]")

        # topics and reasons are user text too
        alice.send("TOPIC #chat :[bold]topic[/] [@click=app.quit]\x1b[31m")
        await wait_for(
            pilot,
            lambda: topic_text(app) == "#chat  [bold]topic[/] [@click=app.quit][31m",
            show=lambda: topic_text(app),
        )
        alice.send("PART #chat :[red]bye[/red]\x07")
        await wait_for_log(pilot, "alice has left ([red]bye[/red])")
        assert app.is_running
