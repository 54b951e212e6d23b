"""Unit tests for the client's view of IRC: feed `ClientState` lines as a server sends them.

No sockets and no Textual: every line is parsed from the raw text a real server would send, and
every call gets its time from the test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.client_state import (
    ACTION,
    ERROR,
    EVENT,
    INFO,
    MESSAGE,
    NOTICE,
    SERVER,
    Changes,
    ClientState,
    Entry,
    Window,
)
from tuichat.net.protocol import parse

T0 = 1_000_000.0
ME = "alice"


# harness ------------------------------------------------------------------------------------------


def feed(state: ClientState, *raw: str) -> Changes:
    """Feed raw lines (as the server sends them) and merge what they changed."""
    merged = Changes()
    for text in raw:
        merged.merge(state.feed(parse(text), T0))
    return merged


def shown(changes: Changes) -> list[tuple[str, str, str]]:
    """(window key, kind, text) of every entry, in order."""
    return [(window.key, entry.kind, entry.text) for window, entry in changes.entries]


def only_entry(changes: Changes) -> tuple[Window, Entry]:
    assert len(changes.entries) == 1, shown(changes)
    return changes.entries[0]


def members(state: ClientState, key: str) -> dict[str, str]:
    """nick -> prefix modes of everybody in a window."""
    return {m.nick: m.modes for m in state.windows[key].members.values()}


def order(state: ClientState, key: str) -> list[str]:
    return [m.prefix + m.nick for m in state.sorted_members(key)]


def welcome(state: ClientState) -> None:
    feed(
        state,
        f":irc.example.org 001 {ME} :Welcome to the Example IRC Network {ME}!~a@host",
        f":irc.example.org 002 {ME} :Your host is irc.example.org, running version tuichat",
        f":irc.example.org 005 {ME} CHANTYPES=# NETWORK=Example :are supported by this server",
        f":irc.example.org 375 {ME} :- irc.example.org Message of the Day -",
        f":irc.example.org 372 {ME} :- be nice",
        f":irc.example.org 376 {ME} :End of /MOTD command.",
    )


def join(state: ClientState, channel: str, *names: str) -> Changes:
    """Our JOIN of `channel`, then its NAMES burst (one 353 line per name group)."""
    raw = [f":{state.nick}!~a@host JOIN {channel}"]
    raw += [f":irc.example.org 353 {state.nick} = {channel} :{group}" for group in names]
    raw.append(f":irc.example.org 366 {state.nick} {channel} :End of /NAMES list.")
    return feed(state, *raw)


@pytest.fixture
def state() -> ClientState:
    """alice, registered, in #chan with an op (herself), a voice and two plain members."""
    state = ClientState(ME)
    welcome(state)
    join(state, "#chan", "@alice +bob", "carol Dave")
    return state


# registration and ISUPPORT ------------------------------------------------------------------------


def test_welcome_burst_shows_in_the_server_window_and_names_it_after_the_network() -> None:
    state = ClientState(ME, "irc.example.org")
    changes = feed(
        state,
        f":irc.example.org 001 {ME} :Welcome to the Example IRC Network",
        f":irc.example.org 005 {ME} NETWORK=Example :are supported by this server",
        f":irc.example.org 372 {ME} :- be nice",
    )
    assert shown(changes) == [
        (SERVER, INFO, "Welcome to the Example IRC Network"),
        (SERVER, INFO, "- be nice"),
    ]
    assert state.windows[SERVER].name == "Example"
    assert state.network == "Example"


def test_001_with_another_nick_tells_us_our_real_nick() -> None:
    state = ClientState(ME)
    changes = feed(state, ":irc.example.org 001 alice_ :Welcome alice_")
    assert changes.nick
    assert state.nick == "alice_"
    feed(state, "PING :x")  # unknown to the client: ignored
    assert not feed(state, ":irc.example.org 001 alice_ :Welcome again").nick


def test_isupport_prefix_changes_the_prefix_table_and_names_parsing() -> None:
    state = ClientState(ME)
    feed(
        state,
        f":irc.example.org 005 {ME} CHANTYPES=#& PREFIX=(qaohv)~&@%+ :are supported by this server",
    )
    assert state.prefixes == {"q": "~", "a": "&", "o": "@", "h": "%", "v": "+"}
    join(state, "#chan", "~&@alice +eve %Dan", "@carol bob &Fay")
    assert members(state, "#chan") == {
        "alice": "~&@",  # multi-prefix: every prefix held, best first
        "eve": "+",
        "Dan": "%",
        "carol": "@",
        "bob": "",
        "Fay": "&",
    }
    assert order(state, "#chan") == ["~alice", "&Fay", "@carol", "%Dan", "+eve", "bob"]


def test_isupport_bad_prefix_token_keeps_the_table() -> None:
    state = ClientState(ME)
    feed(state, f":irc.example.org 005 {ME} PREFIX=(ov)@ :are supported by this server")
    assert state.prefixes == {"o": "@", "v": "+"}


def test_isupport_chantypes_decides_what_a_channel_is() -> None:
    state = ClientState(ME)
    assert state.is_channel("&local")
    feed(state, f":irc.example.org 005 {ME} CHANTYPES=# :are supported by this server")
    assert not state.is_channel("&local")
    assert state.is_channel("#chan")
    assert not state.is_channel("")


# joins and NAMES ----------------------------------------------------------------------------------


def test_own_join_opens_the_window_and_names_burst_fills_the_member_list() -> None:
    state = ClientState(ME)
    welcome(state)
    changes = join(state, "#Chan", "@alice +bob carol", "Dave +Erin", "@frank")
    window = state.windows["#chan"]
    assert window.name == "#Chan"
    assert window.kind == "channel"
    assert window.joined
    assert changes.joined == ["#chan"]
    assert changes.windows
    assert "#chan" in changes.members
    assert shown(changes) == [("#chan", EVENT, "alice (~a@host) has joined")]
    assert members(state, "#chan") == {
        "alice": "@",
        "bob": "+",
        "carol": "",
        "Dave": "",
        "Erin": "+",
        "frank": "@",
    }
    assert state.channels() == ["#Chan"]


def test_sorted_members_ops_then_voices_then_the_rest_case_insensitively(
    state: ClientState,
) -> None:
    feed(state, ":irc.example.org 353 alice = #chan :+Zed @beth +adam zoe Anna @Carl")
    feed(state, ":irc.example.org 366 alice #chan :End of /NAMES list")
    assert order(state, "#chan") == [
        "@alice",
        "@beth",
        "@Carl",
        "+adam",
        "+bob",
        "+Zed",
        "Anna",
        "carol",
        "Dave",
        "zoe",
    ]
    assert state.sorted_members("#nowhere") == []
    assert state.sorted_members(SERVER) == []


def test_names_with_userhost_in_names_keeps_only_the_nick(state: ClientState) -> None:
    feed(state, ":irc.example.org 353 alice = #chan :@grace!~g@host.example +hank!h@h")
    feed(state, ":irc.example.org 366 alice #chan :End of /NAMES list")
    assert members(state, "#chan")["grace"] == "@"
    assert members(state, "#chan")["hank"] == "+"


def test_someone_else_joining_adds_a_member(state: ClientState) -> None:
    changes = feed(state, ":eve!~eve@eve.example JOIN #chan")
    assert shown(changes) == [("#chan", EVENT, "eve (~eve@eve.example) has joined")]
    assert changes.members == {"#chan"}
    assert changes.joined == []
    assert members(state, "#chan")["eve"] == ""
    assert state.nicks("#chan") == ["alice", "bob", "carol", "Dave", "eve"]
    assert state.nicks("#nowhere") == []


def test_extended_join_is_understood(state: ClientState) -> None:
    feed(state, ":eve!~eve@h JOIN #chan eveaccount :Eve Example")
    assert "eve" in members(state, "#chan")


def test_rejoin_clears_stale_members() -> None:
    state = ClientState(ME)
    join(state, "#chan", "@alice bob")
    state.disconnected()
    join(state, "#chan", "alice carol")
    assert members(state, "#chan") == {"alice": "", "carol": ""}


# part, kick, quit ---------------------------------------------------------------------------------


def test_someone_parting_leaves_the_member_list(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h PART #chan :see you")
    assert shown(changes) == [("#chan", EVENT, "bob has left (see you)")]
    assert "bob" not in members(state, "#chan")
    assert changes.members == {"#chan"}
    assert state.windows["#chan"].joined


def test_own_part_keeps_the_window_but_not_the_channel(state: ClientState) -> None:
    changes = feed(state, ":alice!~a@host PART #chan")
    assert shown(changes) == [("#chan", EVENT, "you have left #chan")]
    window = state.windows["#chan"]
    assert not window.joined
    assert window.members == {}
    assert state.channels() == []


def test_part_of_an_unknown_channel_is_ignored(state: ClientState) -> None:
    assert shown(feed(state, ":bob!~b@h PART #elsewhere")) == []
    assert "#elsewhere" not in state.windows


def test_someone_else_kicked(state: ClientState) -> None:
    changes = feed(state, ":alice!~a@host KICK #chan Dave :flooding")
    assert shown(changes) == [("#chan", EVENT, "Dave was kicked by alice (flooding)")]
    assert "Dave" not in members(state, "#chan")
    assert state.windows["#chan"].joined


def test_own_kick_is_an_error_and_leaves_the_channel(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h KICK #chan ALICE :bye")
    assert shown(changes) == [("#chan", ERROR, "you were kicked from #chan by bob (bye)")]
    assert not state.windows["#chan"].joined
    assert state.windows["#chan"].members == {}
    assert changes.windows
    assert state.channels() == []


def test_quit_removes_the_nick_from_every_channel_and_tells_its_query(state: ClientState) -> None:
    join(state, "#other", "alice bob", "eve")
    feed(state, ":bob!~b@h PRIVMSG alice :hello")
    changes = feed(state, ":BOB!~b@h QUIT :Quit: gone")
    assert shown(changes) == [
        ("#chan", EVENT, "BOB has quit (Quit: gone)"),
        ("#other", EVENT, "BOB has quit (Quit: gone)"),
        ("bob", EVENT, "BOB has quit (Quit: gone)"),
    ]
    assert changes.members == {"#chan", "#other"}
    assert "bob" not in members(state, "#chan")
    assert "bob" not in members(state, "#other")


def test_quit_of_a_stranger_shows_nothing(state: ClientState) -> None:
    changes = feed(state, ":zed!~z@h QUIT :bye")
    assert changes.entries == []
    assert changes.members == set()


# nick changes -------------------------------------------------------------------------------------


def test_someone_else_changing_nick_keeps_their_modes(state: ClientState) -> None:
    join(state, "#other", "alice @bob")
    changes = feed(state, ":bob!~b@h NICK :robert")
    assert shown(changes) == [
        ("#chan", EVENT, "bob is now known as robert"),
        ("#other", EVENT, "bob is now known as robert"),
    ]
    assert members(state, "#chan")["robert"] == "+"
    assert members(state, "#other")["robert"] == "@"
    assert "bob" not in members(state, "#chan")
    assert not changes.nick


def test_nick_change_renames_the_query_window_and_keeps_it_current(state: ClientState) -> None:
    feed(state, ":bob!~b@h PRIVMSG alice :psst")
    state.select("bob")
    changes = feed(state, ":bob!~b@h NICK robert")
    assert "bob" not in state.windows
    window = state.windows["robert"]
    assert window.name == "robert"
    assert window.kind == "query"
    assert state.current == "robert"
    assert changes.windows
    assert ("robert", EVENT, "bob is now known as robert") in shown(changes)


def test_case_only_nick_change_renames_the_query_window(state: ClientState) -> None:
    feed(state, ":bob!~b@h PRIVMSG alice :psst")
    feed(state, ":bob!~b@h NICK Bob")
    assert state.windows["bob"].name == "Bob"
    assert members(state, "#chan")["Bob"] == "+"


def test_own_nick_change(state: ClientState) -> None:
    changes = feed(state, ":alice!~a@host NICK alice2")
    assert changes.nick
    assert state.nick == "alice2"
    assert members(state, "#chan")["alice2"] == "@"
    assert shown(changes) == [("#chan", EVENT, "alice is now known as alice2")]
    # mentions follow the new nick
    assert feed(state, ":bob!~b@h PRIVMSG #chan :alice2: hi").entries[0][1].mention
    assert not feed(state, ":bob!~b@h PRIVMSG #chan :alice: hi").entries[0][1].mention


def test_own_nick_change_outside_channels_is_told_in_the_server_window() -> None:
    state = ClientState(ME)
    changes = feed(state, ":alice!~a@host NICK :alice_")
    assert shown(changes) == [(SERVER, EVENT, "you are now known as alice_")]
    assert state.nick == "alice_"


# modes --------------------------------------------------------------------------------------------


def test_mode_with_several_prefix_args(state: ClientState) -> None:
    changes = feed(state, ":alice!~a@host MODE #chan +oov-v carol Dave Dave bob")
    assert shown(changes) == [("#chan", EVENT, "alice sets mode +oov-v carol Dave Dave bob")]
    assert changes.members == {"#chan"}
    assert members(state, "#chan") == {"alice": "@", "bob": "", "carol": "@", "Dave": "@+"}
    feed(state, ":alice!~a@host MODE #chan -o+v carol carol")
    assert members(state, "#chan")["carol"] == "+"
    feed(state, ":alice!~a@host MODE #chan +o carol")
    assert members(state, "#chan")["carol"] == "@+"  # best first, whatever the order given
    assert order(state, "#chan") == ["@alice", "@carol", "@Dave", "bob"]


def test_mode_minus_voice_removes_it(state: ClientState) -> None:
    feed(state, ":alice!~a@host MODE #chan -v bob")
    assert members(state, "#chan")["bob"] == ""


def test_mode_args_of_key_and_limit_are_skipped(state: ClientState) -> None:
    feed(state, ":alice!~a@host MODE #chan +kol s3cret bob 10")
    assert members(state, "#chan")["bob"] == "@+"
    assert "s3cret" not in members(state, "#chan")
    # -k takes its argument, -l takes none
    feed(state, ":alice!~a@host MODE #chan -klo+b s3cret carol *!*@spam")
    assert members(state, "#chan")["carol"] == ""
    feed(state, ":alice!~a@host MODE #chan +o-lv+b carol bob *!*@x")
    assert members(state, "#chan")["carol"] == "@"
    assert members(state, "#chan")["bob"] == "@"


def test_mode_with_custom_prefixes(state: ClientState) -> None:
    feed(state, f":irc.example.org 005 {ME} PREFIX=(qaohv)~&@%+ :are supported by this server")
    feed(state, ":alice!~a@host MODE #chan +qhk Dave carol key")
    assert members(state, "#chan")["Dave"] == "~"
    assert members(state, "#chan")["carol"] == "%"
    assert order(state, "#chan")[:3] == ["~Dave", "@alice", "%carol"]


def test_mode_for_an_absent_nick_or_missing_arg_is_harmless(state: ClientState) -> None:
    before = members(state, "#chan")
    changes = feed(state, ":alice!~a@host MODE #chan +oo zed")
    assert members(state, "#chan") == before
    assert shown(changes) == [("#chan", EVENT, "alice sets mode +oo zed")]


def test_user_mode_goes_to_the_server_window(state: ClientState) -> None:
    changes = feed(state, ":alice MODE alice :+iw")
    assert shown(changes) == [(SERVER, EVENT, "mode +iw for alice")]


def test_server_set_mode_names_the_server(state: ClientState) -> None:
    changes = feed(state, ":irc.example.org MODE #chan +nt")
    assert shown(changes) == [("#chan", EVENT, "irc.example.org sets mode +nt")]


# topics -------------------------------------------------------------------------------------------


def test_topic_on_join_from_332_and_333(state: ClientState) -> None:
    changes = feed(
        state,
        ":irc.example.org 332 alice #chan :Welcome to #chan | rules: be nice",
        ":irc.example.org 333 alice #chan bob!~b@h 1700000000",
    )
    assert state.windows["#chan"].topic == "Welcome to #chan | rules: be nice"
    assert changes.topics == {"#chan"}
    assert shown(changes) == [("#chan", EVENT, "topic: Welcome to #chan | rules: be nice")]


def test_topic_change_and_clear(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h TOPIC #chan :new topic")
    assert state.windows["#chan"].topic == "new topic"
    assert changes.topics == {"#chan"}
    assert shown(changes) == [("#chan", EVENT, "bob changed the topic to: new topic")]
    changes = feed(state, ":bob!~b@h TOPIC #chan :")
    assert state.windows["#chan"].topic == ""
    assert shown(changes) == [("#chan", EVENT, "bob cleared the topic")]


# messages -----------------------------------------------------------------------------------------


def test_channel_message(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h PRIVMSG #chan :hello there")
    window, entry = only_entry(changes)
    assert window.key == "#chan"
    assert (entry.kind, entry.text, entry.nick, entry.own, entry.mention) == (
        MESSAGE,
        "hello there",
        "bob",
        False,
        False,
    )
    assert entry.time == T0


def test_channel_message_to_an_unopened_channel_opens_it(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h PRIVMSG #Other :hi")
    assert state.windows["#other"].name == "#Other"
    assert changes.windows


def test_statusmsg_goes_to_the_channel(state: ClientState) -> None:
    window, entry = only_entry(feed(state, ":bob!~b@h NOTICE @#chan :ops only"))
    assert window.key == "#chan"
    assert entry.kind == NOTICE


def test_private_message_opens_a_query_window_named_after_the_sender(state: ClientState) -> None:
    changes = feed(state, ":Bob!~b@h PRIVMSG alice :psst")
    window, entry = only_entry(changes)
    assert window.key == "bob"
    assert window.name == "Bob"
    assert window.kind == "query"
    assert entry.nick == "Bob"
    assert changes.windows
    assert changes.bell
    assert state.current == SERVER  # a new query does not steal focus


def test_echo_of_our_own_private_message_goes_to_the_target(state: ClientState) -> None:
    window, entry = only_entry(feed(state, ":alice!~a@host PRIVMSG bob :hi bob"))
    assert window.key == "bob"
    assert entry.own
    assert window.unread == 0


def test_own_message_is_shown_own_and_never_unread_or_mentioned(state: ClientState) -> None:
    changes = state.own_message("#chan", "alice: talking to myself", T0)
    window, entry = only_entry(changes)
    assert entry.own and entry.nick == ME and not entry.mention
    assert window.unread == 0
    assert not window.mentioned
    assert not changes.bell
    window, entry = only_entry(state.own_message("carol", "hi", T0, ACTION))
    assert window.kind == "query" and entry.kind == ACTION
    assert window.unread == 0


def test_ctcp_action(state: ClientState) -> None:
    window, entry = only_entry(feed(state, ":bob!~b@h PRIVMSG #chan :\x01ACTION waves\x01"))
    assert (window.key, entry.kind, entry.text, entry.nick) == ("#chan", ACTION, "waves", "bob")
    window, entry = only_entry(feed(state, ":bob!~b@h PRIVMSG alice :\x01ACTION hugs alice"))
    assert (window.key, entry.kind, entry.text) == ("bob", ACTION, "hugs alice")
    assert entry.mention


def test_other_ctcp_requests_are_not_shown(state: ClientState) -> None:
    assert feed(state, ":bob!~b@h PRIVMSG alice :\x01VERSION\x01").entries == []
    assert "bob" not in state.windows


def test_server_notices_go_to_the_server_window() -> None:
    state = ClientState(ME)
    changes = feed(
        state,
        ":irc.example.org NOTICE * :*** Looking up your hostname...",
        "NOTICE AUTH :*** Checking Ident",
        ":irc.example.org NOTICE alice :*** You are connected",
    )
    assert [(k, kind) for k, kind, _ in shown(changes)] == [(SERVER, NOTICE)] * 3
    assert list(state.windows) == [SERVER]


def test_notice_from_a_user_goes_to_their_query(state: ClientState) -> None:
    window, entry = only_entry(feed(state, ":NickServ!NickServ@services. NOTICE alice :Hi"))
    assert (window.key, window.kind, entry.kind) == ("nickserv", "query", NOTICE)


def test_short_privmsg_is_ignored(state: ClientState) -> None:
    assert feed(state, ":bob!~b@h PRIVMSG #chan").entries == []


# unread counts and mentions -----------------------------------------------------------------------


def test_unread_counts_only_for_windows_that_are_not_current(state: ClientState) -> None:
    state.select("#chan")
    changes = feed(state, ":bob!~b@h PRIVMSG #chan :seen")
    assert state.windows["#chan"].unread == 0
    assert not changes.windows
    state.select(SERVER)
    changes = feed(
        state,
        ":bob!~b@h PRIVMSG #chan :one",
        ":bob!~b@h NOTICE #chan :two",
        ":bob!~b@h PRIVMSG #chan :\x01ACTION three\x01",
    )
    assert changes.windows
    window = state.windows["#chan"]
    assert window.unread == 3
    assert not window.mentioned
    assert not changes.bell


def test_events_do_not_count_as_unread(state: ClientState) -> None:
    feed(
        state,
        ":eve!~e@h JOIN #chan",
        ":eve!~e@h PART #chan",
        ":bob!~b@h TOPIC #chan :t",
        ":alice!~a@host MODE #chan +v carol",
    )
    assert state.windows["#chan"].unread == 0


def test_own_messages_never_count(state: ClientState) -> None:
    feed(state, ":alice!~a@host PRIVMSG #chan :alice is me")
    window = state.windows["#chan"]
    assert (window.unread, window.mentioned) == (0, False)


def test_mention_marks_a_background_window_and_rings(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h PRIVMSG #chan :ALICE, look")
    assert changes.entries[0][1].mention
    assert changes.bell
    window = state.windows["#chan"]
    assert (window.unread, window.mentioned) == (1, True)


def test_mention_in_the_current_window_rings_but_is_not_unread(state: ClientState) -> None:
    state.select("#chan")
    changes = feed(state, ":bob!~b@h PRIVMSG #chan :alice: hi")
    assert changes.bell
    window = state.windows["#chan"]
    assert (window.unread, window.mentioned) == (0, False)


@pytest.mark.parametrize(
    ("text", "mention"),
    [
        ("alice: hi", True),
        ("hi alice", True),
        ("hey Alice!", True),
        ("(alice)", True),
        ("alice's idea", True),
        ("malice", False),
        ("alice_", False),
        ("alice2", False),
        ("[alice]", False),  # brackets are nick characters: [alice] is another nick
        ("alices", False),
        ("", False),
    ],
)
def test_mention_needs_the_whole_nick(state: ClientState, text: str, mention: bool) -> None:
    changes = feed(state, f":bob!~b@h PRIVMSG #chan :{text}")
    assert changes.entries[0][1].mention is mention


def test_query_message_marks_the_window(state: ClientState) -> None:
    feed(state, ":bob!~b@h PRIVMSG alice :one", ":bob!~b@h PRIVMSG alice :two")
    window = state.windows["bob"]
    assert (window.unread, window.mentioned) == (2, True)


def test_select_clears_unread_and_mention(state: ClientState) -> None:
    feed(state, ":bob!~b@h PRIVMSG #chan :alice: hi", ":bob!~b@h PRIVMSG alice :psst")
    state.select("#chan")
    assert state.current == "#chan"
    window = state.windows["#chan"]
    assert (window.unread, window.mentioned) == (0, False)
    assert state.windows["bob"].unread == 1
    state.select("#nowhere")
    assert state.current == "#chan"


def test_errors_count_but_info_does_not(state: ClientState) -> None:
    state.select(SERVER)
    state.info("help text", T0, key="#chan")
    assert state.windows["#chan"].unread == 0
    state.info("oops", T0, ERROR, key="#chan")
    assert state.windows["#chan"].unread == 1


def test_info_defaults_to_the_current_window(state: ClientState) -> None:
    state.select("#chan")
    assert shown(state.info("hello", T0)) == [("#chan", INFO, "hello")]
    assert shown(state.info("x", T0, key="#gone")) == [(SERVER, INFO, "x")]


# numerics -----------------------------------------------------------------------------------------


def test_error_numerics_go_to_the_current_window(state: ClientState) -> None:
    state.select("#chan")
    changes = feed(state, ":irc.example.org 482 alice #chan :You're not channel operator")
    assert shown(changes) == [("#chan", ERROR, "#chan You're not channel operator")]
    changes = feed(state, ":irc.example.org 433 alice bob :Nickname is already in use")
    assert shown(changes) == [("#chan", ERROR, "bob Nickname is already in use")]


def test_channel_numerics_go_to_the_channel(state: ClientState) -> None:
    changes = feed(state, ":irc.example.org 328 alice #chan :https://chan.example.org")
    assert shown(changes) == [("#chan", INFO, "#chan https://chan.example.org")]
    changes = feed(state, ":irc.example.org 328 alice #unknown :https://x.example")
    assert changes.entries[0][0].key == SERVER


def test_replies_to_our_requests_go_to_the_current_window(state: ClientState) -> None:
    state.select("#chan")
    changes = feed(
        state,
        ":irc.example.org 324 alice #chan +ntk key",
        ":irc.example.org 329 alice #chan 1700000000",
        ":irc.example.org 331 alice #chan :No topic is set",
    )
    assert [key for key, _, _ in shown(changes)] == ["#chan"] * 3
    state.select(SERVER)
    changes = feed(state, ":irc.example.org 331 alice #chan :No topic is set")
    assert shown(changes) == [(SERVER, INFO, "#chan No topic is set")]


def test_away_reply_goes_to_the_query(state: ClientState) -> None:
    feed(state, ":bob!~b@h PRIVMSG alice :hi")
    changes = feed(state, ":irc.example.org 301 alice bob :gone fishing")
    assert shown(changes) == [("bob", INFO, "bob is away: gone fishing")]


def test_nomotd_shows_only_its_text(state: ClientState) -> None:
    changes = feed(state, ":irc.example.org 422 alice :MOTD File is missing")
    assert shown(changes) == [(SERVER, INFO, "MOTD File is missing")]


def test_names_asked_for_is_shown(state: ClientState) -> None:
    state.names_requested.add("#chan")
    changes = feed(
        state,
        ":irc.example.org 353 alice = #Chan :@alice +bob carol",
        ":irc.example.org 353 alice = #Chan :Dave eve",
        ":irc.example.org 366 alice #Chan :End of /NAMES list.",
    )
    assert shown(changes) == [
        ("#chan", INFO, "users in #Chan: @alice +bob carol"),
        ("#chan", INFO, "users in #Chan: Dave eve"),
    ]
    assert "eve" in members(state, "#chan")
    assert state.names_requested == set()
    # the next NAMES reply (a rejoin, say) is not shown
    assert shown(feed(state, ":irc.example.org 353 alice = #chan :alice")) == []


def test_names_of_a_channel_we_are_not_in(state: ClientState) -> None:
    state.select("#chan")
    state.names_requested.add("#other")
    changes = feed(
        state,
        ":irc.example.org 353 alice = #other :@zed yan",
        ":irc.example.org 366 alice #other :End of /NAMES list.",
    )
    assert shown(changes) == [("#chan", INFO, "users in #other: @zed yan")]
    assert "#other" not in state.windows
    assert "zed" not in members(state, "#chan")


def test_names_for_a_parted_channel_do_not_refill_it(state: ClientState) -> None:
    feed(state, ":alice!~a@host PART #chan")
    feed(state, ":irc.example.org 353 alice = #chan :@bob carol")
    feed(state, ":irc.example.org 366 alice #chan :End of /NAMES list")
    assert state.windows["#chan"].members == {}


def test_who_replies_asked_for_by_the_user_are_shown(state: ClientState) -> None:
    changes = feed(
        state, ":irc.example.org 352 alice #chan ~b h.example irc.example.org bob G :0 Bob B"
    )
    assert shown(changes) == [("#chan", INFO, "#chan ~b h.example irc.example.org bob G 0 Bob B")]


def test_quiet_who_ends_with_315(state: ClientState) -> None:
    state.quiet_who.add("#chan")
    assert shown(feed(state, ":irc.example.org 315 alice #chan :End of WHO list")) == []
    assert state.quiet_who == set()


def test_who_reply_marks_away_members(state: ClientState) -> None:
    state.quiet_who.add("#chan")
    changes = feed(
        state,
        ":irc.example.org 352 alice #chan ~b h.example irc.example.org bob G :0 Bob B",
        ":irc.example.org 352 alice #chan ~c h.example irc.example.org carol H@ :0 Carol C",
        ":irc.example.org 315 alice #chan :End of WHO list",
    )
    assert changes.entries == []
    assert state.windows["#chan"].members["bob"].away
    assert not state.windows["#chan"].members["carol"].away


# other commands -----------------------------------------------------------------------------------


def test_invite_is_a_mention_in_the_current_window(state: ClientState) -> None:
    changes = feed(state, ":bob!~b@h INVITE alice :#secret")
    window, entry = only_entry(changes)
    assert window.key == SERVER
    assert entry.text == "bob invites you to #secret (/join #secret)"
    assert entry.mention
    assert changes.bell


def test_error_line_is_an_error_in_the_server_window(state: ClientState) -> None:
    state.select("#chan")
    changes = feed(state, "ERROR :Closing Link: host (Quit: bye)")
    assert shown(changes) == [(SERVER, ERROR, "Closing Link: host (Quit: bye)")]
    assert state.windows[SERVER].unread == 1


# windows: close, step, disconnect -----------------------------------------------------------------


@pytest.fixture
def four() -> ClientState:
    """Windows in order: server, #a, bob, #c."""
    state = ClientState(ME)
    join(state, "#a", "alice")
    feed(state, ":bob!~b@h PRIVMSG alice :hi")
    join(state, "#c", "alice")
    assert list(state.windows) == [SERVER, "#a", "bob", "#c"]
    return state


def test_close_current_selects_the_next_window(four: ClientState) -> None:
    four.select("#a")
    closed = four.close("#a")
    assert closed is not None and closed.name == "#a"
    assert four.current == "bob"
    assert list(four.windows) == [SERVER, "bob", "#c"]


def test_close_the_last_window_selects_the_one_before(four: ClientState) -> None:
    four.select("#c")
    four.close("#c")
    assert four.current == "bob"
    four.close("bob")
    four.close("#a")
    assert four.current == SERVER


def test_close_another_window_keeps_the_current_one(four: ClientState) -> None:
    four.select("#c")
    four.close("#a")
    assert four.current == "#c"


def test_the_server_window_and_unknown_windows_cannot_be_closed(four: ClientState) -> None:
    assert four.close(SERVER) is None
    assert four.close("#nowhere") is None
    assert list(four.windows) == [SERVER, "#a", "bob", "#c"]


def test_step_wraps_both_ways(four: ClientState) -> None:
    assert four.step(1) == "#a"
    assert four.step(-1) == "#c"
    assert four.step(4) == SERVER
    four.select("#c")
    assert four.step(1) == SERVER
    assert four.step(-2) == "#a"


def test_window_lookup(four: ClientState) -> None:
    assert four.window("#A") is four.windows["#a"]
    assert four.window("BOB") is four.windows["bob"]
    assert four.window(SERVER) is four.windows[SERVER]
    assert four.window("#nope") is None


def test_disconnected_returns_channels_to_rejoin_and_forgets_members(state: ClientState) -> None:
    join(state, "#other", "alice bob")
    join(state, "#left", "alice")
    feed(state, ":alice!~a@host PART #left")
    feed(state, ":bob!~b@h PRIVMSG alice :hi")
    assert state.disconnected() == ["#chan", "#other"]
    for window in state.windows.values():
        assert window.members == {}
        assert not window.joined
    assert list(state.windows) == [SERVER, "#chan", "#other", "#left", "bob"]
    assert state.disconnected() == []


def test_casefolding_is_rfc1459(state: ClientState) -> None:
    feed(state, ":[bob]!~b@h PRIVMSG alice :hi")
    feed(state, ":{BOB}!~b@h PRIVMSG alice :again")
    assert state.windows["{bob}"].unread == 2
    assert state.windows["{bob}"].name == "[bob]"


# robustness ---------------------------------------------------------------------------------------

_COMMANDS = ["PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "QUIT", "NICK", "TOPIC", "MODE"]
_COMMANDS += ["ERROR", "INVITE", "001", "005", "301", "331", "332", "352", "353", "366", "433"]
_PARAMS = st.sampled_from(["#chan", "alice", "bob", "+o", "-v+k", "=", "@bob +x", "", "\x01"])


@settings(max_examples=150, deadline=None)
@given(
    source=st.sampled_from([None, "irc.example.org", "bob!~b@h", "alice!~a@host", "bob"]),
    command=st.sampled_from(_COMMANDS),
    params=st.lists(_PARAMS | st.text(max_size=8), max_size=5),
)
def test_any_line_is_survived(source: str | None, command: str, params: list[str]) -> None:
    from tuichat.net.protocol import Line

    state = ClientState(ME)
    join(state, "#chan", "@alice +bob")
    state.feed(Line(command, tuple(params), source), T0)
    assert state.current in state.windows
    assert SERVER in state.windows
