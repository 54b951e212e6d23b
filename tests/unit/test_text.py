"""Unit tests for user text on screen: IRC formatting as styles, controls gone, never markup."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style
from rich.text import Text

from tuichat.client_state import ACTION, ERROR, EVENT, INFO, MESSAGE, NOTICE, Entry
from tuichat.text import IRC_COLOURS, NICK_COLOURS, nick_colour, plain, render, strip_controls
from tuichat.widgets.chat_log import format_entry

T0 = 1_700_000_000.0

# what must never reach the screen: C0, DEL, C1 and the bidi embeddings, overrides and isolates
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

MARKUP = [
    "[bold]x[/]",
    "[/]",
    "[@click=app.quit]quit[/]",
    "[link=https://evil.example]x[/link]",
    "[red on white]x",
    "[b]",
    r"\[escaped]",
    "$nick",
    ":smile:",
]


CONSOLE = Console(color_system="truecolor")


def style_at(text: Text, index: int) -> Style:
    """The combined style of character `index` of `text`."""
    return text.get_style_at_offset(CONSOLE, index)


def fg(text: Text, index: int) -> str | None:
    colour = style_at(text, index).color
    return None if colour is None else colour.name


def bg(text: Text, index: int) -> str | None:
    colour = style_at(text, index).bgcolor
    return None if colour is None else colour.name


def entry(kind: str, text: str, nick: str | None = "bob", mention: bool = False) -> Entry:
    return Entry(T0, kind, text, nick=nick, mention=mention)


# markup stays literal -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", MARKUP)
def test_markup_is_shown_literally(text: str) -> None:
    assert plain(text) == text
    rendered = render(text)
    assert rendered.plain == text
    assert rendered.spans == []


@pytest.mark.parametrize("text", MARKUP)
@pytest.mark.parametrize("kind", [MESSAGE, ACTION, NOTICE, EVENT, ERROR, INFO])
def test_format_entry_shows_markup_literally(kind: str, text: str) -> None:
    line = format_entry(entry(kind, text, nick=text))
    assert line.plain.endswith(text)
    if kind in (MESSAGE, ACTION, NOTICE):
        assert text in line.plain[: -len(text)]  # the nick too
    for index in range(len(line.plain)):
        style = style_at(line, index)
        assert style.link is None
        assert not style.meta  # no @click actions


# control characters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),  # ESC gone: no terminal escape survives
        ("\x1b]0;title\x07x", "]0;titlex"),
        ("line one\rline two", "line oneline two"),
        ("line\nbreak", "linebreak"),
        ("ding\x07", "ding"),
        ("nul\x00byte", "nulbyte"),
        ("back\x08space", "backspace"),
        ("del\x7f", "del"),
        ("c1 \x85next \x9bcsi \x90dcs", "c1 next csi dcs"),
        ("bidi \u202egnp.exe", "bidi gnp.exe"),
        ("\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069isolates", "isolates"),
        ("tab\there", "tab here"),
        ("\x0e\x1a\x1c\x7f", ""),
    ],
)
def test_control_characters_are_removed(raw: str, expected: str) -> None:
    assert strip_controls(raw) == expected
    assert plain(raw) == expected
    assert render(raw).plain == expected
    for kind in (MESSAGE, ACTION, NOTICE, EVENT, ERROR, INFO):
        line = format_entry(entry(kind, raw, nick="b\x1bo\x07b"))
        assert line.plain.endswith(expected)
        assert not FORBIDDEN.search(line.plain), (kind, line.plain)


@pytest.mark.parametrize(
    "text",
    [
        "日本語のテキスト",
        "emoji 🎉🙂",
        "family 👨\u200d👩\u200d👧 ok",
        "flag 🇫🇷",
        "é, ü, ß",
        "\uff57\uff49\uff44\uff45",  # fullwidth "wide",
    ],
)
def test_wide_characters_and_emoji_are_kept(text: str) -> None:
    assert plain(text) == text
    assert render(text).plain == text
    assert render(text).cell_len == Text(text).cell_len
    assert format_entry(entry(MESSAGE, text, nick="日本")).plain == f"<日本> {text}"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_nothing_dangerous_survives_and_render_agrees_with_plain(text: str) -> None:
    rendered = render(text)
    assert not FORBIDDEN.search(rendered.plain)
    assert rendered.plain == plain(text)
    for kind in (MESSAGE, EVENT):
        assert not FORBIDDEN.search(format_entry(entry(kind, text, nick=text)).plain)


# IRC formatting ----------------------------------------------------------------------------------


def test_bold_italic_underline_strike_reverse() -> None:
    text = render("a\x02b\x02c\x1di\x1d\x1fu\x1f\x1es\x1e\x16r\x16z")
    assert text.plain == "abciusrz"
    assert style_at(text, 0) == Style()
    assert style_at(text, 1).bold
    assert not style_at(text, 2).bold
    assert style_at(text, 3).italic
    assert style_at(text, 4).underline
    assert style_at(text, 5).strike
    assert style_at(text, 6).reverse
    assert style_at(text, 7) == Style()


def test_styles_combine_and_reset_clears_all() -> None:
    text = render("\x02\x1d\x1f\x0304,01all\x0fnone")
    assert text.plain == "allnone"
    style = style_at(text, 0)
    assert (style.bold, style.italic, style.underline) == (True, True, True)
    assert (fg(text, 0), bg(text, 0)) == (IRC_COLOURS[4], IRC_COLOURS[1])
    assert style_at(text, 3) == Style()


def test_colour_codes() -> None:
    text = render("\x034red\x0312,8blue-on-yellow\x039green-keeps-bg\x03plain")
    assert text.plain == "redblue-on-yellowgreen-keeps-bgplain"
    assert (fg(text, 0), bg(text, 0)) == ("#ff0000", None)
    assert (fg(text, 3), bg(text, 3)) == (IRC_COLOURS[12], IRC_COLOURS[8])
    green = len("redblue-on-yellow")
    assert (fg(text, green), bg(text, green)) == (IRC_COLOURS[9], IRC_COLOURS[8])
    assert style_at(text, len(text.plain) - 1) == Style()


def test_colour_digits_and_commas() -> None:
    # two digits at most; a comma without digits after it is text
    text = render("\x0304123\x034,x\x0399,99default")
    assert text.plain == "123,xdefault"
    assert fg(text, 0) == IRC_COLOURS[4]
    assert style_at(text, len("123,x")) == Style()  # 99 is "default": no colour


def test_hex_colours() -> None:
    text = render("\x04ff8800orange\x0400ff00,102030green\x04off")
    assert text.plain == "orangegreenoff"
    assert (fg(text, 0), bg(text, 0)) == ("#ff8800", None)
    assert (fg(text, 6), bg(text, 6)) == ("#00ff00", "#102030")
    assert style_at(text, len(text.plain) - 1) == Style()


@pytest.mark.parametrize(
    "raw",
    [
        "\x02bold\x02",
        "\x0304,12colour",
        "\x03",
        "\x0399,99",
        "\x04abcdef,012345x",
        "\x0f\x11\x16\x1d\x1e\x1f",
        "\x02\x02\x02",
    ],
)
def test_formatting_codes_never_reach_the_text(raw: str) -> None:
    assert not FORBIDDEN.search(render(raw).plain)
    assert not FORBIDDEN.search(plain(raw))
    assert not re.search(r"^\d|^,", plain(raw))  # colour numbers go with their code


def test_render_keeps_a_base_style() -> None:
    text = render("\x02x", style="italic")
    assert text.plain == "x"
    style = style_at(text, 0)
    assert style.italic and style.bold


# nick colours ------------------------------------------------------------------------------------


def test_nick_colours_are_stable_and_casefolded() -> None:
    assert nick_colour("alice") == "#c3e88d"  # the same on every run and every machine
    assert nick_colour("alice") == nick_colour("ALICE")
    assert nick_colour("[x]") == nick_colour("{X}")  # rfc1459 casefolding
    assert nick_colour("") in NICK_COLOURS


def test_nick_colours_spread_over_the_palette() -> None:
    colours = {nick_colour(f"user{i}") for i in range(200)}
    assert colours <= set(NICK_COLOURS)
    assert len(colours) >= len(NICK_COLOURS) - 2


# format_entry ------------------------------------------------------------------------------------


def test_message_entry() -> None:
    line = format_entry(entry(MESSAGE, "hello \x02world\x02"))
    assert line.plain == "<bob> hello world"
    nick_at = line.plain.index("bob")
    assert style_at(line, nick_at).bold
    assert fg(line, nick_at) == nick_colour("bob")
    assert style_at(line, line.plain.index("world")).bold
    assert not style_at(line, line.plain.index("hello")).bold


@pytest.mark.parametrize(
    ("kind", "nick", "expected"),
    [
        (ACTION, "bob", "* bob waves"),
        (NOTICE, "bob", "-bob- waves"),
        (NOTICE, None, "-server- waves"),
        (EVENT, None, "-- waves"),
        (ERROR, None, "!! waves"),
        (INFO, None, "-- waves"),
    ],
)
def test_other_entries(kind: str, nick: str | None, expected: str) -> None:
    assert format_entry(entry(kind, "\x02waves", nick=nick)).plain == expected


def test_action_is_italic() -> None:
    line = format_entry(entry(ACTION, "waves"))
    assert style_at(line, line.plain.index("waves")).italic


def test_mention_is_highlighted() -> None:
    line = format_entry(entry(MESSAGE, "alice: hi", mention=True))
    plain_line = format_entry(entry(MESSAGE, "alice: hi"))
    assert bg(line, len(line.plain) - 1) is not None
    assert bg(line, 0) is not None
    assert bg(plain_line, len(plain_line.plain) - 1) is None
