"""Property-based fuzzing of what the server does with bytes from the network, in the order it does
it: `LineBuffer.feed` (bounded), `parse` (only `ParseError`), `Line.format` (round trip), and
`State.handle` (never raises, only ever sends well-formed lines).

tests/unit/test_protocol.py has the table cases and the first properties (round trip of generated
lines, parse of arbitrary text, LineBuffer with small limits); these go further: the default
limits, arbitrary chunking of arbitrary bytes, lines as they come off the wire, and the state.
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.helpers import ListSink
from tuichat.net.protocol import (
    MAX_BODY,
    MAX_LINE,
    MAX_TAGS,
    Line,
    LineBuffer,
    ParseError,
    TooLong,
    parse,
)
from tuichat.state import Config, Outbox, State, User
from tuichat.store import Store

# Bytes that matter to IRC framing and parsing, and to UTF-8 decoding.
_SPECIAL_BYTES = [b" ", b":", b"@", b";", b"=", b"\\", b"!", b",", b"#", b"\r", b"\n", b"\x00"]
_SPECIAL_BYTES += [b"\xff", b"\xc3", b"\xa9", b"\xe2\x80\xae", b"a", b"PRIVMSG", b"\r\n"]

# Runs long enough to cross the default limits (512 for a body, 8191 for tags) within one example.
_runs = st.tuples(st.sampled_from(_SPECIAL_BYTES), st.integers(1, 3000)).map(
    lambda run: run[0] * run[1]
)
_streams = st.lists(st.one_of(_runs, st.binary(max_size=300)), max_size=12).map(b"".join)


def _feed_in_chunks(buffer: LineBuffer, data: bytes, cuts: list[int]) -> list[str | TooLong]:
    out: list[str | TooLong] = []
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    for start, end in itertools.pairwise(bounds):
        out.extend(buffer.feed(data[start:end]))
        assert buffer.pending <= MAX_LINE, buffer.pending
    return out


# LineBuffer with the server's limits ----------------------------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(_streams, st.lists(st.integers(0, 100_000), max_size=40))
def test_linebuffer_never_holds_more_than_one_line(data: bytes, cuts: list[int]) -> None:
    buffer = LineBuffer()
    items = _feed_in_chunks(buffer, data, cuts)
    # at most one item per line ending (CRLF counts as one: the empty line after CR is skipped)
    assert len(items) <= data.count(b"\n") + data.count(b"\r")
    for item in items:
        if isinstance(item, TooLong):
            continue
        assert not set(item) & {"\r", "\n", "\0"}
        assert item.strip(" ")
        # what comes out fits the limits it was checked against (a line of only a tag section
        # is all tags); bytes that were not UTF-8 come out as U+FFFD, longer than they were
        if "\ufffd" not in item:
            tags, space, body = item.partition(" ") if item.startswith("@") else ("", "", item)
            assert len(tags.encode()) + len(space) <= MAX_TAGS
            assert len(body.encode()) <= MAX_BODY - 2


@given(st.integers(1, 64), st.integers(1, 200_000))
def test_an_endless_line_fed_in_any_chunk_size_is_reported_once(chunk: int, size: int) -> None:
    buffer = LineBuffer()
    data = b"PRIVMSG #c :" + b"x" * size
    out = _feed_in_chunks(buffer, data + b"\r\nPING end\r\n", list(range(0, size, chunk * 97)))
    expected: list[str | TooLong] = ["PING end"]
    if len(data) + 2 <= MAX_BODY:
        expected.insert(0, data.decode())
    else:
        expected.insert(0, TooLong())
    assert out == expected
    assert buffer.pending == 0


# parse, as the server calls it --------------------------------------------------------------------


@settings(max_examples=300)
@given(_streams)
def test_bytes_off_the_wire_parse_or_raise_parse_error_only(data: bytes) -> None:
    for item in LineBuffer().feed(data + b"\n"):
        if isinstance(item, TooLong):
            continue
        try:
            line = parse(item)
        except ParseError:
            continue
        assert line.command and " " not in line.command
        assert line.command == line.command.upper()
        for param in line.params[:-1]:
            assert param and " " not in param and not param.startswith(":")
        assert line.source is None or (line.source and " " not in line.source)


_wire_text = st.text(
    st.one_of(
        st.sampled_from(list(" :@;=\\!,#*+\t\x01\ufffd")),
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\0"),
    ),
    max_size=80,
)
_COMMAND = re.compile(r"[A-Z]+|[0-9]{3}")


@settings(max_examples=500)
@given(_wire_text)
@example("@a=1;b :nick!u@h PRIVMSG #c :hello world")
@example("@k=\\s\\:\\\\ CMD a b :")
@example(":src CMD  a   b  : trailing ")
def test_a_parsed_line_formats_back_to_itself(text: str) -> None:
    """Whatever the server parsed, it can write back (relay, echo) and be read the same."""
    try:
        line = parse(text)
    except ParseError:
        return
    if not _COMMAND.fullmatch(line.command):
        return  # see test_a_command_that_reads_as_tags_formats_back_to_itself
    assert parse(line.format()) == line
    assert parse(line.format(trailing=True)) == line
    wire = line.encode()
    assert wire.endswith(b"\r\n") and b"\r" not in wire[:-2] and b"\n" not in wire[:-2]


def test_a_command_that_reads_as_tags_is_refused() -> None:
    # a command is letters or a three-digit numeric: "@c=d" after an empty tag section is neither
    with pytest.raises(ParseError):
        parse("@ @c=d CMD")


# the state, fed parsed lines --------------------------------------------------------------------

# The commands of a registered user, with parameters from values that have tripped servers:
# empty, spaces, a leading colon, a long one, wildcards, the names in use.
_COMMANDS = [
    "AWAY", "CAP", "CHATHISTORY", "INVITE", "ISON", "JOIN", "KICK", "KILL", "KLINE", "LIST",
    "LUSERS", "MARKREAD", "MODE", "MOTD", "NAMES", "NICK", "NOTICE", "OPER", "PART", "PING",
    "PONG", "PRIVMSG", "REGISTER", "SETNAME", "TAGMSG", "TIME", "TOPIC", "UNKLINE", "USER",
    "USERHOST", "VERIFY", "VERSION", "WHO", "WHOIS", "WHOWAS", "AUTHENTICATE", "PASS", "ZZZ",
]  # fmt: skip
_VALUES = [
    "#chat", "#other", "alice", "bob", "carol", "*", "0", "-1", "99999999999", "+o", "+b", "-v",
    "+ntimslk", "q", "b", "#chat,alice,#other,bob,carol", "*!*@*", "~*@*", "LATEST", "BEFORE",
    "AFTER", "BETWEEN", "TARGETS", "LS", "REQ", "END", "PLAIN", "+",
    "timestamp=2020-01-01T00:00:00.000Z", "msgid=zz", "é", "a\tb", "\x01ACTION x\x01", "x" * 300,
    "@", ",", "#", "o", "OPER", "pw", "\u00b2", "1\u00b2", "\u0663", "1_0", "+k-k", "+b-k", "+l",
    "timestamp=2026-01-01T00:00:00.\u00b2Z", "timestamp=\uff12026-01-01T00:00:00.000Z",
]  # fmt: skip
_middle = st.sampled_from([value for value in _VALUES if " " not in value])
_trailing = st.one_of(
    st.sampled_from(_VALUES),
    st.sampled_from(["", " ", "a b", ":", ":x y", "LATEST #chat * 10", "#chat x", ":x", "::x"]),
)


@st.composite
def _wire_lines(draw: st.DrawFn) -> tuple[int, Line]:
    """A line as parse() can hand it over: only the last parameter may be empty, hold spaces or
    start with a colon."""
    params = draw(st.lists(_middle, max_size=4))
    if draw(st.booleans()):
        params.append(draw(_trailing))
    tags = draw(st.sampled_from([{}, {"label": "l1"}, {"+typing": "active", "+draft/reply": "x"}]))
    return draw(st.integers(0, 2)), Line(draw(st.sampled_from(_COMMANDS)), tuple(params), tags=tags)


def _check_wire(data: bytes) -> None:
    """What a user was sent: CRLF-terminated lines of valid UTF-8 without NUL or a stray CR/LF."""
    assert data.endswith(b"\r\n") or not data
    for raw in data[:-2].split(b"\r\n") if data else []:
        text = raw.decode("utf-8")
        assert not set(text) & {"\r", "\n", "\0"}, text
        assert parse(text).command


def _run(state: State, user: User, line: Line, now: float) -> None:
    """Handle a line the way the server does: deliver, then run the deferred jobs."""
    out = Outbox()
    state.handle(user, line, now, out)
    out.deliver()
    while out.deferred:
        jobs, out.deferred = out.deferred, []
        for job, then in jobs:
            follow = Outbox()
            then(job(), now, follow)
            follow.deliver()
            out.deferred.extend(follow.deferred)


def _network() -> tuple[State, list[User]]:
    state = State(Config(created=0.0, opers={"OPER": "pw"}), Store(":memory:"))
    users = []
    for nick in ("alice", "bob", "carol"):
        user = User(ListSink(), "127.0.0.1", 1000.0)
        state.connect(user)
        for text in ("CAP REQ :message-tags batch labeled-response draft/read-marker", "CAP END"):
            if nick == "alice":  # one with capabilities, two without
                _run(state, user, parse(text), 1000.0)
        _run(state, user, parse(f"NICK {nick}"), 1000.0)
        _run(state, user, parse(f"USER {nick} 0 * :{nick}"), 1000.0)
        _run(state, user, parse("JOIN #chat"), 1000.0)
        assert user.registered
        users.append(user)
    return state, users


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_wire_lines(), min_size=1, max_size=25))
def test_the_state_never_raises_and_sends_only_well_formed_lines(
    script: list[tuple[int, Line]],
) -> None:
    state, users = _network()
    now = 1000.0
    for who, line in script:
        user = users[who]
        if user.gone:
            continue
        now += 1.0
        _run(state, user, line, now)
    for user in users:
        assert isinstance(user.sink, ListSink)
        _check_wire(bytes(user.sink.data))


@pytest.mark.parametrize(
    "text",
    ["CHATHISTORY :LATEST #chat * 10", "CHATHISTORY :", "MARKREAD :#chat x", "MARKREAD :"],
)
def test_a_parameter_with_a_space_is_answered_not_raised(text: str) -> None:
    state, users = _network()
    _run(state, users[0], parse(text), 2000.0)
    assert isinstance(users[0].sink, ListSink)
    _check_wire(bytes(users[0].sink.data))


# Lines that closed their sender's connection with "Internal error" (issue 10, item 14), and their
# siblings: digits that str.isdigit() takes and int() refuses (`²`), numbers int() takes that are
# none on the wire, and a trailing `:x` that a handler put into a middle parameter.
_ONCE_FATAL = [
    "CAP LS \u00b2",
    "CHATHISTORY LATEST #chat * \u00b2",
    "CHATHISTORY BEFORE #chat timestamp=2026-01-01T00:00:00.\u00b2Z 5",
    "MODE #chat +k-k ::x",
    "MODE #chat +b-k ::x",
    "MODE #chat +q-k ::x",
    "MARKREAD #chat timestamp=2026-01-01T00:00:00.\u00b2Z",
    "CHATHISTORY AFTER #chat timestamp=\uff12026-01-01T00:00:00.000Z 5",
    "MODE #chat +l \u00b2",
    "MODE #chat +l 1" + "0" * 400,
    "WHOWAS alice \u00b2",
    "KLINE \u00b2 nobody@example.com :x",
    "KLINE 1" + "0" * 400 + " nobody@example.com :x",
]


@pytest.mark.parametrize("text", _ONCE_FATAL)
def test_a_line_that_once_raised_is_answered(text: str) -> None:
    state, users = _network()
    alice = users[0]  # the operator of #chat, and a server operator here
    _run(state, alice, parse("MODE #chat +k key"), 1500.0)
    _run(state, alice, parse("OPER OPER pw"), 1500.0)
    assert "o" in alice.modes
    _run(state, alice, parse(text), 2000.0)
    _run(state, alice, parse("MODE #chat b"), 2001.0)  # a ban list that shows every mask
    _run(state, alice, parse("MODE #chat"), 2002.0)  # and the key, as a middle parameter
    assert not alice.gone
    for user in users:
        assert isinstance(user.sink, ListSink)
        _check_wire(bytes(user.sink.data))
