"""Unit tests for the client's policy (`tuichat.session`): a `ClientState` fed the lines a server
sends, a `Session` over it, and the clock values each call gets from the test.

What the session decides is what the app would send and show: the lines are checked as text.
"""

from __future__ import annotations

from tuichat.client_state import SERVER, Changes, ClientState
from tuichat.net.protocol import Line, parse
from tuichat.session import BACKLOG, HISTORY_PAGE, Actions, Session

T0 = 1_800_000_000.0
HISTORY = frozenset({"draft/chathistory", "batch", "server-time", "message-tags"})


def feed(state: ClientState, *raw: str, now: float = T0) -> Changes:
    merged = Changes()
    for text in raw:
        merged.merge(state.feed(parse(text), now))
    return merged


def sent(actions: Actions | list[Line | str]) -> list[str]:
    lines = actions.send if isinstance(actions, Actions) else actions
    return [line.format() if isinstance(line, Line) else line for line in lines]


def joined(state: ClientState, session: Session, channel: str, now: float = T0) -> Actions:
    changes = feed(state, f":me!u@h JOIN {channel}", now=now)
    return session.received(changes, 0.0)


def test_registering_joins_the_channels_in_lines_that_fit() -> None:
    state = ClientState("me")
    channels = [f"#channel{i:03d}" for i in range(60)]
    session = Session(state, channels)
    lines = sent(session.registered(frozenset(), T0))
    assert all(line.startswith("JOIN ") and len(line) <= 512 for line in lines)
    assert len(lines) > 1
    assert [n for line in lines for n in line.removeprefix("JOIN ").split(",")] == channels


def test_a_joined_channel_asks_who_is_there_and_its_backlog() -> None:
    state = ClientState("me")
    session = Session(state)
    session.registered(HISTORY, T0)
    actions = joined(state, session, "#c")
    assert sent(actions) == ["WHO #c", f"CHATHISTORY LATEST #c * {BACKLOG}"]
    assert "#c" in state.quiet_who  # the WHO reply is not printed


def test_without_the_history_capability_no_history_is_asked_for() -> None:
    state = ClientState("me")
    session = Session(state)
    session.registered(frozenset(), T0)
    assert sent(joined(state, session, "#c")) == ["WHO #c"]


def test_after_a_drop_exactly_what_was_missed_is_fetched_page_by_page() -> None:
    state = ClientState("me")
    session = Session(state, ["#c"])
    session.registered(HISTORY, T0)
    joined(state, session, "#c")
    feed(state, "@msgid=m1;time=2027-01-15T08:00:00.000Z :bob!b@h PRIVMSG #c :hi")
    session.disconnected("connection reset", 1.0, T0 + 60)
    assert session.disconnected_at == T0 + 60
    assert sent(session.registered(HISTORY, T0 + 120)) == ["JOIN #c"]
    # what arrives with the JOIN does not move the cursor past the gap
    actions = joined(state, session, "#c", now=T0 + 121)
    assert sent(actions) == ["WHO #c", f"CHATHISTORY AFTER #c msgid=m1 {HISTORY_PAGE}"]
    # a full page: the next one, from its last message
    page = Changes(histories=[("#c", HISTORY_PAGE, HISTORY_PAGE, "m101")])
    assert sent(session.histories(page, T0 + 122)) == [
        f"CHATHISTORY AFTER #c msgid=m101 {HISTORY_PAGE}"
    ]
    assert session.disconnected_at is not None
    # a short page ends the fetch, with a divider that says how many
    last = session.histories(Changes(histories=[("#c", 3, 3, "m104")]), T0 + 123)
    assert sent(last) == []
    [(key, text)] = last.dividers
    assert (
        key == "#c" and text.startswith("disconnected ") and text.endswith(", 103 messages fetched")
    )
    assert session.disconnected_at is None  # the drop is made up for


def test_lines_typed_while_disconnected_go_out_labelled_on_registering() -> None:
    state = ClientState("me")
    session = Session(state)
    feed(state, ":me!u@h JOIN #c")
    session.disconnected("connection reset", 1.0, T0)
    item = session.keep_unsent(Line("PRIVMSG", ("#c", "are you there?")))
    changes = state.own_message("#c", "are you there?", T0)
    item.entries += changes.entries
    caps = frozenset({"echo-message", "labeled-response", "batch"})
    actions = session.registered(caps, T0 + 5)
    # the channel it was in is rejoined first
    assert sent(actions) == ["JOIN #c", "@label=t1 PRIVMSG #c :are you there?"]
    assert session.unsent == []
    assert [entry for _, entry in actions.changes.updated] == [e for _, e in changes.entries]
    said = {(w.key, e.text) for w, e in actions.changes.entries}
    sent_late = {(key, "sent 1 line typed while disconnected") for key in (SERVER, "#c")}
    assert said == {(SERVER, "reconnected"), *sent_late}


def test_without_echo_a_replayed_line_says_it_was_sent_late() -> None:
    state = ClientState("me")
    session = Session(state)
    feed(state, ":me!u@h JOIN #c")
    item = session.keep_unsent(Line("PRIVMSG", ("#c", "late")))
    item.entries += state.own_message("#c", "late", T0).entries
    actions = session.registered(frozenset(), T0)
    assert sent(actions) == ["PRIVMSG #c late"]
    assert [e.state for _, e in actions.changes.updated] == ["sent after reconnecting"]


def test_typing_is_sent_sparingly_and_done_when_cleared() -> None:
    state = ClientState("me")
    session = Session(state)
    session.registered(frozenset({"message-tags"}), T0)
    feed(state, ":me!u@h JOIN #c")
    state.select("#c")
    assert sent(session.typing("h", 10.0)) == ["@+typing=active TAGMSG #c"]
    assert sent(session.typing("he", 11.0)) == []  # within 3 s
    assert sent(session.typing("hel", 13.5)) == ["@+typing=active TAGMSG #c"]
    assert sent(session.typing("/me", 14.0)) == []  # a command is not typing
    assert sent(session.typing("", 14.5)) == []  # already stopped by the command
    session.typing("x", 20.0)
    assert sent(session.typing("", 20.5)) == ["@+typing=done TAGMSG #c"]


def test_anothers_typing_shows_until_they_speak_or_go_quiet() -> None:
    state = ClientState("me")
    session = Session(state)
    session.registered(frozenset({"message-tags"}), T0)
    feed(state, ":me!u@h JOIN #c")
    state.select("#c")
    actions = session.received(feed(state, "@+typing=active :bob!b@h TAGMSG #c"), 100.0)
    assert actions.status and list(session.typers["#c"]) == ["bob"]
    assert not session.expire_typing(105.0)
    assert session.expire_typing(106.5) and session.typers["#c"] == {}
    session.received(feed(state, "@+typing=active :bob!b@h TAGMSG #c"), 200.0)
    actions = session.received(feed(state, ":bob!b@h PRIVMSG #c :done typing"), 201.0)
    assert actions.status and session.typers["#c"] == {}


def test_the_read_marker_is_sent_once_per_newer_line() -> None:
    state = ClientState("me")
    session = Session(state)
    session.registered(frozenset({"draft/read-marker", "server-time"}), T0)
    feed(state, ":me!u@h JOIN #c")
    state.select("#c")
    changes = feed(state, "@msgid=r1;time=2027-01-15T08:00:00.250Z :bob!b@h PRIVMSG #c :read me")
    assert session.received(changes, 0.0).mark_read_after == 2.0
    assert sent(session.mark_read(registered=False)) == []
    assert sent(session.mark_read(registered=True)) == [
        "MARKREAD #c timestamp=2027-01-15T08:00:00.250Z"
    ]
    assert sent(session.mark_read(registered=True)) == []  # nothing newer since


def test_a_closed_window_is_not_rejoined() -> None:
    state = ClientState("me")
    session = Session(state, ["#a", "#b"])
    session.closed("#a")
    assert sent(session.registered(frozenset(), T0)) == ["JOIN #b"]


def test_a_drop_is_said_once_in_the_log_and_the_return_too() -> None:
    state = ClientState("me")
    session = Session(state)
    feed(state, ":me!u@h JOIN #c")
    state.select("#c")
    first = session.disconnected("connection reset", 1.0, T0)
    said = [(w.key, e.kind, e.text) for w, e in first.changes.entries]
    text = "disconnected: connection reset (reconnecting by itself)"
    assert said == [(SERVER, "error", text), ("#c", "error", text)]
    assert first.note is None
    # the next attempts fail too: the status line only
    again = session.disconnected("connection refused", 2.0, T0 + 1)
    assert again.changes.entries == [] and again.note == "connection refused"
    # no more attempts: said, whatever was said before
    last = session.disconnected("giving up", None, T0 + 3)
    assert [e.text for _, e in last.changes.entries][:1] == ["disconnected: giving up"]
    back = session.registered(frozenset(), T0 + 4)
    assert [(w.key, e.text) for w, e in back.changes.entries] == [(SERVER, "reconnected")]
    assert session.registered(frozenset(), T0 + 5).changes.entries == []
