"""Unit tests for `commands.interpret`: what each typed line turns into, in every kind of window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.client_state import ACTION, ERROR, INFO, MESSAGE, NOTICE, ClientState, Window
from tuichat.commands import (
    COMMANDS,
    HELP,
    MESSAGE_BYTES,
    Action,
    ClearWindow,
    CloseWindow,
    OpenWindow,
    Quit,
    Send,
    Show,
    ShowOwn,
    completions,
    interpret,
)
from tuichat.net.protocol import Line, parse

SERVER_WINDOW = Window("Example", "server")
CHANNEL = Window("#chan", "channel")
QUERY = Window("bob", "query")
WINDOWS = {"server": SERVER_WINDOW, "channel": CHANNEL, "query": QUERY}


def send(command: str, *params: str) -> Send:
    return Send(Line(command, params))


def usage(command: str) -> list[Action]:
    return [Show(f"usage: {HELP[command][0]}", ERROR)]


def sent(actions: list[Action]) -> list[Line]:
    lines = []
    for action in actions:
        if isinstance(action, Send):
            assert isinstance(action.line, Line)
            lines.append(action.line)
    return lines


# (text, window kind, expected actions); every command in HELP appears with and without arguments
CASES: list[tuple[str, str, list[Action]]] = [
    # join
    ("/join #rust", "server", [send("JOIN", "#rust")]),
    ("/join rust", "query", [send("JOIN", "#rust")]),
    ("/join #a,b,#c", "channel", [send("JOIN", "#a,#b,#c")]),
    ("/join #secret hunter2", "channel", [send("JOIN", "#secret", "hunter2")]),
    ("/join #secret key extra", "channel", [send("JOIN", "#secret", "key")]),
    ("/JOIN #Rust", "server", [send("JOIN", "#Rust")]),
    ("/join &local", "server", [send("JOIN", "&local")]),
    ("/join", "server", usage("join")),
    ("/join   ", "channel", usage("join")),
    # part (and /leave)
    ("/part", "channel", [send("PART", "#chan")]),
    ("/part going home now", "channel", [send("PART", "#chan", "going home now")]),
    ("/part #other", "channel", [send("PART", "#other")]),
    ("/part #other bye  all", "server", [send("PART", "#other", "bye  all")]),
    ("/leave", "channel", [send("PART", "#chan")]),
    ("/part", "server", usage("part")),
    ("/part", "query", usage("part")),
    ("/part bye", "query", usage("part")),
    # msg
    (
        "/msg carol hi  there",
        "server",
        [send("PRIVMSG", "carol", "hi  there"), ShowOwn("carol", "hi  there")],
    ),
    ("/msg #chan hello", "query", [send("PRIVMSG", "#chan", "hello"), ShowOwn("#chan", "hello")]),
    ("/msg", "channel", usage("msg")),
    ("/msg carol", "channel", usage("msg")),
    ("/msg carol   ", "channel", usage("msg")),
    # query
    ("/query carol", "server", [OpenWindow("carol")]),
    (
        "/query carol hi you",
        "channel",
        [OpenWindow("carol"), send("PRIVMSG", "carol", "hi you"), ShowOwn("carol", "hi you")],
    ),
    ("/query", "channel", usage("query")),
    # me
    (
        "/me waves",
        "channel",
        [send("PRIVMSG", "#chan", "\x01ACTION waves\x01"), ShowOwn("#chan", "waves", ACTION)],
    ),
    (
        "/ME hugs bob",
        "query",
        [send("PRIVMSG", "bob", "\x01ACTION hugs bob\x01"), ShowOwn("bob", "hugs bob", ACTION)],
    ),
    ("/me", "channel", usage("me")),
    ("/me   ", "query", usage("me")),
    ("/me waves", "server", [Show("/me works in a channel or a private conversation", ERROR)]),
    # notice
    (
        "/notice carol ping",
        "channel",
        [send("NOTICE", "carol", "ping"), ShowOwn("carol", "ping", NOTICE)],
    ),
    ("/notice", "server", usage("notice")),
    ("/notice carol", "server", usage("notice")),
    # nick
    ("/nick alice2", "server", [send("NICK", "alice2")]),
    ("/nick", "channel", usage("nick")),
    ("/nick two words", "channel", usage("nick")),
    # topic
    ("/topic", "channel", [send("TOPIC", "#chan")]),
    ("/topic a new  topic", "channel", [send("TOPIC", "#chan", "a new  topic")]),
    ("/topic #other", "server", [send("TOPIC", "#other")]),
    ("/topic #other their topic", "query", [send("TOPIC", "#other", "their topic")]),
    ("/topic", "server", usage("topic")),
    ("/topic some text", "query", usage("topic")),
    # names
    ("/names", "channel", [send("NAMES", "#chan")]),
    ("/names #other", "server", [send("NAMES", "#other")]),
    ("/names", "server", usage("names")),
    ("/names", "query", usage("names")),
    # whois
    ("/whois carol", "query", [send("WHOIS", "carol")]),
    ("/whois", "query", usage("whois")),
    # away, back
    ("/away lunch break", "channel", [send("AWAY", "lunch break")]),
    ("/away", "server", [send("AWAY", "away")]),
    ("/back", "channel", [send("AWAY")]),
    ("/back now", "query", [send("AWAY")]),
    # invite
    ("/invite carol", "channel", [send("INVITE", "carol", "#chan")]),
    ("/invite carol #other", "server", [send("INVITE", "carol", "#other")]),
    ("/invite", "channel", usage("invite")),
    ("/invite carol", "server", usage("invite")),
    ("/invite carol", "query", usage("invite")),
    # kick
    ("/kick carol", "channel", [send("KICK", "#chan", "carol")]),
    ("/kick carol stop  that", "channel", [send("KICK", "#chan", "carol", "stop  that")]),
    ("/kick #other carol", "server", [send("KICK", "#other", "carol")]),
    ("/kick #other carol go away", "query", [send("KICK", "#other", "carol", "go away")]),
    ("/kick", "channel", usage("kick")),
    ("/kick", "server", usage("kick")),
    ("/kick carol", "query", usage("kick")),
    ("/kick #other", "server", usage("kick")),
    # mode
    ("/mode", "channel", [send("MODE", "#chan")]),
    ("/mode +o carol", "channel", [send("MODE", "#chan", "+o", "carol")]),
    ("/mode -v+k carol key", "channel", [send("MODE", "#chan", "-v+k", "carol", "key")]),
    ("/mode #other +n", "channel", [send("MODE", "#other", "+n")]),
    ("/mode alice +i", "server", [send("MODE", "alice", "+i")]),
    ("/mode #other", "query", [send("MODE", "#other")]),
    ("/mode", "server", usage("mode")),
    ("/mode", "query", usage("mode")),
    # list
    ("/list", "server", [send("LIST")]),
    ("/list #r*", "channel", [send("LIST", "#r*")]),
    # close, clear
    ("/close", "channel", [CloseWindow()]),
    ("/close", "query", [CloseWindow()]),
    ("/close now", "server", [CloseWindow()]),
    ("/clear", "channel", [ClearWindow()]),
    ("/clear", "server", [ClearWindow()]),
    ("/clear all", "query", [ClearWindow()]),
    # ban / unban
    ("/ban bob", "channel", [Send(Line("MODE", ("#chan", "+b", "bob!*@*")))]),
    ("/ban *!*@10.0.0.5", "channel", [Send(Line("MODE", ("#chan", "+b", "*!*@10.0.0.5")))]),
    ("/ban", "channel", usage("ban")),
    ("/ban bob", "server", usage("ban")),
    ("/unban bob!*@*", "channel", [Send(Line("MODE", ("#chan", "-b", "bob!*@*")))]),
    ("/unban", "channel", usage("unban")),
    # register
    ("/register hunter2hunter2", "server", [Send(Line("REGISTER", ("*", "*", "hunter2hunter2")))]),
    ("/register", "channel", usage("register")),
    ("/register two words", "channel", usage("register")),
    # quote (and /raw)
    ("/quote PRIVMSG #chan :raw  text", "server", [Send("PRIVMSG #chan :raw  text")]),
    ("/raw WHO #chan", "channel", [Send("WHO #chan")]),
    ("/quote", "channel", usage("quote")),
    ("/quote    ", "server", usage("quote")),
    # help
    ("/help join", "server", [Show(f"{HELP['join'][0]} — {HELP['join'][1]}")]),
    ("/help /QUIT", "channel", [Show(f"{HELP['quit'][0]} — {HELP['quit'][1]}")]),
    ("/help frobnicate", "channel", [Show("no such command: /frobnicate", ERROR)]),
    # quit (and /exit)
    ("/quit", "channel", [Quit("")]),
    ("/quit see you  all", "server", [Quit("see you  all")]),
    ("/exit", "query", [Quit("")]),
    # not commands
    ("/frobnicate x", "channel", [Show("unknown command /frobnicate (try /help)", ERROR)]),
    ("hello", "channel", [send("PRIVMSG", "#chan", "hello"), ShowOwn("#chan", "hello")]),
    ("hello", "query", [send("PRIVMSG", "bob", "hello"), ShowOwn("bob", "hello")]),
    ("  spaced  ", "channel", [
        send("PRIVMSG", "#chan", "  spaced  "), ShowOwn("#chan", "  spaced  ")
    ]),
    ("//join is a command", "channel", [
        send("PRIVMSG", "#chan", "/join is a command"),
        ShowOwn("#chan", "/join is a command"),
    ]),
    ("//", "query", [send("PRIVMSG", "bob", "/"), ShowOwn("bob", "/")]),
    ("[bold]x[/]", "channel", [
        send("PRIVMSG", "#chan", "[bold]x[/]"), ShowOwn("#chan", "[bold]x[/]")
    ]),
    ("hello", "server", [
        Show("this is the server window: /join #channel or /msg NICK text", ERROR)
    ]),
    ("//hello", "server", [
        Show("this is the server window: /join #channel or /msg NICK text", ERROR)
    ]),
    ("", "channel", []),
    ("   ", "channel", []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kind", "expected"), CASES, ids=[f"{c[1]}:{c[0]!r}" for c in CASES]
)
def test_interpret(text: str, kind: str, expected: list[Action]) -> None:
    assert interpret(text, WINDOWS[kind]) == expected


def test_every_help_command_is_covered_with_and_without_arguments() -> None:
    with_args: set[str] = set()
    without_args: set[str] = set()
    for text, _, _ in CASES:
        if text.startswith("/") and not text.startswith("//"):
            word, _, rest = text[1:].partition(" ")
            (with_args if rest.strip() else without_args).add(word.lower())
    assert set(HELP) - with_args == set()
    assert set(HELP) - without_args == {"help"}  # /help alone: test_help_lists_every_command_once


def test_missing_arguments_show_usage_as_an_error_and_send_nothing() -> None:
    for text, kind, expected in CASES:
        if expected and isinstance(expected[0], Show) and expected[0].text.startswith("usage:"):
            actions = interpret(text, WINDOWS[kind])
            assert len(actions) == 1, text
            assert isinstance(actions[0], Show) and actions[0].kind == ERROR


def test_help_lists_every_command_once() -> None:
    actions = interpret("/help", CHANNEL)
    assert all(isinstance(a, Show) and a.kind == INFO for a in actions)
    texts = [a.text for a in actions if isinstance(a, Show)]
    for name in COMMANDS:
        assert sum(HELP[name][0] in text for text in texts) == 1, name
    assert sorted(HELP) == COMMANDS
    assert len(texts) == len(HELP) + 2  # a heading, one line per command, the keys


def test_join_uses_the_servers_channel_types() -> None:
    # on a network without &channels, "&foo" is a name to make into a channel
    assert interpret("/join &foo", SERVER_WINDOW, chantypes="#") == [send("JOIN", "#&foo")]
    assert interpret("/join &foo", SERVER_WINDOW, chantypes="#&") == [send("JOIN", "&foo")]
    assert interpret("/part +x", SERVER_WINDOW, chantypes="#+") == [send("PART", "+x")]
    assert interpret("/part +x", SERVER_WINDOW) == usage("part")


# splitting long messages --------------------------------------------------------------------------


def _check_split(actions: list[Action], target: str, text: str, kind: str) -> list[str]:
    """The sends and shows come in pairs; every send fits; the pieces add back up to the text."""
    sends = [a for a in actions if isinstance(a, Send)]
    shows = [a for a in actions if isinstance(a, ShowOwn)]
    assert len(sends) == len(shows) == len(actions) // 2
    assert actions == [x for pair in zip(sends, shows, strict=True) for x in pair]
    pieces = []
    for action, show in zip(sends, shows, strict=True):
        assert isinstance(action.line, Line)
        assert action.line.params[0] == target
        wire = action.line.params[1]
        assert len(target.encode()) + len(wire.encode()) <= MESSAGE_BYTES, len(wire.encode())
        assert show.target == target and show.kind == kind
        pieces.append(show.text)
    assert not any(piece.endswith(" ") for piece in pieces[:-1])  # cut at a space: it goes
    assert not any(piece.startswith(" ") for piece in pieces[1:])
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    return pieces


@pytest.mark.parametrize(
    "text",
    [
        "word " * 300,
        "x" * 1000,
        "é" * 700,
        "🎉 " * 300,
        "日本語のテキスト" * 60,
        ("a" * 390 + " ") * 3,
    ],
    ids=["words", "one-long-word", "2-byte", "emoji", "cjk", "near-limit-words"],
)
def test_long_messages_are_split_into_pieces_that_fit(text: str) -> None:
    pieces = _check_split(interpret(text, CHANNEL), "#chan", text, MESSAGE)
    assert len(pieces) > 1
    assert all(piece for piece in pieces)
    if " " not in text:
        assert "".join(pieces) == text  # cut inside the word, never inside a character


def test_long_msg_to_a_long_target_still_fits() -> None:
    target = "#" + "c" * 49
    text = "hello " * 200
    _check_split(interpret(f"/msg {target} {text}", SERVER_WINDOW), target, text, MESSAGE)
    _check_split(interpret(f"/notice {target} {text}", SERVER_WINDOW), target, text, NOTICE)


def test_message_that_fits_is_one_piece() -> None:
    text = "y" * (MESSAGE_BYTES - len("#chan"))
    assert interpret(text, CHANNEL) == [send("PRIVMSG", "#chan", text), ShowOwn("#chan", text)]
    assert len(sent(interpret(text + "y", CHANNEL))) == 2


def test_long_me_is_split_into_actions_that_fit() -> None:
    text = "waves " * 200
    pieces = _check_split(interpret("/me " + text, CHANNEL), "#chan", text, ACTION)
    assert len(pieces) > 1


def test_long_me_pieces_are_all_actions() -> None:
    text = "waves " * 200
    actions = interpret("/me " + text, CHANNEL)
    lines = sent(actions)
    assert len(lines) > 1
    for line in lines:
        assert line.params[1].startswith("\x01ACTION ")
        assert line.params[1].endswith("\x01")
        assert line.params[1].count("\x01") == 2


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=1200))
def test_any_text_in_a_channel_is_sent_in_pieces_that_fit(text: str) -> None:
    if not text.strip() or (text.startswith("/") and not text.startswith("//")):
        return
    lines = sent(interpret(text, CHANNEL))
    assert lines
    for line in lines:
        assert line.command == "PRIVMSG"
        assert len(line.params[0].encode()) + len(line.params[1].encode()) <= MESSAGE_BYTES


def test_completions_of_commands_channels_and_nicks() -> None:
    state = ClientState("me")
    for raw in (":me!u@h JOIN #chat", ":me!u@h JOIN #Chaos", ":Bob!b@h JOIN #chat"):
        state.feed(parse(raw), 0.0)
    state.select("#chat")
    assert completions("/jo", True, state) == ["/join"]
    assert completions("/jo", False, state) == []  # not at the start: a word
    assert completions("#CH", False, state) == ["#chat", "#Chaos"]
    assert completions("b", False, state) == ["Bob"]
