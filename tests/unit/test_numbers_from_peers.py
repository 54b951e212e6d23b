"""Numbers and parameters from the network (issue 10, item 14): only ASCII digits make a number,
and nothing a client sent with a leading colon or a space is kept where it would have to go out
as a middle parameter."""

from __future__ import annotations

import pytest

from tests.unit.helpers import ListSink
from tuichat.client_state import ClientState
from tuichat.net.protocol import parse, parse_uint
from tuichat.net.protocol import parse_server_time as parse_iso_time
from tuichat.state import Config, Outbox, State, User
from tuichat.store import Store


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("302", 302),
        ("007", 7),
        ("\u00b2", None),  # superscript two: str.isdigit() says yes, int() refuses it
        ("1\u00b2", None),
        ("\u0663", None),  # Arabic-Indic three: int() takes it
        ("\uff15", None),  # fullwidth five
        (" 5", None),  # int() strips spaces
        ("5 ", None),
        ("1_0", None),  # int() takes underscores
        ("-1", None),
        ("+1", None),
        ("", None),
        ("1" * 500, int("1" * 500)),
        ("1" * 4301, None),  # int() refuses that many digits
    ],
)
def test_parse_uint_takes_ascii_digits_only(text: str, expected: int | None) -> None:
    assert parse_uint(text) == expected


def test_parse_uint_caps_at_the_maximum() -> None:
    assert parse_uint("1" + "0" * 400, 100) == 100
    assert parse_uint("42", 100) == 42


def test_a_timestamp_needs_ascii_digits() -> None:
    assert parse_iso_time("2026-01-01T00:00:00.250Z") == 1767225600250
    assert parse_iso_time("2026-01-01T00:00:00.\u00b2Z") == 1767225600000
    assert parse_iso_time("\uff12026-01-01T00:00:00.000Z") is None


def _lines(state: State, user: User, text: str) -> list[str]:
    out = Outbox()
    state.handle(user, parse(text), 2000.0, out)
    return out.lines_for(user)


def _alice() -> tuple[State, User]:
    state = State(Config(created=0.0), Store(":memory:"))
    alice = User(ListSink(), "127.0.0.1", 1000.0)
    state.connect(alice)
    for text in ("NICK alice", "USER alice 0 * :Alice", "JOIN #c"):
        state.handle(alice, parse(text), 1000.0, Outbox())
    assert alice.registered
    return state, alice


def test_cap_ls_with_a_superscript_is_plain_cap_ls() -> None:
    state = State(Config(created=0.0), None)
    user = User(ListSink(), "127.0.0.1", 1000.0)
    state.connect(user)
    lines = _lines(state, user, "CAP LS \u00b2")
    assert lines and all(" CAP * LS :" in line for line in lines)
    assert not user.cap302


def test_a_history_limit_in_superscript_is_invalid() -> None:
    state, alice = _alice()
    assert _lines(state, alice, "CHATHISTORY LATEST #c * \u00b2") == [
        ":tuichat FAIL CHATHISTORY INVALID_PARAMS LATEST :Invalid parameters"
    ]


@pytest.mark.parametrize("mode", ["k", "b", "q"])
@pytest.mark.parametrize("param", [":x", "::x"])
def test_a_key_or_mask_with_a_leading_colon_is_refused(mode: str, param: str) -> None:
    state, alice = _alice()
    lines = _lines(state, alice, f"MODE #c +{mode}-k :{param}")
    assert lines == [
        ":tuichat 696 alice #c "
        f"{mode} * :Invalid mode parameter: empty, or a space, a comma or a leading colon"
    ]
    chan = state.channels["#c"]
    assert chan.key is None and chan.bans == [] and chan.quiets == []


def test_a_key_of_ascii_is_still_taken() -> None:
    state, alice = _alice()
    assert _lines(state, alice, "MODE #c +k se:cret") == [
        ":alice!~alice@127.0.0.1 MODE #c +k se:cret"
    ]


def test_the_client_ignores_a_history_limit_in_superscript() -> None:
    client = ClientState("me")
    client.feed(parse(":srv 005 me CHATHISTORY=\u00b2 :are supported"), 0.0)
    client.feed(parse(":srv 005 me CHATHISTORY=50 :are supported"), 0.0)
    assert client.chathistory_max == 50
