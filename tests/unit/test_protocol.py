"""Unit tests for the shared IRC protocol module: no sockets, no threads, no clock."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tuichat.net.protocol as protocol
from tuichat.net.protocol import (
    MAX_BODY,
    MAX_LINE,
    MAX_TAGS,
    RPL_WELCOME,
    Line,
    LineBuffer,
    ParseError,
    TooLong,
    Unparsable,
    casefold,
    escape_tag_value,
    format_server_time,
    is_valid_channel,
    is_valid_nick,
    mask_matches,
    normalize_mask,
    parse,
    parse_server_time,
    split_text,
    unescape_tag_value,
)

ROOT = Path(__file__).resolve().parents[2]


# parse --------------------------------------------------------------------------------------------

PARSE_CASES = [
    pytest.param("PING", Line("PING"), id="command-only"),
    pytest.param("PING irc.example.com", Line("PING", ("irc.example.com",)), id="middle"),
    pytest.param("PING :irc.example.com", Line("PING", ("irc.example.com",)), id="trailing"),
    pytest.param(
        ":nick!user@host PRIVMSG #chan :hello world",
        Line("PRIVMSG", ("#chan", "hello world"), source="nick!user@host"),
        id="source-and-trailing-with-space",
    ),
    pytest.param(
        "PRIVMSG #chan hello", Line("PRIVMSG", ("#chan", "hello")), id="last-without-colon"
    ),
    pytest.param("PRIVMSG #chan :", Line("PRIVMSG", ("#chan", "")), id="empty-trailing"),
    pytest.param("CMD :", Line("CMD", ("",)), id="only-empty-trailing"),
    pytest.param(
        "PRIVMSG #chan ::-)", Line("PRIVMSG", ("#chan", ":-)")), id="trailing-starts-colon"
    ),
    pytest.param("PRIVMSG #chan :a :b", Line("PRIVMSG", ("#chan", "a :b")), id="colon-in-trailing"),
    pytest.param(
        "PRIVMSG #chan :  x  ", Line("PRIVMSG", ("#chan", "  x  ")), id="trailing-spaces-kept"
    ),
    pytest.param("TEST foo:bar", Line("TEST", ("foo:bar",)), id="colon-inside-middle"),
    pytest.param("MODE  #chan   +o  nick", Line("MODE", ("#chan", "+o", "nick")), id="many-spaces"),
    pytest.param("   PING x", Line("PING", ("x",)), id="leading-spaces"),
    pytest.param("PING x   ", Line("PING", ("x",)), id="trailing-spaces"),
    pytest.param("CMD ", Line("CMD"), id="command-then-space"),
    pytest.param(":src   PING   x", Line("PING", ("x",), source="src"), id="spaces-after-source"),
    pytest.param("PING x\r\n", Line("PING", ("x",)), id="line-ending-stripped"),
    pytest.param("privmsg #a :hi", Line("PRIVMSG", ("#a", "hi")), id="lowercase-command"),
    pytest.param("PrivMsg #a hi", Line("PRIVMSG", ("#a", "hi")), id="mixed-case-command"),
    pytest.param(
        ":irc.example.com 001 nick :Welcome to IRC",
        Line("001", ("nick", "Welcome to IRC"), source="irc.example.com"),
        id="numeric",
    ),
    pytest.param(
        ":gravel.mozilla.org 432  #momo :Erroneous Nickname: Illegal characters",
        Line(
            "432",
            ("#momo", "Erroneous Nickname: Illegal characters"),
            source="gravel.mozilla.org",
        ),
        id="numeric-double-space",
    ),
    pytest.param(
        ":services.esper.net MODE #foo-bar +o foobar  ",
        Line("MODE", ("#foo-bar", "+o", "foobar"), source="services.esper.net"),
        id="mode-trailing-spaces",
    ),
    pytest.param(
        "CMD a b c d e f g h i j k l m n o :p q",
        Line("CMD", (*"abcdefghijklmno", "p q")),
        id="many-params",
    ),
    pytest.param(
        "@time=2021-01-01T00:00:00.000Z :n!u@h PRIVMSG #c :hi",
        Line("PRIVMSG", ("#c", "hi"), source="n!u@h", tags={"time": "2021-01-01T00:00:00.000Z"}),
        id="tag-and-source",
    ),
    pytest.param(
        "@a=b;c;d= PING", Line("PING", tags={"a": "b", "c": "", "d": ""}), id="empty-values"
    ),
    pytest.param(
        "@+draft/reply=123;vendor.example/x=y TAGMSG #c",
        Line("TAGMSG", ("#c",), tags={"+draft/reply": "123", "vendor.example/x": "y"}),
        id="client-and-vendor-tags",
    ),
    pytest.param("@a=1;;b=2 PING", Line("PING", tags={"a": "1", "b": "2"}), id="empty-tag-item"),
    pytest.param("@=x;a=1 PING", Line("PING", tags={"a": "1"}), id="empty-tag-key-dropped"),
    pytest.param(
        "@tag1=1;tag2=3;tag3=4;tag1=5 COMMAND",
        Line("COMMAND", tags={"tag1": "5", "tag2": "3", "tag3": "4"}),
        id="duplicate-tag-last-wins",
    ),
    pytest.param(
        r"@a=x\sy\:z\\w\r\n PING",
        Line("PING", tags={"a": "x y;z\\w\r\n"}),
        id="tag-escapes",
    ),
    pytest.param(
        "@a=b   :src   CMD   x",
        Line("CMD", ("x",), source="src", tags={"a": "b"}),
        id="spaces-after-tags",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse(text: str, expected: Line) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "   ", "\r\n", "@a=b", "@a=b ", ":src", ":src ", "@a=b :src", " :only", "@a :b :c"],
)
def test_parse_without_command_raises_parse_error(text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)


def test_parse_error_is_a_value_error() -> None:
    assert issubclass(ParseError, ValueError)


def test_numeric_constants_are_distinct_three_digit_strings() -> None:
    values = [
        getattr(protocol, name) for name in dir(protocol) if name.startswith(("RPL_", "ERR_"))
    ]
    assert values
    assert all(len(value) == 3 and value.isdigit() for value in values)
    assert len(set(values)) == len(values)
    assert parse(":irc.example.com 001 nick :Welcome").command == RPL_WELCOME


@pytest.mark.parametrize(
    ("source", "nick"),
    [
        ("nick!user@host", "nick"),
        ("nick@host", "nick"),
        ("nick", "nick"),
        ("irc.example.com", "irc.example.com"),
        (None, None),
    ],
)
def test_line_nick(source: str | None, nick: str | None) -> None:
    assert Line("PING", source=source).nick == nick


# format and round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "trailing", "wire"),
    [
        (Line("PING"), False, "PING"),
        (Line("PRIVMSG", ("#c", "hi")), False, "PRIVMSG #c hi"),
        (Line("PRIVMSG", ("#c", "hi")), True, "PRIVMSG #c :hi"),
        (Line("PRIVMSG", ("#c", "")), False, "PRIVMSG #c :"),
        (Line("PRIVMSG", ("#c", "a b")), False, "PRIVMSG #c :a b"),
        (Line("PRIVMSG", ("#c", ":)")), False, "PRIVMSG #c ::)"),
        (Line("PING", source=""), False, "PING"),
        (Line("CMD", ("x",), source="s", tags={"a": "b", "c": ""}), False, "@a=b;c :s CMD x"),
        (Line("CMD", tags={"k": "; \\\r\n"}), False, r"@k=\:\s\\\r\n CMD"),
    ],
)
def test_format(line: Line, trailing: bool, wire: str) -> None:
    assert line.format(trailing=trailing) == wire


def test_encode_adds_crlf_and_utf8() -> None:
    assert Line("PRIVMSG", ("#c", "café")).encode() == "PRIVMSG #c café\r\n".encode()
    assert Line("PRIVMSG", ("#c", "x")).encode(trailing=True) == b"PRIVMSG #c :x\r\n"


@pytest.mark.parametrize("middle", ["", "a b", ":x"])
def test_format_rejects_unsendable_middle_param(middle: str) -> None:
    with pytest.raises(ValueError, match="middle parameter"):
        Line("CMD", (middle, "last")).format()


ROUND_TRIP_CASES = [
    Line("PING"),
    Line("PRIVMSG", ("#chan", "hello world"), source="nick!user@host"),
    Line("PRIVMSG", ("#chan", "")),
    Line("PRIVMSG", ("#chan", ":)")),
    Line("PRIVMSG", ("#chan", " leading and trailing ")),
    Line("PRIVMSG", ("#chan", "\x01ACTION waves\x01")),
    Line("PRIVMSG", ("#ünï", "héllo 😀")),
    Line("TAGMSG", ("#chan",), tags={"+typing": "active", "msgid": "abc"}),
    Line("CMD", tags={"k": "; \\\r\n", "flag": ""}),
    Line("001", ("nick", "Welcome"), source="irc.example.com"),
    Line("MODE", ("#chan", "+ov", "a", "b")),
    Line("NICK", ("new",), source="old!u@h"),
]


@pytest.mark.parametrize("line", ROUND_TRIP_CASES, ids=lambda line: line.format())
@pytest.mark.parametrize("trailing", [False, True])
def test_round_trip_table(line: Line, trailing: bool) -> None:
    assert parse(line.format(trailing=trailing)) == line
    assert parse(line.encode(trailing=trailing).decode()) == line


# Whitespace other than the space (tab, NBSP, U+3000, ...) is left out of generated params: parse
# splits on it, see test_parse_splits_only_on_space.
_word_char = st.characters(exclude_categories=["Cs"]).filter(
    lambda c: not c.isspace() and c != "\0"
)
_commands = st.from_regex(r"[A-Z]{1,12}|[0-9]{3}", fullmatch=True)
_middles = st.text(_word_char, min_size=1, max_size=12).filter(lambda s: not s.startswith(":"))
_lasts = st.text(st.one_of(_word_char, st.sampled_from(" :")), max_size=40)
_sources = st.none() | st.text(_word_char, min_size=1, max_size=30)
_tag_keys = st.from_regex(r"\+?([a-z0-9.-]{1,10}/)?[A-Za-z0-9-]{1,12}", fullmatch=True)
_tag_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


@st.composite
def _lines(draw: st.DrawFn) -> Line:
    middles = draw(st.lists(_middles, max_size=5))
    last = draw(st.lists(_lasts, max_size=1))
    return Line(
        command=draw(_commands),
        params=(*middles, *last),
        source=draw(_sources),
        tags=draw(st.dictionaries(_tag_keys, _tag_values, max_size=4)),
    )


@given(_lines(), st.booleans())
def test_round_trip_property(line: Line, trailing: bool) -> None:
    assert parse(line.format(trailing=trailing)) == line
    assert parse(line.encode(trailing=trailing).decode()) == line


@pytest.mark.parametrize(
    "line",
    [
        Line("PRIVMSG", ("#chan", "a\tb")),
        Line("MODE", ("#a\xa0b", "+k", "key")),
        Line("PRIVMSG", ("#c", "x\u3000y")),
        Line("JOIN", ("#a\x1fb",)),
    ],
    ids=["tab", "nbsp", "ideographic-space", "unit-separator"],
)
def test_parse_splits_only_on_space(line: Line) -> None:
    # "PRIVMSG #chan a\tb" parses to params ("#chan", "a", "b").
    assert parse(line.format()) == line


_irc_heavy_text = st.text(st.one_of(st.sampled_from(" :@;=\\!\r\n\t\0"), st.characters()))


@given(st.one_of(st.text(), _irc_heavy_text))
def test_parse_raises_only_parse_error(text: str) -> None:
    try:
        line = parse(text)
    except ParseError:
        return
    assert line.command
    assert " " not in line.command
    assert all(" " not in param for param in line.params[:-1])


# tag escaping (IRCv3 message-tags) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (";", r"\:"),
        (" ", r"\s"),
        ("\\", "\\\\"),
        ("\r", r"\r"),
        ("\n", r"\n"),
        ("plain", "plain"),
        ("", ""),
        ("a;b c\\d\r\ne", r"a\:b\sc\\d\r\ne"),
    ],
)
def test_escape_tag_value(raw: str, escaped: str) -> None:
    assert escape_tag_value(raw) == escaped
    assert unescape_tag_value(escaped) == raw


@pytest.mark.parametrize(
    ("escaped", "raw"),
    [
        (r"value\ntest", "value\ntest"),
        (r"value\1", "value1"),  # an unknown escape drops the backslash
        (r"\b", "b"),
        ("value1\\", "value1"),  # a trailing backslash is dropped
        ("\\", ""),
        (r"\\s", "\\s"),  # an escaped backslash followed by a plain s
        (r"\\\\\:\\s\s\r\n", "\\\\;\\s \r\n"),
    ],
)
def test_unescape_tag_value_spec_cases(escaped: str, raw: str) -> None:
    assert unescape_tag_value(escaped) == raw


def test_parse_tag_vectors_from_the_spec() -> None:
    line = parse(r"@a=b\\and\nk;c=72\s45;d=gh\:764 foo")
    assert line.tags == {"a": "b\\and\nk", "c": "72 45", "d": "gh;764"}
    assert parse(r"@tag1=value1\ COMMAND").tags == {"tag1": "value1"}
    assert parse("@c;h=;a=b :quux ab cd") == Line(
        "AB", ("cd",), source="quux", tags={"c": "", "h": "", "a": "b"}
    )


@given(st.text())
def test_tag_escaping_round_trip(value: str) -> None:
    escaped = escape_tag_value(value)
    assert not set(escaped) & set("; \r\n")
    assert unescape_tag_value(escaped) == value


# LineBuffer ---------------------------------------------------------------------------------------


def feed_chunks(buffer: LineBuffer, data: bytes, size: int) -> list[str | TooLong]:
    out: list[str | TooLong] = []
    for start in range(0, len(data), size):
        out.extend(buffer.feed(data[start : start + size]))
    return out


def tagged(section_len: int, body: bytes) -> bytes:
    """A line whose tag section (`@`, tags, space) takes `section_len` bytes."""
    return b"@k=" + b"v" * (section_len - 4) + b" " + body


def body_of(length: int) -> bytes:
    body = b"PRIVMSG #c :" + b"x" * (length - len(b"PRIVMSG #c :"))
    assert len(body) == length
    return body


STREAM = b"PING a\r\nPING b\n:s PRIVMSG #c :caf\xc3\xa9 \xf0\x9f\x98\x80\r\n\r\nQUIT\r\n"
STREAM_LINES = ["PING a", "PING b", ":s PRIVMSG #c :café 😀", "QUIT"]


def test_linebuffer_crlf_and_lf_merged_in_one_chunk() -> None:
    assert list(LineBuffer().feed(STREAM)) == STREAM_LINES


@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_linebuffer_split_chunks(size: int) -> None:
    assert feed_chunks(LineBuffer(), STREAM, size) == STREAM_LINES


def test_linebuffer_keeps_partial_line() -> None:
    buffer = LineBuffer()
    assert list(buffer.feed(b"A\r\nB\r\nC")) == ["A", "B"]
    assert buffer.pending == 1
    assert list(buffer.feed(b"D\r")) == ["CD"]  # a CR ends a line at once
    assert buffer.pending == 0
    assert list(buffer.feed(b"\nE\n")) == ["E"]
    assert buffer.pending == 0


def test_linebuffer_multibyte_character_split_across_chunks() -> None:
    buffer = LineBuffer()
    assert list(buffer.feed(b"PRIVMSG #c :caf\xc3")) == []
    assert list(buffer.feed(b"\xa9\r\n")) == ["PRIVMSG #c :café"]


def test_linebuffer_skips_empty_lines() -> None:
    assert list(LineBuffer().feed(b"\r\n\n\r\n  \r\nPING\r\n\n")) == ["PING"]


def test_linebuffer_invalid_utf8_becomes_replacement_character() -> None:
    out = list(LineBuffer().feed(b"PRIVMSG #c :caf\xc3 \xff\xfe!\r\n"))
    assert out == ["PRIVMSG #c :caf\ufffd \ufffd\ufffd!"]


def test_linebuffer_nul_becomes_replacement_character() -> None:
    assert list(LineBuffer().feed(b"PRIVMSG #c :a\x00b\r\n")) == ["PRIVMSG #c :a\ufffdb"]


@pytest.mark.parametrize("ending", [b"\r\n", b"\n"])
@pytest.mark.parametrize("size", [1, 100, 4096])
def test_linebuffer_body_limit_counts_crlf(ending: bytes, size: int) -> None:
    # 510 bytes of text and the CRLF make the 512 bytes a body may take.
    ok, over = body_of(MAX_BODY - 2), body_of(MAX_BODY - 1)
    data = ok + ending + over + ending + b"PING\r\n"
    assert feed_chunks(LineBuffer(), data, size) == [ok.decode(), TooLong(), "PING"]


@pytest.mark.parametrize("size", [1000, 10_000])
def test_linebuffer_tag_limit(size: int) -> None:
    ok = tagged(MAX_TAGS, b"PING")
    over = tagged(MAX_TAGS + 1, b"PING")
    data = ok + b"\r\n" + over + b"\r\n" + b"PING\r\n"
    out = feed_chunks(LineBuffer(), data, size)
    assert out == [ok.decode(), TooLong(tags_too_long=True), "PING"]
    line = parse(ok.decode())
    assert line.command == "PING"
    assert len(line.tags["k"]) == MAX_TAGS - 4


def test_linebuffer_longest_tagged_line_is_accepted() -> None:
    longest = tagged(MAX_TAGS, body_of(MAX_BODY - 2))
    assert len(longest) + 2 == MAX_LINE
    too_long_body = tagged(MAX_TAGS, body_of(MAX_BODY - 1))
    data = longest + b"\r\n" + too_long_body + b"\r\n"
    assert feed_chunks(LineBuffer(), data, 512) == [longest.decode(), TooLong()]


@pytest.mark.parametrize(("start", "bound"), [(b"", MAX_BODY), (b"@", MAX_LINE)])
def test_linebuffer_endless_line_is_bounded_and_reported_once(start: bytes, bound: int) -> None:
    buffer = LineBuffer()
    assert list(buffer.feed(start)) == []
    chunk = b"a" * 4096
    for _ in range(1024 * 1024 // len(chunk)):
        assert list(buffer.feed(chunk)) == []
        assert buffer.pending <= bound
    out = list(buffer.feed(b"tail\r\nPING :one\r\n"))
    assert len(out) == 2
    assert isinstance(out[0], TooLong)
    assert out[1] == "PING :one"
    assert buffer.pending == 0
    assert list(buffer.feed(b"PING :two\r\n")) == ["PING :two"]


def test_linebuffer_endless_line_byte_at_a_time_is_bounded() -> None:
    buffer = LineBuffer()
    for _ in range(2 * MAX_BODY):
        assert list(buffer.feed(b"x")) == []
        assert buffer.pending <= MAX_BODY
    assert list(buffer.feed(b"\n")) == [TooLong()]
    assert list(buffer.feed(b"PING\n")) == ["PING"]


def test_linebuffer_custom_limits() -> None:
    buffer = LineBuffer(max_body=10, max_tags=8)
    data = b"12345678\r\n123456789\r\n@a=1234 X\r\n@a=12345 X\r\n"
    assert list(buffer.feed(data)) == [
        "12345678",
        TooLong(),
        "@a=1234 X",
        TooLong(tags_too_long=True),
    ]


_SMALL_BODY, _SMALL_TAGS = 32, 64
# Runs of one byte reach the limits often: long tag sections, long blank lines, long words.
_runs = st.tuples(
    st.sampled_from(
        [b"a", b" ", b"@", b":", b";", b"=", b"\r", b"\x00", b"\xc3", b"\xa9", b"\xff"]
    ),
    st.integers(1, 100),
).map(lambda run: run[0] * run[1])
_line_bytes = st.tuples(
    st.sampled_from([b"", b"@"]),
    st.lists(_runs, max_size=6).map(b"".join),
).map(b"".join)
# A blank line over the limit is skipped or reported depending on the chunks: see
# test_linebuffer_blank_overlong_line_does_not_depend_on_chunks.
_nonblank_lines = _line_bytes.filter(lambda line: line.strip(b" \r"))


def _erase_flag(out: list[str | TooLong]) -> list[str | TooLong]:
    # Whether a TooLong says tags_too_long depends on the chunks: see
    # test_linebuffer_tags_too_long_does_not_depend_on_chunks.
    return [TooLong() if isinstance(item, TooLong) else item for item in out]


@given(
    st.lists(st.tuples(_nonblank_lines, st.sampled_from([b"\n", b"\r\n"])), max_size=8),
    _line_bytes,
    st.data(),
)
def test_linebuffer_chunking_does_not_change_output(
    lines: list[tuple[bytes, bytes]], tail: bytes, data: st.DataObject
) -> None:
    stream = b"".join(line + ending for line, ending in lines) + tail
    whole = LineBuffer(_SMALL_BODY, _SMALL_TAGS)
    expected = list(whole.feed(stream))
    # a bare CR ends a line as LF does
    assert len(expected) <= sum(len(line.split(b"\r")) for line, _ in lines) + tail.count(b"\r")
    assert all(isinstance(item, TooLong) or "\0" not in item for item in expected)

    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=30)))
    chunked = LineBuffer(_SMALL_BODY, _SMALL_TAGS)
    out: list[str | TooLong] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out.extend(chunked.feed(stream[start:end]))
        assert chunked.pending <= _SMALL_BODY + _SMALL_TAGS
    assert _erase_flag(out) == _erase_flag(expected)
    assert chunked.pending == whole.pending


@given(st.binary(max_size=2000))
def test_linebuffer_arbitrary_bytes(data: bytes) -> None:
    buffer = LineBuffer(max_body=64, max_tags=128)
    for item in buffer.feed(data):
        assert isinstance(item, TooLong) or not set(item) & {"\n", "\0"}
    assert buffer.pending <= 64 + 128


def test_linebuffer_tags_too_long_does_not_depend_on_chunks() -> None:
    line = tagged(20_000, b"PING") + b"\r\n"
    assert list(LineBuffer().feed(line)) == [TooLong(tags_too_long=True)]
    assert feed_chunks(LineBuffer(), line, 4096) == [TooLong(tags_too_long=True)]


def test_linebuffer_lines_parses_what_feed_cuts_and_reports_what_it_cannot() -> None:
    """What both receive loops read: a Line per line, TooLong and Unparsable in their places."""
    buffer = LineBuffer(max_body=64)
    stream = b"PRIVMSG #a :hi\r\n:only.a.source\r\n" + b"x" * 100 + b"\r\n@k=v PI"
    items = list(buffer.lines(stream))
    assert items[0] == Line("PRIVMSG", ("#a", "hi"))
    assert isinstance(items[1], Unparsable) and items[1].text == ":only.a.source"
    assert isinstance(items[1].error, ParseError)
    assert items[2:] == [TooLong()]
    assert list(buffer.lines(b"NG :x\n")) == [Line("PING", ("x",), tags={"k": "v"})]


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_linebuffer_lines_is_feed_then_parse(data: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(data)]
    chunks = [data[start:end] for start, end in itertools.pairwise(bounds)]
    texts = []
    fed = LineBuffer(max_body=64)
    for chunk in chunks:
        texts.extend(fed.feed(chunk))
    expected: list[Line | TooLong | Unparsable] = []
    for item in texts:
        if isinstance(item, TooLong):
            expected.append(item)
            continue
        try:
            expected.append(parse(item))
        except ParseError as error:
            expected.append(Unparsable(item, error))
    buffer, seen = LineBuffer(max_body=64), []
    got = [item for chunk in chunks for item in buffer.lines(chunk, seen.append)]
    assert [repr(item) for item in got] == [repr(item) for item in expected]  # errors: by text
    assert seen == [item for item in texts if not isinstance(item, TooLong)]


# casemapping --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("ABC", "abc"),
        ("Nick", "nick"),
        ("[]\\~", "{}|^"),
        ("{}|^", "{}|^"),
        ("Nick[Away]", "nick{away}"),
        ("#Chan\\Ops", "#chan|ops"),
        ("É", "É"),  # rfc1459 folds ASCII only
        ("_`-", "_`-"),
        ("", ""),
    ],
)
def test_casefold(name: str, folded: str) -> None:
    assert casefold(name) == folded


_RFC1459_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz{}|^", "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~")


@given(st.text())
def test_casefold_equates_upper_and_lower_forms(name: str) -> None:
    folded = casefold(name)
    assert casefold(folded) == folded
    assert casefold(name.translate(_RFC1459_UPPER)) == folded
    assert len(folded) == len(name)


# nicks and channels -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nick", "valid"),
    [
        ("a", True),
        ("Nick", True),
        ("nick_", True),
        ("[foo]", True),
        ("`x", True),
        ("^", True),
        ("{a}|b", True),
        ("\\o", True),
        ("a-b", True),
        ("a1", True),
        ("x" * 9, True),
        ("x" * 10, False),
        ("", False),
        ("1abc", False),
        ("-abc", False),
        ("a b", False),
        ("a!b", False),
        ("a@b", False),
        ("#chan", False),
        ("a,b", False),
        ("a:b", False),
        (":a", False),
        ("ni*k", False),
        ("ni?k", False),
        ("a.b", False),
        ("é", False),
        ("nick\n", False),
        ("nick\x00", False),
    ],
)
def test_is_valid_nick(nick: str, valid: bool) -> None:
    assert is_valid_nick(nick, max_len=9) is valid


@pytest.mark.parametrize(
    ("name", "chantypes", "valid"),
    [
        ("#a", "#", True),
        ("#chan", "#", True),
        ("#Chan-with.dots_[]", "#", True),
        ("##x", "#", True),
        ("#ünï😀", "#", True),
        ("&local", "#&", True),
        ("#" + "x" * 19, "#", True),
        ("#" + "x" * 20, "#", False),
        ("#", "#", False),
        ("", "#", False),
        ("chan", "#", False),
        ("&local", "#", False),
        ("#a b", "#", False),
        ("#a,b", "#", False),
        ("#a\x07b", "#", False),
        ("#a\x00", "#", False),
        ("#a\r", "#", False),
        ("#a\n", "#", False),
        ("#a\tb", "#", False),
        ("#a\x7f", "#", False),
    ],
)
def test_is_valid_channel(name: str, chantypes: str, valid: bool) -> None:
    assert is_valid_channel(name, max_len=20, chantypes=chantypes) is valid


def test_is_valid_channel_rejects_c1_controls() -> None:
    assert is_valid_channel("#a\x85b", max_len=20) is False


# masks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "text", "matches"),
    [
        ("*", "", True),
        ("*", "nick!user@host", True),
        ("**", "x", True),
        ("nick!*@*", "nick!user@host", True),
        ("nick!*@*", "nick2!user@host", False),
        ("nick", "nick!user@host", False),  # anchored at the end
        ("ick!*@*", "nick!user@host", False),  # anchored at the start
        ("n?ck!*@*", "nick!u@h", True),
        ("n?ck", "nck", False),
        ("??", "a", False),
        ("??", "ab", True),
        ("??", "abc", False),
        ("*!*@*.example.com", "a!b@c.example.com", True),
        ("*!*@*.example.com", "a!b@example.com", False),
        ("NICK!*@*", "nick!u@h", True),
        ("[foo]!*@*", "{FOO}!u@h", True),  # rfc1459 casemapping
        ("a\\b", "A|B", True),
        ("~x", "^X", True),
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("a+b", "a+b", True),
        ("(x)|y", "(x)|y", True),
        ("(x)|y", "y", False),
        ("a*b", "a\nb", True),
    ],
)
def test_mask_matches(mask: str, text: str, matches: bool) -> None:
    assert mask_matches(mask, text) is matches


@pytest.mark.parametrize(
    ("mask", "normalized"),
    [
        ("bob", "bob!*@*"),
        ("*", "*!*@*"),
        ("*@host", "*!*@host"),
        ("user@host", "*!user@host"),
        ("@host", "*!*@host"),
        ("user@", "*!user@*"),
        ("@", "*!*@*"),
        ("bob!user@host", "bob!user@host"),
        ("*!*@*", "*!*@*"),
        ("bob!", "bob!*@*"),
        ("!user@host", "*!user@host"),
        ("bob!user", "bob!user@*"),
        ("bob!@host", "bob!*@host"),
        ("bob!user@", "bob!user@*"),
        ("!", "*!*@*"),
    ],
)
def test_normalize_mask(mask: str, normalized: str) -> None:
    assert normalize_mask(mask) == normalized


@given(st.text(min_size=1))
def test_normalize_mask_is_idempotent(mask: str) -> None:
    normalized = normalize_mask(mask)
    assert normalize_mask(normalized) == normalized
    assert "!" in normalized
    assert "@" in normalized


def test_normalize_empty_mask() -> None:
    assert normalize_mask("") == "*!*@*"


# split_text ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "pieces"),
    [
        ("hello", 10, ["hello"]),
        ("", 10, [""]),
        ("x" * 10, 10, ["x" * 10]),
        ("hello world", 8, ["hello", "world"]),
        ("aaaa bbbb cccc", 10, ["aaaa bbbb", "cccc"]),
        ("abcdefgh", 3, ["abc", "def", "gh"]),
        ("ééé", 4, ["éé", "é"]),  # 2 bytes each
        ("ééé", 5, ["éé", "é"]),
        ("€€€", 4, ["€", "€", "€"]),  # 3 bytes each
        ("😀😀", 5, ["😀", "😀"]),  # 4 bytes each
        ("aé", 2, ["a", "é"]),
        ("né hé", 5, ["né", "hé"]),
    ],
)
def test_split_text(text: str, limit: int, pieces: list[str]) -> None:
    assert split_text(text, limit) == pieces


_split_alphabet = st.sampled_from(["a", "b", " ", "é", "€", "😀"])


@given(st.text(_split_alphabet, max_size=200), st.integers(4, 40))
def test_split_text_pieces_fit_and_keep_the_text(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(len(piece.encode()) <= limit for piece in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    if len(text.encode()) <= limit:
        assert pieces == [text]


@given(st.text(st.sampled_from(["a", "é", "€", "😀"]), max_size=200), st.integers(4, 40))
def test_split_text_without_spaces_fills_each_piece(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert "".join(pieces) == text
    for piece, following in itertools.pairwise(pieces):
        assert len(piece.encode()) + len(following[0].encode()) > limit


@pytest.mark.parametrize(
    ("text", "limit", "pieces"),
    [
        ("hello world", 5, ["hello", "world"]),  # actual: ['hello', ' worl', 'd']
        ("aaaa bbbb cccc", 9, ["aaaa bbbb", "cccc"]),  # actual: ['aaaa', 'bbbb cccc']
        ("aaaa  bbbb", 6, ["aaaa", "bbbb"]),  # actual: ['aaaa ', 'bbbb']
    ],
)
def test_split_text_at_the_space_nearest_the_limit(
    text: str, limit: int, pieces: list[str]
) -> None:
    assert split_text(text, limit) == pieces


def test_split_text_gives_no_blank_pieces() -> None:
    assert all(piece.strip() for piece in split_text("abc    ", 3))


@pytest.mark.parametrize(("text", "limit"), [("é", 1), ("😀", 3), ("x", 0)])
def test_split_text_refuses_a_character_that_cannot_fit(text: str, limit: int) -> None:
    with pytest.raises(ValueError):
        split_text(text, limit)


@pytest.mark.timeout(5)
def test_mask_matching_is_not_exponential() -> None:
    # a regex would backtrack for hours on this; the glob match answers at once
    assert not mask_matches("*a" * 30 + "*z", "a" * 300)
    assert mask_matches("*a" * 30 + "*z", "a" * 300 + "z")


# Server-time --------------------------------------------------------------------------------------

T0 = 1767225600000  # 2026-01-01T00:00:00.000Z


# years 1000 to 9999: strftime writes a year before 1000 with fewer than four digits
@given(st.integers(min_value=-30610224000000, max_value=253402300799999))
def test_server_time_round_trip(ms: int) -> None:
    text = format_server_time(ms)
    assert len(text) == 24 and text.endswith("Z")
    assert parse_server_time(text) == ms


def test_server_time_format() -> None:
    assert format_server_time(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert format_server_time(T0) == "2026-01-01T00:00:00.000Z"
    assert format_server_time(-1) == "1969-12-31T23:59:59.999Z"
    # the cached second is not reused for another one
    assert format_server_time(T0 + 1000) == "2026-01-01T00:00:01.000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00.250Z", T0 + 250),
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T00:00:00", T0),
        ("2026-01-01t00:00:00.250z", T0 + 250),
        ("2026-01-01T00:00:00.2Z", T0 + 200),
        ("2026-01-01T00:00:00.25", T0 + 250),
        ("2026-01-01T00:00:00.123456Z", T0 + 123),
        ("2026-01-01T00:00:00,250Z", T0 + 250),
        ("2026-01-01T00:00:00.Z", T0),
        ("2026-01-01T00:00:00.", T0),
        # milliseconds that are not ASCII digits are dropped, the second is kept
        ("2026-01-01T00:00:00.\u00b2Z", T0),
        ("2026-01-01T00:00:00.\u0663Z", T0),
        ("2026-01-01T00:00:00.-12Z", T0),
        ("2026-01-01T00:00:00.1_2Z", T0),
        ("2026-01-01T00:00:00junk", T0),
        # an offset from UTC is applied
        ("2026-01-01T00:00:00+02:00", T0 - 7_200_000),
        ("2026-01-01T00:00:00.250-0130", T0 + 5_400_250),
        ("2026-01-01T00:00:00+02", T0 - 7_200_000),
        ("2026-01-01T00:00:00+25:00", T0),  # no such offset: trailing text
        ("2026-01-01T00:00:60Z", T0 + 60_000),  # a leap second
        ("2024-02-29T00:00:00Z", 1709164800000),
        ("1970-01-01T00:00:00.000Z", 0),
        ("0001-01-01T00:00:00Z", -62135596800000),
        ("9999-12-31T23:59:59.999Z", 253402300799999),
        # refused
        ("", None),
        ("Z", None),
        ("yesterday", None),
        ("\uff12026-01-01T00:00:00.000Z", None),
        ("2026-01-01T00:00:0\u0663Z", None),
        (" 2026-01-01T00:00:00Z", None),
        ("2026-1-1T0:0:0Z", None),
        ("2026-02-29T00:00:00Z", None),
        ("2026-13-01T00:00:00Z", None),
        ("2026-00-01T00:00:00Z", None),
        ("0000-01-01T00:00:00Z", None),
        ("2026-01-01T24:00:00Z", None),
        ("2026-01-01T00:60:00Z", None),
        ("2026-01-01T00:00:62Z", None),
        ("2026-01-01 junk", None),
        ("2026-01-01T10:30.5", None),
        ("2026-W01-1T00:00:00Z", None),
        # server-time is a full date and time: shortened forms and a space are refused
        ("2026-01-01 00:00:00Z", None),
        ("2026-01-01", None),
        ("2026-01-01Z", None),
        ("2026-01-01T10", None),
        ("2026-01-01T10:30", None),
        ("2026-01-01T10:30+01:00", None),
    ],
)
def test_parse_server_time(text: str, expected: int | None) -> None:
    assert parse_server_time(text) == expected
