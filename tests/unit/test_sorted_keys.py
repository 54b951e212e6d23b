"""SortedKeys (the member list's order) against a plain sorted set, and the member list kept in
order as a channel changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat import sorted_keys
from tuichat.client_state import ClientState
from tuichat.net.protocol import parse
from tuichat.sorted_keys import SortedKeys

KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), KEYS), max_size=300))
def test_sorted_keys_is_a_sorted_set(operations: list[tuple[bool, str]]) -> None:
    sorted_keys.LOAD = 4  # small blocks: splits and emptied blocks happen in short examples
    try:
        keys = SortedKeys()
        model: set[str] = set()
        for adding, key in operations:
            if adding:
                keys.add(key)
                model.add(key)
            else:
                keys.discard(key)
                model.discard(key)
            assert len(keys) == len(model)
        assert list(keys) == sorted(model)
        for _, key in operations:
            assert (key in keys) == (key in model)
    finally:
        sorted_keys.LOAD = 500


def test_sorted_keys_in_order_and_reversed_big() -> None:
    forward = SortedKeys(f"user{i:06d}" for i in range(5000))  # appended at the end
    backward = SortedKeys(f"user{i:06d}" for i in reversed(range(5000)))  # at the start
    assert list(forward) == list(backward) == [f"user{i:06d}" for i in range(5000)]
    for i in range(0, 5000, 2):
        forward.discard(f"user{i:06d}")
    assert list(forward) == [f"user{i:06d}" for i in range(1, 5000, 2)]
    forward.clear()
    assert list(forward) == [] and len(forward) == 0


NICKS = st.sampled_from(["amy", "Bob", "carl", "Dina", "ed", "Fay", "gus", "Hal", "[x]", "^z"])
EVENTS = st.tuples(st.sampled_from(["join", "part", "quit", "nick", "op", "deop", "voice"]), NICKS)


@settings(max_examples=150, deadline=None)
@given(st.lists(NICKS, max_size=10), st.lists(EVENTS, max_size=60), st.integers(1, 12))
def test_member_list_stays_sorted_under_joins_parts_nicks_and_modes(
    names: list[str], events: list[tuple[str, str]], limit: int
) -> None:
    state = ClientState("me")
    feed = [":me!u@h JOIN #c", f":srv 353 me = #c :@me {' '.join(names)}", ":srv 366 me #c :End"]
    others = iter(["Ivy", "jo", "Kai", "lu"] * 20)
    for kind, nick in events:
        if kind == "join":
            feed.append(f":{nick}!u@h JOIN #c")
        elif kind == "part":
            feed.append(f":{nick}!u@h PART #c :bye")
        elif kind == "quit":
            feed.append(f":{nick}!u@h QUIT :bye")
        elif kind == "nick":
            feed.append(f":{nick}!u@h NICK {next(others)}")
        else:
            mode = {"op": "+o", "deop": "-o", "voice": "+v"}[kind]
            feed.append(f":srv MODE #c {mode} {nick}")
    for text in feed:
        state.feed(parse(text), 0.0)
    members = state.windows["#c"].members
    assert list(members.order) == sorted(members)
    ranks = {"@": 0, "+": 1}
    everybody = sorted(members, key=lambda k: (ranks.get(members[k].prefix, 2), k))
    assert [m.nick for m in state.sorted_members("#c")] == [members[k].nick for k in everybody]
    shown = [m.nick for m in state.sorted_members("#c", limit)]
    assert shown == [members[k].nick for k in everybody[:limit]]
