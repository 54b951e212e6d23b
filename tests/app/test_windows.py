"""Windows: switching with Ctrl+N / Ctrl+P / Alt+N, and unread counts for windows not on show."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tuichat.app import TuichatApp

from .helpers import (
    SIZE,
    RawUser,
    log_lines,
    log_text,
    screen_state,
    submit,
    topic_text,
    wait_for,
    wait_for_joined,
    wait_for_log,
    window_labels,
)

pytestmark = pytest.mark.timeout(30)


async def test_ctrl_n_ctrl_p_and_alt_number_switch_windows(
    make_app: Callable[..., TuichatApp], user: Callable[..., RawUser]
) -> None:
    user("alice", "#one", "#two")
    app = make_app(channels=["#one", "#two"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: window_labels(app) == ["1 tuichat", "2 #one", "3 #two"],
            what="both channels joined",
            show=lambda: screen_state(app),
        )
        await wait_for_joined(pilot, "#one")  # the first channel joined is on show

        await pilot.press("ctrl+n")
        assert topic_text(app).startswith("#two")
        await pilot.press("ctrl+n")  # wraps to the server window
        assert topic_text(app) == "tuichat — server messages"
        await pilot.press("ctrl+p")
        assert topic_text(app).startswith("#two")
        await pilot.press("alt+2")
        assert topic_text(app).startswith("#one")
        await pilot.press("alt+9")  # no ninth window: nothing happens
        assert topic_text(app).startswith("#one")
        await pilot.press("alt+1")
        assert topic_text(app) == "tuichat — server messages"

        # the log on show follows the window: each has its own
        await pilot.press("alt+3")
        await wait_for_log(pilot, "me (")
        assert "#two" in topic_text(app)
        await submit(pilot, "in two")
        await wait_for_log(pilot, "<me> in two")
        await pilot.press("alt+2")
        await wait_for_log(pilot, "has joined")
        assert "in two" not in log_text(app)


async def test_unread_count_shows_for_a_window_not_on_show_and_clears_when_shown(
    make_app: Callable[..., TuichatApp], user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#one", "#two")
    app = make_app(channels=["#one", "#two"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: window_labels(app) == ["1 tuichat", "2 #one", "3 #two"],
            show=lambda: screen_state(app),
        )
        await wait_for_joined(pilot, "#one")
        await alice.expect(pilot, r"^:me!\S+ JOIN :?#two$")

        for n in range(3):
            alice.send(f"PRIVMSG #two :message {n}")
        await wait_for(
            pilot,
            lambda: window_labels(app)[2] == "3 #two 3",
            what="3 unread in #two",
            show=lambda: window_labels(app),
        )
        assert window_labels(app)[1] == "2 #one"  # the current window never counts

        alice.send("PRIVMSG #two :hey me, look")  # a mention is marked
        await wait_for(
            pilot,
            lambda: window_labels(app)[2] == "3 #two 4 !",
            what="4 unread and a mention mark in #two",
            show=lambda: window_labels(app),
        )

        await pilot.press("ctrl+n")
        assert topic_text(app).startswith("#two")
        assert window_labels(app) == ["1 tuichat", "2 #one", "3 #two"]
        await wait_for_log(pilot, "<alice> hey me, look")
        for n in range(3):
            assert f"<alice> message {n}" in log_text(app)

        # joins and parts are not "unread" chat
        alice.send("PART #one")
        alice.send("PRIVMSG #two :after part")
        await wait_for_log(pilot, "<alice> after part")
        assert window_labels(app)[1] == "2 #one"


async def test_a_long_line_that_arrives_in_a_hidden_window_is_not_squeezed(
    make_app: Callable[..., TuichatApp], user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#one", "#two")
    app = make_app(channels=["#one", "#two"])
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: window_labels(app) == ["1 tuichat", "2 #one", "3 #two"],
            show=lambda: screen_state(app),
        )
        await wait_for_joined(pilot, "#one")
        await pilot.press("alt+3")  # #two has been on show...
        await wait_for_joined(pilot, "#two")
        await pilot.press("alt+2")  # ...and is hidden again when the line arrives
        text = "a line of fifty characters that fits on one line.."
        alice.send(f"PRIVMSG #two :{text}")
        await wait_for(pilot, lambda: window_labels(app)[2] == "3 #two 1")
        await pilot.press("alt+3")
        await wait_for_log(pilot, "<alice> a line")
        # the log is some 70 columns wide: the line is not wrapped
        lines = log_lines(app)
        assert f"08:00 <alice> {text}" in lines, "\n".join(lines)
