"""One window's message log."""

from __future__ import annotations

import time
from collections import deque
from typing import Self

from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog

from tuichat.client_state import ACTION, ERROR, EVENT, MESSAGE, NOTICE, Entry
from tuichat.text import nick_colour, plain, render

SCROLLBACK = 10_000


class ChatLog(RichLog):
    """A scrolling, bounded log of entries. User text is rendered as data, never as markup."""

    def __init__(self, *, max_lines: int = SCROLLBACK, id: str | None = None) -> None:
        super().__init__(
            max_lines=max_lines, wrap=True, markup=False, highlight=False, min_width=20, id=id
        )
        self.can_focus = False
        # rows that arrived while the log was hidden: rendered when it shows, at its real width
        self._held: deque[Table] = deque(maxlen=max_lines)

    def add(self, entry: Entry) -> None:
        stamp = Text(time.strftime("%H:%M", time.localtime(entry.time)), style="dim")
        row = Table.grid(padding=(0, 1, 0, 0))
        row.add_column(width=5, no_wrap=True)
        row.add_column(ratio=1, overflow="fold")
        row.add_row(stamp, format_entry(entry))
        # wrapped lines stay in the text column, under the first line's text
        if self.display and not self._held:
            self.write(row, expand=True)
        else:
            self._held.append(row)

    def on_show(self) -> None:
        while self._held:
            self.write(self._held.popleft(), expand=True)

    def clear(self) -> Self:
        self._held.clear()
        return super().clear()


def format_entry(entry: Entry) -> Text:
    """An entry's text, styled: `<nick> text`, `* nick text`, `-- event`..."""
    line = Text()
    nick = plain(entry.nick or "")
    colour = nick_colour(nick) if nick else ""
    if entry.kind == MESSAGE:
        line.append("<", style="dim")
        line.append(nick, style=f"bold {colour}")
        line.append("> ", style="dim")
        line.append_text(render(entry.text))
    elif entry.kind == ACTION:
        line.append("* ", style="bold")
        line.append(nick, style=f"bold {colour}")
        line.append(" ")
        line.append_text(render(entry.text, style="italic"))
    elif entry.kind == NOTICE:
        line.append("-", style="dim")
        line.append(nick or "server", style=f"bold {colour}")
        line.append("- ", style="dim")
        line.append_text(render(entry.text))
    elif entry.kind == EVENT:
        line.append("-- " + plain(entry.text), style="dim")
    elif entry.kind == ERROR:
        line.append("!! " + plain(entry.text), style="bold red")
    else:  # INFO
        line.append("-- ", style="dim")
        line.append(plain(entry.text))
    if entry.mention:
        line.stylize("on #5a3d00")
    return line
