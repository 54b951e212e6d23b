"""The IRC wire protocol, shared by the server and the client.

`parse` turns one line (without its line ending) into a `Line`; `Line.format` turns it back.
`LineBuffer` cuts a byte stream into lines, keeps the partial one across reads and bounds its size;
`LineBuffer.lines` parses them too, for both receive loops (the server's and the client's).
Then the facts both sides share: limits, default ports, casemapping, masks, server-time, numerics.
Nothing here does I/O or keeps a clock.
"""

from __future__ import annotations

import datetime
import functools
import re
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

# every numeric by name, re-exported (protocol.RPL_WELCOME): they are defined in numerics
from tuichat.net.numerics import *  # noqa: F403

#: The body of a line (source, command, params, CRLF) may take at most this many bytes.
MAX_BODY = 512
#: The tag section of a line (`@...` and the space after it) may take at most this many bytes.
MAX_TAGS = 8191
#: The most bytes a single line may take, line ending excluded.
MAX_LINE = MAX_BODY + MAX_TAGS
#: The nick length the server advertises unless told otherwise (ISUPPORT NICKLEN), and the one the
#: client keeps to before it has heard the server's.
NICKLEN = 30
#: The ports IRC listens on: plain and TLS.
DEFAULT_PORT = 6667
DEFAULT_TLS_PORT = 6697


class ParseError(ValueError):
    """The line is not an IRC message (for example: it has no command)."""


_TAG_ESCAPES = {";": r"\:", " ": r"\s", "\\": "\\\\", "\r": r"\r", "\n": r"\n"}
_TAG_ESCAPE_RE = re.compile(r"[; \\\r\n]")
_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_UNESCAPE_RE = re.compile(r"\\(.?)", re.DOTALL)


def escape_tag_value(value: str) -> str:
    """Escape a tag value for the wire (IRCv3 message-tags)."""
    return _TAG_ESCAPE_RE.sub(lambda m: _TAG_ESCAPES[m.group()], value)


def unescape_tag_value(value: str) -> str:
    """Undo `escape_tag_value`; an unknown escape drops the backslash, a trailing one is dropped."""
    return _TAG_UNESCAPE_RE.sub(lambda m: _TAG_UNESCAPES.get(m.group(1), m.group(1)), value)


@dataclass(frozen=True, slots=True)
class Line:
    """One IRC message. `params` holds every parameter, the trailing one included."""

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def format(self, *, trailing: bool = False) -> str:
        """The line as it goes on the wire, without CRLF.

        The last parameter gets a `:` when it must (it is empty, holds a space or starts with `:`),
        or always when `trailing` is true (the habit of servers for text: PRIVMSG, numerics...).
        """
        parts: list[str] = []
        if self.tags:
            parts.append(
                "@"
                + ";".join(
                    f"{key}={escape_tag_value(value)}" if value else key
                    for key, value in self.tags.items()
                )
            )
        if self.source:
            parts.append(":" + self.source)
        parts.append(self.command)
        if self.params:
            *middle, last = self.params
            for param in middle:
                if not param or " " in param or param.startswith(":"):
                    raise ValueError(f"middle parameter {param!r} cannot be sent")
            parts.extend(middle)
            if trailing or not last or " " in last or last.startswith(":"):
                last = ":" + last
            parts.append(last)
        return " ".join(parts)

    def encode(self, *, trailing: bool = False) -> bytes:
        """The line as bytes with CRLF, ready to send."""
        return (self.format(trailing=trailing) + "\r\n").encode("utf-8", "replace")

    @property
    def nick(self) -> str | None:
        """The nick of the source (`nick!user@host`), or None when there is no source."""
        if self.source is None:
            return None
        return self.source.split("!", 1)[0].split("@", 1)[0]


def _parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if key:
            tags[key] = unescape_tag_value(value)
    return tags


def parse(text: str) -> Line:
    """Parse one line (line ending removed). Raises `ParseError` for a line with no command."""
    text = text.rstrip("\r\n")
    tags: dict[str, str] = {}
    source: str | None = None
    rest = text.lstrip(" ")
    if rest.startswith("@"):
        tag_text, _, rest = rest[1:].partition(" ")
        tags = _parse_tags(tag_text)
        rest = rest.lstrip(" ")
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing: str | None = None
    head, sep, tail = rest.partition(" :")
    if sep:
        trailing = tail
    elif rest.startswith(":"):
        head, trailing = "", rest[1:]
    words = [word for word in head.split(" ") if word]
    if not words:
        raise ParseError(f"no command in {text!r}")
    command = words[0].upper()
    if not (command.isascii() and (command.isalpha() or (command.isdigit() and len(command) == 3))):
        raise ParseError(f"{words[0]!r} is not a command")
    params = words[1:]
    if trailing is not None:
        params.append(trailing)
    return Line(command=command, params=tuple(params), source=source or None, tags=tags)


@dataclass(frozen=True, slots=True)
class TooLong:
    """Stands in the output of `LineBuffer.feed` for a line that was over the limits and dropped."""

    tags_too_long: bool = False


@dataclass(frozen=True, slots=True)
class Unparsable:
    """Stands in the output of `LineBuffer.lines` for a line that is not an IRC message."""

    text: str
    error: ParseError


class LineBuffer:
    """Cuts received bytes into lines. Lines end in LF, CRLF or a bare CR; empty lines are skipped.

    A line whose body is over `max_body` bytes, or whose tag section is over `max_tags` bytes, is
    dropped and reported as `TooLong`; the buffer never holds more than one line's limit, even while
    a peer sends an endless line. Invalid UTF-8 is decoded with U+FFFD; NUL becomes U+FFFD too.
    """

    __slots__ = ("_buf", "_max_body", "_max_tags", "_skip_tags", "_skipping")

    def __init__(self, max_body: int = MAX_BODY, max_tags: int = MAX_TAGS) -> None:
        self._buf = b""
        self._skipping = False
        self._skip_tags = False
        self._max_body = max_body
        self._max_tags = max_tags

    @property
    def pending(self) -> int:
        """Bytes held for a line that has not ended yet."""
        return len(self._buf)

    def _limit(self, line: bytes) -> TooLong | None:
        """A `TooLong` if `line` (without line ending) breaks a limit, else None."""
        body = line
        if line.startswith(b"@"):
            space = line.find(b" ")
            tag_len = len(line) if space < 0 else space + 1
            if tag_len > self._max_tags:
                return TooLong(tags_too_long=True)
            body = line[tag_len:]
        # the limit counts the CRLF as part of the body
        if len(body) + 2 > self._max_body:
            return TooLong()
        return None

    def feed(self, data: bytes) -> Iterator[str | TooLong]:
        """Yield each complete line in `data` (with what was kept from before) as text."""
        # a bare CR ends a line too (RFC 2812 2.3.1), so it never travels inside one; a CRLF is one
        # line end, and a CR and LF split across two reads make an empty line, which is skipped
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._buf:
            data = self._buf + data
            self._buf = b""
        lines = data.split(b"\n")
        rest = lines.pop()
        fits = self._max_body - 2  # the limit counts the CRLF
        for raw in lines:
            if self._skipping:
                self._skipping = False
                yield TooLong(tags_too_long=self._skip_tags)
                continue
            if len(raw) > fits or raw[:1] == b"@":  # the common case skips this
                too_long = self._limit(raw)
                if too_long is not None:
                    yield too_long
                    continue
            if not raw or (raw[:1] == b" " and not raw.strip(b" ")):
                continue  # an empty line (an over-long run of spaces is TooLong, however chunked)
            text = raw.decode("utf-8", "replace")
            if "\0" in text:
                text = text.replace("\0", "\ufffd")
            yield text
        if self._skipping:
            return
        limit = self._max_body + self._max_tags if rest.startswith(b"@") else self._max_body
        if len(rest) > limit:
            # an unterminated line already past its limit: drop it and what follows up to its end
            self._skipping = True
            self._skip_tags = rest.startswith(b"@") and b" " not in rest[: self._max_tags]
            return
        self._buf = rest

    def lines(
        self, data: bytes, seen: Callable[[str], None] | None = None
    ) -> Iterator[Line | TooLong | Unparsable]:
        """`feed`, with each line parsed: a `Line`, or `Unparsable` for one that is not an IRC
        message (it still counts, against flood control for one). `seen` is given each line's
        text first (a debug log of what came in)."""
        for item in self.feed(data):
            if isinstance(item, TooLong):
                yield item
                continue
            if seen is not None:
                seen(item)
            try:
                yield parse(item)
            except ParseError as error:
                yield Unparsable(item, error)


_UINT_RE = re.compile(r"[0-9]{1,4000}\Z")  # int() refuses more than 4300 digits


def parse_uint(text: str, maximum: int | None = None) -> int | None:
    """`text` as a whole number written in ASCII digits (capped at `maximum`), or None.

    For every number a peer sends: `str.isdigit()` accepts `²`, which `int()` refuses, and
    `int()` accepts `٣`, ` 5 `, `1_0` and `-1`, none of which is a number on the wire."""
    if _UINT_RE.match(text) is None:
        return None
    value = int(text)
    return value if maximum is None else min(value, maximum)


# Server-time --------------------------------------------------------------------------------------

_formatted_second: list[tuple[int, str]] = [(-1, "")]


def format_server_time(ms: int) -> str:
    """Milliseconds since the epoch in server-time's format: 2026-11-27T10:00:00.000Z."""
    second = ms // 1000
    cached, text = _formatted_second[0]
    if cached != second:  # formatting the date is most of the cost: once a second
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _formatted_second[0] = (second, text)
    return f"{text}.{ms % 1000:03d}Z"


_SERVER_TIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
)
_UTC_OFFSET_RE = re.compile(r"([+-])([0-9]{2})(?::?([0-9]{2}))?\Z")
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()


def parse_server_time(text: str) -> int | None:
    """Milliseconds since the epoch from server-time's format, or None.

    Strict where the meaning is: `YYYY-MM-DDThh:mm:ss` in ASCII digits (`int()` would take a
    fullwidth one), a real day and time of day (a leap second counts into the next minute), so a
    CHATHISTORY timestamp in another shape is refused. Lenient in what follows the seconds, as
    peers write it: a fraction of any length (its first three characters are the milliseconds when
    they are digits), `Z` or nothing, and trailing text, ignored. An offset from UTC at the end is
    applied."""
    match = _SERVER_TIME_RE.match(text)
    if match is None:
        return None
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = int(match[4]), int(match[5]), int(match[6])
    if hour > 23 or minute > 59 or second > 61:
        return None
    try:
        days = datetime.date(year, month, day).toordinal() - _EPOCH_DAY
    except ValueError:  # no such day, or year 0
        return None
    ms = (((days * 24 + hour) * 60 + minute) * 60 + second) * 1000
    rest = text[match.end() :]
    offset = _UTC_OFFSET_RE.search(rest)
    if offset is not None and int(offset[2]) < 24 and int(offset[3] or 0) < 60:
        shift = (int(offset[2]) * 60 + int(offset[3] or 0)) * 60_000
        ms += -shift if offset[1] == "+" else shift
        rest = rest[: offset.start()]
    if len(rest) > 1 and rest[0] in ".,":
        digits = parse_uint(rest[1:].rstrip("Z")[:3].ljust(3, "0"))
        if digits is not None:
            ms += digits
    return ms


# Casemapping --------------------------------------------------------------------------------------

CASEMAPPING = "rfc1459"
_RFC1459 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~",
    "abcdefghijklmnopqrstuvwxyz{}|^",
)


def casefold(name: str) -> str:
    """Fold a nick or channel name by the rfc1459 casemapping that the server advertises."""
    if name.isascii():  # the same as the table, five times faster (WHO folds every field)
        name = name.lower()
        if "[" in name or "]" in name or "\\" in name or "~" in name:
            name = name.replace("[", "{").replace("]", "}").replace("\\", "|").replace("~", "^")
        return name
    return name.translate(_RFC1459)


_NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")


def is_valid_nick(nick: str, max_len: int) -> bool:
    """A nick per RFC 2812: a letter or special first, then letters, digits, specials, `-`."""
    return 0 < len(nick) <= max_len and _NICK_RE.match(nick) is not None


_BAD_CHANNEL_CHARS = re.compile(r"[\x00-\x20,\x7f-\x9f\s]")


def is_valid_channel(name: str, max_len: int, chantypes: str = "#") -> bool:
    """A channel name: a channel type, then no space, comma, BEL or other control character,
    and no invisible formatting character (a bidi override would make `#evil` look like another)."""
    return (
        1 < len(name) <= max_len
        and name[0] in chantypes
        and _BAD_CHANNEL_CHARS.search(name) is None
        and not any(unicodedata.category(ch) == "Cf" for ch in name)
    )


class _Segment:
    """A piece of a mask between two `*`: its length and its literal runs (the text between `?`s)
    at their offsets."""

    __slots__ = ("bits", "fixed", "length", "longest", "runs")

    def __init__(self, piece: str) -> None:
        self.length = len(piece)
        self.runs = tuple(
            (match.start(), match.group()) for match in _LITERAL_RUN_RE.finditer(piece)
        )
        # the piece at one place, in one call: `?` is any one character (a fixed length: the
        # regex has nothing to backtrack)
        self.fixed = re.compile(
            "".join("." if ch == "?" else re.escape(ch) for ch in piece), re.DOTALL
        )
        self.longest = max(self.runs, key=lambda run: len(run[1]), default=(0, ""))
        # shift-and: for each character, the positions of the piece it may stand at (bit j for
        # piece[j]); key "" holds the positions of `?`, where any character may stand
        bits: dict[str, int] = {"": 0}
        for j, ch in enumerate(piece):
            if ch == "?":
                bits[""] |= 1 << j
        for j, ch in enumerate(piece):
            if ch != "?":
                bits[ch] = bits.get(ch, bits[""]) | 1 << j
        self.bits = bits

    def at(self, text: str, start: int) -> bool:
        """Whether the piece matches `text` at `start` (the caller checked that it fits)."""
        runs = self.runs
        if len(runs) > 1:
            return self.fixed.match(text, start) is not None
        return not runs or text.startswith(runs[0][1], start + runs[0][0])

    def find(self, text: str, start: int, end: int) -> int:
        """The leftmost position at or after `start` where the piece matches `text` within
        `text[:end]`, or -1. One step per character of the text, whatever the piece (shift-and)."""
        length = self.length
        if end - start < length:
            return -1
        if len(self.runs) == 1 and length == len(self.runs[0][1]):  # no `?`: str.find
            return text.find(self.runs[0][1], start, end)
        if not self.runs:  # only `?`
            return start
        # skip to where the longest literal run first occurs; no run, no match
        offset, run = self.longest
        first = text.find(run, start + offset, end - (length - offset - len(run)))
        if first < 0:
            return -1
        bits = self.bits
        anything = bits[""]
        done = 1 << (length - 1)
        state = 0
        for i in range(first - offset, end):
            state = ((state << 1) | 1) & bits.get(text[i], anything)
            if state & done:
                return i - length + 1
        return -1


class Mask:
    """An IRC wildcard mask (`*` any run, `?` any one character), casefolded, compiled once to
    match many texts (WHO, bans) in time linear in the text.

    The pieces between `*`s are matched in order, each at its leftmost place: the first is
    anchored at the start, the last at the end, the middle ones are found by `_Segment.find`. That
    leftmost place is never wrong (a later piece can only gain from an earlier piece ending
    sooner), so nothing backtracks: the work is one pass over the text for the middle pieces,
    and a fixed check for the first and last (`*` and 240 `?` and `x` looks at one character)."""

    __slots__ = ("_first", "_last", "_middle", "_minimum", "_star", "mask")

    def __init__(self, mask: str) -> None:
        self.mask = mask
        pieces = casefold(mask).split("*")
        self._star = len(pieces) > 1
        self._first = _Segment(pieces[0])
        self._last = _Segment(pieces[-1]) if self._star else None
        self._middle = tuple(_Segment(piece) for piece in pieces[1:-1] if piece)
        self._minimum = sum(len(piece) for piece in pieces)

    def matches(self, text: str) -> bool:
        if len(text) < self._minimum:
            return False
        text = casefold(text)
        first = self._first
        if not self._star:
            return len(text) == first.length and first.at(text, 0)
        last = self._last
        assert last is not None
        end = len(text) - last.length
        if not first.at(text, 0) or not last.at(text, end):
            return False
        start = first.length
        for piece in self._middle:
            found = piece.find(text, start, end)
            if found < 0:
                return False
            start = found + piece.length
        return True


_LITERAL_RUN_RE = re.compile(r"[^?]+")


@functools.lru_cache(maxsize=1024)
def compile_mask(mask: str) -> Mask:
    """`Mask(mask)`, kept for the masks in use (bans and quiets are matched on every message)."""
    return Mask(mask)


def mask_matches(mask: str, text: str) -> bool:
    """Whether `text` matches the IRC wildcard `mask` (`*`, `?`), casefolded."""
    return compile_mask(mask).matches(text)


def normalize_mask(mask: str) -> str:
    """Complete a ban mask to `nick!user@host` form: `bob` -> `bob!*@*`, `*@h` -> `*!*@h`."""
    if "!" in mask:
        nick, _, rest = mask.partition("!")
        user, at, host = rest.partition("@")
        return f"{nick or '*'}!{user or '*'}@{host if at and host else '*'}"
    if not mask:
        return "*!*@*"
    if "@" in mask:
        user, _, host = mask.partition("@")
        return f"*!{user or '*'}@{host or '*'}"
    return f"{mask}!*@*"


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into pieces of at most `limit` UTF-8 bytes, at spaces where possible.

    Spaces at a cut are dropped, so no piece starts or ends with the space it was cut at; a text
    that is empty or fits comes back as one piece. ValueError if one character is over `limit`.
    """
    pieces: list[str] = []
    while True:
        data = text.encode("utf-8")
        if len(data) <= limit:
            break
        cut = len(data[:limit].decode("utf-8", "ignore"))
        if cut == 0:
            raise ValueError(f"a character of {text[:1]!r} does not fit in {limit} bytes")
        space = text.rfind(" ", 0, cut + 1)
        piece = text[:space].rstrip(" ") if space > 0 else ""
        if piece:
            rest = text[space:].lstrip(" ")
        else:
            piece, rest = text[:cut], text[cut:]
        pieces.append(piece)
        text = rest
    if text or not pieces:
        pieces.append(text)
    return pieces
