"""A snapshot of the main screen: a channel with a topic, two other users and a few messages.

The clock is fixed (and rendered in UTC), the status line names the server "test-server" instead
of host:port, the lag shown is a fixed one, and the cursor does not blink, so the picture is the
same on every run. Regenerate with `pytest tests/app/test_snapshot.py --snapshot-update` and look
at the SVG before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tuichat.app import TuichatApp
from tuichat.net.client import LagMeasured

from .helpers import (
    SIZE,
    RawUser,
    input_line,
    log_lines,
    member_labels,
    screen_state,
    status_text,
    submit,
    topic_text,
    wait_for,
    wait_for_joined,
    wait_for_log,
)

pytestmark = pytest.mark.timeout(30)


def test_main_screen(
    snap_compare: Any, make_app: Callable[..., TuichatApp], user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    bob = user("bob", "#chat")
    alice.send("TOPIC #chat :Welcome to #chat \x02be nice\x02")
    alice.expect_now(r" TOPIC #chat ")
    app = make_app(channels=["#chat"])

    async def run_before(pilot: Pilot[Any]) -> None:
        input_line(app).cursor_blink = False
        await wait_for_joined(pilot, "#chat")
        await wait_for(
            pilot,
            lambda: (
                member_labels(app) == ["@alice", "bob", "me"]
                and topic_text(app) == "#chat  Welcome to #chat be nice"
            ),
            show=lambda: screen_state(app),
        )
        await submit(pilot, "hello everyone")
        await alice.expect(pilot, r"PRIVMSG #chat :hello everyone$")
        alice.send("PRIVMSG #chat :hi me, good to see you")  # a mention: highlighted
        await wait_for_log(pilot, "<alice> hi me")
        bob.send("PRIVMSG #chat :\x02bold\x02, \x0304red\x03 and [b]not markup[/b]")
        await wait_for_log(pilot, "<bob> bold")
        bob.send("PRIVMSG #chat :\x01ACTION waves\x01")
        await wait_for_log(pilot, "* bob waves")
        await submit(pilot, "/me waves back")
        await wait_for_log(pilot, "* me waves back")
        # the server's echo confirms it: no [sending] mark any more
        await wait_for(pilot, lambda: "[sending]" not in "\n".join(log_lines(app)))
        await pilot.press(*"a draft")
        # The measured lag (a millisecond or two here) is on screen: once the real probe has been
        # answered (the next is 30 s away), report a fixed one through the same path.
        await wait_for(pilot, lambda: "  lag " in status_text(app), show=lambda: status_text(app))
        app._on_client_event(LagMeasured(0.012))
        await wait_for(
            pilot, lambda: status_text(app).endswith("lag 12 ms"), show=lambda: status_text(app)
        )

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
