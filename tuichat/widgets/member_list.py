"""The user list of the current channel: operators and voiced marked, away users dimmed."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tuichat.client_state import Member
from tuichat.text import nick_colour, plain


class MemberList(OptionList):
    """One nick per line, sorted; the border title counts them. Selecting one opens a query.

    A huge channel shows the first members it is given and a line for the rest: 100,000 options
    would cost the UI seconds and hundreds of megabytes to show a screenful."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = False

    def show(self, members: list[Member], count: int | None = None) -> None:
        """Show `members`, of `count` in all (default: as many as given)."""
        count = len(members) if count is None else count
        options = []
        for member in members:
            nick = plain(member.nick)
            label = Text(
                member.prefix or " ", style="bold green" if member.prefix == "@" else "bold"
            )
            label.append(nick, style="dim" if member.away else nick_colour(nick))
            if member.account is not None:
                label.append(" ✓", style="dim green")  # logged in to an account
            options.append(Option(label, id=nick))
        if count > len(members):
            more = Text(f"… and {count - len(members)} more", style="dim italic")
            options.append(Option(more, disabled=True))
        self.set_options(options)
        self.border_title = f"{count} user{'s' if count != 1 else ''}" if count else "users"
