"""User text for display: IRC formatting rendered, control characters neutralised, never markup.

Everything here returns `rich.text.Text` objects or plain strings; none of it parses markup, so a
message like `[bold]x[/]` or `[@click=app.quit]` shows literally.
"""

from __future__ import annotations

import re
import zlib

from rich.style import Style
from rich.text import Text

from tuichat.net.protocol import casefold

# the 16 standard IRC colours (mIRC palette)
IRC_COLOURS = (
    "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
    "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
)  # fmt: skip

BOLD, COLOUR, HEX_COLOUR, RESET, MONOSPACE, REVERSE, ITALIC, STRIKE, UNDERLINE = (
    "\x02", "\x03", "\x04", "\x0f", "\x11", "\x16", "\x1d", "\x1e", "\x1f",
)  # fmt: skip
_FORMAT_RE = re.compile(
    r"\x03(?:([0-9]{1,2})(?:,([0-9]{1,2}))?)?"
    r"|\x04(?:([0-9a-fA-F]{6})(?:,([0-9a-fA-F]{6}))?)?"
    r"|[\x02\x0f\x11\x16\x1d\x1e\x1f]"
)
# C0 and C1 controls, DEL, and the bidirectional overrides that could reorder what is shown
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

NICK_COLOURS = (
    "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2",
    "#d19a66", "#be5046", "#7ec699", "#f78c6c", "#82aaff", "#c3e88d",
)  # fmt: skip


def strip_controls(text: str) -> str:
    """Drop control characters (a tab becomes a space)."""
    return _CONTROL_RE.sub("", text.replace("\t", " "))


def plain(text: str) -> str:
    """Text with IRC formatting removed and control characters neutralised."""
    return strip_controls(_FORMAT_RE.sub("", text))


def nick_colour(nick: str) -> str:
    """A stable colour for a nick (same nick, same colour, on every run)."""
    return NICK_COLOURS[zlib.crc32(casefold(nick).encode()) % len(NICK_COLOURS)]


def _colour(code: str | None) -> str | None:
    if code is None:
        return None
    number = int(code)
    return IRC_COLOURS[number] if number < len(IRC_COLOURS) else None


def render(text: str, style: Style | str = "") -> Text:
    """IRC text as a `Text`: bold, italic, underline, strike, reverse and colours rendered."""
    out = Text(style=style)
    bold = italic = underline = strike = reverse = False
    fg: str | None = None
    bg: str | None = None
    pos = 0

    def emit(chunk: str) -> None:
        chunk = strip_controls(chunk)
        if chunk:
            out.append(
                chunk,
                Style(
                    bold=bold or None,
                    italic=italic or None,
                    underline=underline or None,
                    strike=strike or None,
                    reverse=reverse or None,
                    color=fg,
                    bgcolor=bg,
                ),
            )

    for match in _FORMAT_RE.finditer(text):
        emit(text[pos : match.start()])
        pos = match.end()
        code = match.group()[0]
        if code == BOLD:
            bold = not bold
        elif code == ITALIC:
            italic = not italic
        elif code == UNDERLINE:
            underline = not underline
        elif code == STRIKE:
            strike = not strike
        elif code == REVERSE:
            reverse = not reverse
        elif code == RESET:
            bold = italic = underline = strike = reverse = False
            fg = bg = None
        elif code == COLOUR:
            if match.group(1) is None:
                fg = bg = None
            else:
                fg = _colour(match.group(1))
                if match.group(2) is not None:
                    bg = _colour(match.group(2))
        elif code == HEX_COLOUR:
            if match.group(3) is None:
                fg = bg = None
            else:
                fg = "#" + match.group(3)
                if match.group(4) is not None:
                    bg = "#" + match.group(4)
    emit(text[pos:])
    return out
