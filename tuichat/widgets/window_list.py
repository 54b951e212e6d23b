"""The list of windows: server, channels, private conversations, with unread counts."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tuichat.client_state import Window
from tuichat.text import plain


class WindowList(OptionList):
    """Shows every window; selecting one (keys or mouse) posts `OptionList.OptionSelected`."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = False
        self.border_title = "windows"

    def show(self, windows: list[tuple[str, Window]], current: str) -> None:
        options = []
        for index, (key, window) in enumerate(windows, start=1):
            label = Text(f"{index:>2} ", style="dim")
            name = plain(window.name)
            style = (
                "bold"
                if key == current
                else ("dim" if window.kind == "channel" and not window.joined else "")
            )
            label.append(name, style=style)
            if window.unread and key != current:
                label.append(f" {window.unread}", style="bold yellow")
            if window.mentioned and key != current:
                label.append(" !", style="bold red")
            options.append(Option(label, id=key))
        self.set_options(options)
        keys = [key for key, _ in windows]
        if current in keys:
            self.highlighted = keys.index(current)
