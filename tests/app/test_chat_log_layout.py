"""ChatLog lays rows out by measuring them and draws their lines only when shown: a row's
measured height must be what drawing it gives, or every row below it would be misplaced."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from tuichat.client_state import ACTION, ERROR, EVENT, MESSAGE, NOTICE, Entry
from tuichat.widgets.chat_log import ChatLog

pytestmark = pytest.mark.timeout(30)

TEXTS = [
    "",
    "short",
    "x" * 47,
    "x" * 48,
    "x" * 49,
    "x" * 300,  # one long word, folded
    "word " * 40,  # wrapped at spaces
    "trailing spaces          " * 3,
    "漢字かな" * 12,  # two cells a character
    "mixed 漢字 and emoji 🎉 " * 6,
    "tab\there and\tthere " * 5,
    "\x02bold\x02 \x0304red\x03 \x1ditalic\x1d " * 8,  # IRC formatting
    "[bold]not markup[/] " * 6,
]


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatLog(id="log")


@pytest.mark.parametrize("width", [40, 61, 120])
async def test_measured_heights_are_the_drawn_heights(width: int) -> None:
    app = LogApp()
    async with app.run_test(size=(width, 20)) as pilot:
        log = app.query_one("#log", ChatLog)
        kinds = [MESSAGE, ACTION, NOTICE, EVENT, ERROR, "info"]
        with log.adding():
            for i, text in enumerate(TEXTS * 2):
                entry = Entry(0.0, kinds[i % len(kinds)], text, nick="someone" * (i % 3))
                entry.mention = i % 4 == 0
                entry.state = "not sent: no connection" if i % 5 == 0 else ""
                log.add(entry)
            log.add_divider("a divider longer than the narrowest log " * 2)
        await pilot.pause()
        assert log._laid_out == len(log.rows)
        for row in log.rows:
            drawn = log._draw(row, row.width)
            assert row.height == len(drawn), (row.entry, row.height, len(drawn))
        total = sum(row.height for row in log.rows)
        assert log.virtual_size.height == total == len(log.lines)
