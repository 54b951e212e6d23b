"""One window's message log: a bounded list of entries drawn with Textual's line API.

Entries are kept as data and rendered (wrapped to the log's width) when first needed, so a hidden
log costs nothing to draw, a resize re-wraps everything, and an entry can change in place (a
pending message becomes delivered) or a divider can come and go.

Laying a row out only measures it (how many lines it wraps to: one, for most, from the text's
length alone); its lines are drawn when they are first shown. A flood adds hundreds of rows
between two redraws and only the last screenful is ever seen: drawing each as it came cost
about 1 ms a row, two thirds of the time the log spent on it.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Iterator

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.client_state import ACTION, ERROR, EVENT, MESSAGE, NOTICE, Entry
from tuichat.text import nick_colour, plain, render

SCROLLBACK = 10_000
STAMP_WIDTH = 6  # "HH:MM "
_DIM = Style(dim=True)
_NULL = Style()


class Row:
    """A log row: an entry, or a divider line; with its height at the width last laid out, and
    its lines once drawn at that width (empty until shown)."""

    __slots__ = ("divider", "entry", "height", "strips", "width")

    def __init__(self, entry: Entry | None, divider: str = "") -> None:
        self.entry = entry
        self.divider = divider
        self.strips: list[Strip] = []
        self.width = -1
        self.height = 0


class ChatLog(ScrollView, can_focus=False):
    """A scrolling, bounded log. User text is rendered as data, never as markup."""

    DEFAULT_CSS = """
    ChatLog {
        background: $surface;
        color: $foreground;
        overflow-y: auto;
        overflow-x: hidden;
    }
    """

    def __init__(self, *, max_lines: int = SCROLLBACK, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.rows: list[Row] = []
        self._offsets: list[int] = []  # first line of each row, when laid out
        self._laid_out = 0  # rows[:_laid_out] have offsets at the current width
        self._width = 0
        self._divider: Row | None = None
        self._style: Style | None = None  # while drawing a screenful: the widget's style
        # inside adding(): None when not; False before its first row; then whether the log was
        # at its end before that row
        self._held: bool | None = None
        self._line_width = 0

    # -- changing the log -------------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        self._append(Row(entry))

    def add_divider(self, text: str) -> None:
        """A divider line (unread messages, end of history...) at the end of the log."""
        self._append(Row(None, text))

    def set_unread_divider(self, text: str = "new messages") -> None:
        """Move the one unread divider to the end of the log."""
        if self._divider is not None:
            self.remove_row(self._divider)
        self._divider = Row(None, text)
        self._append(self._divider)

    def clear_unread_divider(self) -> None:
        if self._divider is not None:
            self.remove_row(self._divider)
            self._divider = None

    def changed(self, entry: Entry) -> None:
        """`entry` changed (pending -> delivered): draw it again."""
        for index in range(len(self.rows) - 1, -1, -1):
            if self.rows[index].entry is entry:
                self.rows[index].width = -1
                self._laid_out = min(self._laid_out, index)
                self._layout()
                return

    def remove_row(self, row: Row) -> None:
        try:
            index = self.rows.index(row)
        except ValueError:
            return
        del self.rows[index]
        self._laid_out = min(self._laid_out, index)
        self._layout()

    def clear(self) -> None:
        self.rows.clear()
        self._divider = None
        self._laid_out = 0
        self._layout()

    @property
    def lines(self) -> list[Strip]:
        """Every line of the log as laid out now (for tests and copying)."""
        return [strip for row in self.rows[: self._laid_out] for strip in self._strips(row)]

    @contextlib.contextmanager
    def adding(self) -> Iterator[None]:
        """Rows added inside are laid out once, at the end (a flood adds dozens at a time)."""
        if self._held is not None:
            yield
            return
        self._held = False
        try:
            yield
        finally:
            at_end, self._held = self._held, None
            if at_end is not None:
                self._added(at_end)

    def _append(self, row: Row) -> None:
        at_end = self.scroll_y >= self.max_scroll_y
        self.rows.append(row)
        if len(self.rows) > self.max_lines + self.max_lines // 10:
            drop = len(self.rows) - self.max_lines
            del self.rows[:drop]
            self._laid_out = 0
        if self._held is None:
            self._added(at_end)
        elif self._held is False:
            self._held = at_end  # whether the log followed its end before the first row

    def _added(self, at_end: bool) -> None:
        self._layout()
        if at_end:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    # -- layout and drawing -----------------------------------------------------------------------

    def on_resize(self) -> None:
        self._layout()

    def on_show(self) -> None:
        self._layout()
        self.scroll_end(animate=False, immediate=False, x_axis=False)

    def _layout(self) -> None:
        """Wrap the rows not laid out yet at the current width; update the scrollable size."""
        width = self.scrollable_content_region.width
        if width <= 0 or not self.display:
            return  # hidden: draw when shown
        if width != self._width:
            self._width = width
            self._laid_out = 0
        rows = self.rows
        offsets = self._offsets
        del offsets[self._laid_out :]
        line = offsets[-1] + rows[len(offsets) - 1].height if offsets else 0
        for row in rows[self._laid_out :]:
            if row.width != width:
                row.strips = []
                row.height = self._measure(row, width)
                row.width = width
            offsets.append(line)
            line += row.height
        self._laid_out = len(rows)
        self.virtual_size = Size(width, line)
        self.refresh()

    def _measure(self, row: Row, width: int) -> int:
        """How many lines `row` takes at `width`: what `_draw` would give, mostly without
        drawing (a divider is drawn: there are few)."""
        if row.entry is None:
            row.strips = self._draw(row, width)
            return len(row.strips)
        text = format_entry(row.entry)
        column = max(1, width - STAMP_WIDTH)
        if text.cell_len <= column and "\n" not in text.plain:
            return 1
        console = self.app.console
        options = console.options.update_width(column)
        lines = text.wrap(
            console,
            column,
            justify=text.justify or options.justify or "default",
            overflow="fold",
            tab_size=text.tab_size or console.tab_size or 8,
            no_wrap=False,
        )
        return max(1, len(lines))

    def _strips(self, row: Row) -> list[Strip]:
        """`row`'s lines at the width it was laid out at, drawn now if need be, as many as its
        height (which the offsets of the rows after it count on)."""
        if not row.strips and row.height:
            strips = self._draw(row, row.width)
            if len(strips) < row.height:
                strips += [Strip([Segment(" " * row.width)], row.width)] * (
                    row.height - len(strips)
                )
            row.strips = strips[: row.height]
        return row.strips

    def _draw(self, row: Row, width: int) -> list[Strip]:
        console = self.app.console
        if row.entry is None:
            label = f" {row.divider} "
            side = max(0, width - len(label))
            text = Text("─" * (side // 2) + label + "─" * (side - side // 2), style="yellow")
            lines = console.render_lines(text, console.options.update_width(width), pad=True)
            return [Strip(line, width) for line in lines] or [Strip([Segment(" " * width)], width)]
        # the time, then the text wrapped in its own column (what a two-column grid draws, at a
        # third of the cost: a flood draws every line it adds)
        stamp = time.strftime("%H:%M", time.localtime(row.entry.time))
        text = format_entry(row.entry)
        text.overflow = "fold"
        column = max(1, width - STAMP_WIDTH)
        lines = console.render_lines(text, console.options.update_width(column), pad=True)
        first = [Segment(stamp, _DIM), Segment(" ", _NULL)]
        under = [Segment(" " * STAMP_WIDTH, _NULL)]
        return [
            Strip([*(under if i else first), *line], width) for i, line in enumerate(lines)
        ] or [Strip([Segment(" " * width)], width)]

    def render_lines(self, crop: Region) -> list[Strip]:
        # the widget's style, once for the whole screenful: working it out (from every
        # ancestor's styles) cost more than drawing the lines, once a line during a flood
        self._style = self.rich_style
        self._line_width = self.scrollable_content_region.width
        try:
            return super().render_lines(crop)
        finally:
            self._style = None

    def render_line(self, y: int) -> Strip:
        style = self._style
        if style is None:
            style, self._line_width = self.rich_style, self.scrollable_content_region.width
        width = self._line_width
        scroll_x, scroll_y = self.scroll_offset
        number = scroll_y + y
        offsets = self._offsets
        if not offsets or number >= self.virtual_size.height:
            return Strip.blank(width, style)
        index = bisect.bisect_right(offsets, number) - 1
        row = self.rows[index]
        strips = self._strips(row)
        part = number - offsets[index]
        if part >= len(strips):
            return Strip.blank(width, style)
        return strips[part].crop_extend(scroll_x, scroll_x + width, style).apply_style(style)


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
    if entry.state:
        failed = entry.state.startswith("not sent")
        line.append(f"  [{entry.state}]", style="bold red" if failed else "dim italic")
    if entry.mention:
        line.stylize("on #5a3d00")
    return line
