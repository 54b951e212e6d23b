"""History and IRCv3 seen from the app (issue 4): the backlog on join with the server's times,
exactly the missed messages fetched after a reconnect, own messages pending until echoed, the
typing indicator; and a server without history, where none of it shows.

The server here keeps history in a SQLite file (`db_path`) and runs on its own clock, 06:30,
distinct from the app's 08:00: a time shown as 06:30 came from the server (server-time).

Restarts: a test stops the server, waits until the app knows, then (`restart`) starts a new one on
the same port and file, brings alice back and has her talk, all without awaiting. Until the test
awaits, the app's event loop does not run: its connection thread may register meanwhile, but its
JOIN and CHATHISTORY come from the event loop, so they reach the server after what alice said.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from tuichat import app as app_module
from tuichat import session as session_module
from tuichat.app import TuichatApp
from tuichat.net.protocol import Line
from tuichat.server import Server
from tuichat.state import Config

from .helpers import (
    NOW,
    SIZE,
    InChat,
    RawUser,
    Servers,
    client_config,
    fixed_clock,
    log_entries,
    log_lines,
    screen_state,
    status_text,
    submit,
    wait_for,
    wait_for_joined,
    wait_for_log,
)

pytestmark = pytest.mark.timeout(30)

SERVER_NOW = NOW - 90 * 60  # 06:30 UTC: the server's clock, not the app's
FROM_ME = r"^(@\S+ )?:me!\S+ "  # a line from the app, tagged or not


class ServerClock:
    """A fixed clock that a test can move on."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server_clock() -> ServerClock:
    return ServerClock(SERVER_NOW)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "h.db"


# alice says a dozen lines at once here: no flood control (fakelag) to wait on
QUICK: dict[str, Any] = {"flood_rate": 0.0}


@pytest.fixture
def server(servers: Servers, db_path: Path, server_clock: ServerClock) -> Server:
    """This module's server (conftest's `user` and `make_app` use it): history in `db_path`."""
    return servers.start(db=db_path, clock=server_clock, **QUICK)


@pytest.fixture
def restart(
    servers: Servers,
    server: Server,
    db_path: Path,
    server_clock: ServerClock,
    user: Callable[..., RawUser],
) -> Callable[..., RawUser]:
    """`restart(*texts, **settings)`: after `server.stop()`, a new server on its port with the
    same file (and `settings`); alice back in #chat first, saying `texts` there; returns once
    they are stored."""

    def again(*texts: str, **settings: Any) -> RawUser:
        servers.start(server.port, db=db_path, clock=server_clock, **{**QUICK, **settings})
        alice = user("alice", "#chat", port=server.port)
        for text in texts:
            alice.send(f"PRIVMSG #chat :{text}")
        alice.sync()
        return alice

    return again


# -- reading the app ------------------------------------------------------------------------------


def said(app: TuichatApp, nick: str) -> list[str]:
    """The current window's messages from `nick`, as shown: `'06:30 <alice> hi'`."""
    return [entry for entry in log_entries(app) if entry[6:].startswith(f"<{nick}> ")]


def dividers(app: TuichatApp) -> list[str]:
    """The divider lines of the current window (`──── end of backlog ────`), their text only."""
    return [line.strip("─ ") for line in log_lines(app) if line.startswith("─")]


def index_of(app: TuichatApp, text: str) -> int:
    """Where the first entry containing `text` is in the current window's log."""
    entries = log_entries(app)
    found = [i for i, entry in enumerate(entries) if text in entry]
    assert found, f"{text!r} not in the log:\n" + "\n".join(entries)
    return found[0]


def fetched(count: int) -> str:
    """The divider after a reconnect (the app's clock is fixed, so it is 08:00 to 08:00)."""
    return f"disconnected 08:00\N{EN DASH}08:00, {count} message{'s' if count != 1 else ''} fetched"


def record_sent(
    app: TuichatApp,
    monkeypatch: pytest.MonkeyPatch,
    before: Callable[[str], None] | None = None,
) -> list[str]:
    """Every line the app sends from now on (a `Line` in its plain form: no needless `:`);
    `before(text)` runs before each goes out, on the sending thread."""
    sent: list[str] = []
    real_send = app.client.send

    def send(line: Line | str) -> bool:
        text = line.format() if isinstance(line, Line) else line
        if before is not None:
            before(text)
        sent.append(text)
        return real_send(line)

    monkeypatch.setattr(app.client, "send", send)
    return sent


def requests(sent: list[str]) -> list[str]:
    """The CHATHISTORY requests among `sent`, msgids blanked: `'AFTER #chat msgid=* 100'`."""
    found = []
    for line in sent:
        if line.startswith("CHATHISTORY "):
            words = line.split(" ")[1:]
            found.append(" ".join("msgid=*" if w.startswith("msgid=") else w for w in words))
    return found


async def crash(pilot: Pilot[Any], server: Server) -> None:
    """Stop the server; wait until the app says it is disconnected."""
    app = pilot.app
    assert isinstance(app, TuichatApp)
    server.stop()
    await wait_for(
        pilot,
        lambda: "disconnected" in status_text(app),
        what="the status line to say we are disconnected",
        show=lambda: screen_state(app),
    )


async def wait_for_divider(pilot: Pilot[Any]) -> list[str]:
    app = pilot.app
    assert isinstance(app, TuichatApp)
    return await wait_for(
        pilot, lambda: dividers(app), what="a divider", show=lambda: screen_state(app)
    )


# -- (1) backlog on join --------------------------------------------------------------------------


async def test_backlog_on_join_shows_the_server_times_once_then_a_divider(
    make_app: Callable[..., TuichatApp],
    user: Callable[..., RawUser],
    server_clock: ServerClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = user("alice", "#chat")
    for n in range(1, 4):
        alice.send(f"PRIVMSG #chat :backlog {n}")
    alice.sync()
    server_clock.now += 45 * 60  # the server says it is 07:15 when the app arrives

    app = make_app(channels=["#chat"])
    sent = record_sent(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        assert await wait_for_divider(pilot) == ["end of backlog"]
        # stored at 06:30, fetched at 07:15 (the join), shown by an app whose clock says 08:00
        backlog = ["06:30 <alice> backlog 1", "06:30 <alice> backlog 2", "06:30 <alice> backlog 3"]
        assert said(app, "alice") == backlog
        assert index_of(app, "07:15 -- me (") < index_of(app, "backlog 1")
        lines = log_lines(app)
        last = max(i for i, line in enumerate(lines) if "backlog 3" in line)
        assert "end of backlog" in lines[last + 1]
        assert requests(sent) == ["LATEST #chat * 50"]

        # what is said now comes below the divider, once, with the server's time
        alice.send("PRIVMSG #chat :live now")
        await wait_for_log(pilot, "07:15 <alice> live now")
        assert said(app, "alice") == [*backlog, "07:15 <alice> live now"]
        assert index_of(app, "live now") > index_of(app, "end of backlog")
        assert dividers(app) == ["end of backlog"]


async def test_an_empty_backlog_shows_no_divider(
    make_app: Callable[..., TuichatApp],
    user: Callable[..., RawUser],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice = user("alice", "#chat")
    app = make_app(channels=["#chat"])
    sent = record_sent(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        await wait_for(pilot, lambda: requests(sent), what="the backlog to be asked for")
        # the server answers in order: the topic comes after the (empty) backlog
        await submit(pilot, "/topic")
        await wait_for_log(pilot, "No topic is set")
        alice.send("PRIVMSG #chat :first words")
        await wait_for_log(pilot, "06:30 <alice> first words")
        assert dividers(app) == []


# -- (2) reconnect: exactly the gap ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("missed", "page"),
    [(3, 100), (12, 5), (10, 5)],
    ids=["one-page", "three-pages", "whole-pages"],
)
async def test_reconnect_fetches_exactly_the_missed_messages(
    monkeypatch: pytest.MonkeyPatch,
    server: Server,
    restart: Callable[..., RawUser],
    make_app: Callable[..., TuichatApp],
    user: Callable[..., RawUser],
    missed: int,
    page: int,
) -> None:
    monkeypatch.setattr(session_module, "HISTORY_PAGE", page)
    alice = user("alice", "#chat")
    app = make_app(channels=["#chat"])
    sent = record_sent(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        alice.send("PRIVMSG #chat :before the crash")
        await wait_for_log(pilot, "06:30 <alice> before the crash")

        await crash(pilot, server)
        alice = restart(*[f"missed {n}" for n in range(1, missed + 1)])

        await wait_for_log(pilot, fetched(missed), timeout=10)
        assert said(app, "alice") == [
            "06:30 <alice> before the crash",
            *[f"06:30 <alice> missed {n}" for n in range(1, missed + 1)],
        ]
        assert index_of(app, fetched(missed)) > index_of(app, f"missed {missed}")
        assert dividers(app) == [fetched(missed)]
        # page after page (a short page ends it), each after the last one fetched
        pages = missed // page + 1
        assert requests(sent) == ["LATEST #chat * 50"] + [f"AFTER #chat msgid=* {page}"] * pages

        # and the conversation goes on, nothing twice
        alice.send("PRIVMSG #chat :after the gap")
        await wait_for_log(pilot, "06:30 <alice> after the gap")
        assert len(said(app, "alice")) == missed + 2


class TalkDuringFetch:
    """`before` hook for `record_sent`: just before the app's first CHATHISTORY AFTER goes out,
    alice (once `self.alice` is set) says `text` and the server has handled it. The app's event
    loop is the one sending, so the app handles the line only after the request is gone; the
    line reaches it before the history does."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.alice: RawUser | None = None
        self.done = False

    def __call__(self, line: str) -> None:
        if line.startswith("CHATHISTORY AFTER") and self.alice is not None and not self.done:
            self.done = True
            self.alice.send(f"PRIVMSG #chat :{self.text}")
            self.alice.sync()


async def test_a_line_said_during_the_fetch_is_shown_once_and_not_counted_as_missed(
    monkeypatch: pytest.MonkeyPatch,
    server: Server,
    restart: Callable[..., RawUser],
    make_app: Callable[..., TuichatApp],
    user: Callable[..., RawUser],
) -> None:
    alice = user("alice", "#chat")
    app = make_app(channels=["#chat"])
    talk = TalkDuringFetch("live, during the fetch")
    record_sent(app, monkeypatch, before=talk)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        alice.send("PRIVMSG #chat :before the crash")
        await wait_for_log(pilot, "06:30 <alice> before the crash")

        await crash(pilot, server)
        talk.alice = restart("missed 1", "missed 2", "missed 3")
        await wait_for_divider(pilot)
        assert talk.done
        assert sorted(said(app, "alice")) == [
            "06:30 <alice> before the crash",
            "06:30 <alice> live, during the fetch",
            "06:30 <alice> missed 1",
            "06:30 <alice> missed 2",
            "06:30 <alice> missed 3",
        ]
        assert dividers(app) == [fetched(3)]


async def test_a_line_said_during_a_paged_fetch_leaves_no_gap(
    monkeypatch: pytest.MonkeyPatch,
    server: Server,
    server_clock: ServerClock,
    restart: Callable[..., RawUser],
    make_app: Callable[..., TuichatApp],
    user: Callable[..., RawUser],
) -> None:
    monkeypatch.setattr(session_module, "HISTORY_PAGE", 5)
    alice = user("alice", "#chat")
    app = make_app(channels=["#chat"])
    talk = TalkDuringFetch("live, during the fetch")
    record_sent(app, monkeypatch, before=talk)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        alice.send("PRIVMSG #chat :before the crash")
        await wait_for_log(pilot, "06:30 <alice> before the crash")

        await crash(pilot, server)
        talk.alice = restart(*[f"missed {n:02}" for n in range(1, 13)])
        server_clock.now += 15 * 60  # alice's live line is said at 06:45
        await wait_for_divider(pilot)
        assert talk.done
        assert "06:45 <alice> live, during the fetch" in said(app, "alice")
        assert sorted(said(app, "alice"))[1:13] == [
            f"06:30 <alice> missed {n:02}" for n in range(1, 13)
        ]
        assert dividers(app) == [fetched(12)]


async def test_reconnect_pages_within_the_servers_history_limit(
    server: Server,
    restart: Callable[..., RawUser],
    in_chat: InChat,
    user: Callable[..., RawUser],
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        alice.send("PRIVMSG #chat :before the crash")
        await wait_for_log(pilot, "06:30 <alice> before the crash")

        await crash(pilot, server)
        restart(*[f"missed {n}" for n in range(1, 13)], state=Config(chathistory_max=5))
        await wait_for_divider(pilot)
        assert said(app, "alice")[1:] == [f"06:30 <alice> missed {n}" for n in range(1, 13)]
        assert dividers(app) == [fetched(12)]


async def test_reconnect_after_a_quiet_channel_still_says_what_was_missed(
    server: Server,
    restart: Callable[..., RawUser],
    in_chat: InChat,
    user: Callable[..., RawUser],
) -> None:
    user("alice", "#chat")
    async with in_chat() as (app, pilot):
        await crash(pilot, server)
        restart("said while you were away", "and again")

        await wait_for_divider(pilot)
        assert said(app, "alice") == [
            "06:30 <alice> said while you were away",
            "06:30 <alice> and again",
        ]
        assert dividers(app) == [fetched(2)]


async def test_part_and_join_again_fetches_the_gap_without_calling_it_a_disconnect(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        alice.send("PRIVMSG #chat :one")
        await wait_for_log(pilot, "06:30 <alice> one")
        await submit(pilot, "/part")
        await alice.expect(pilot, FROM_ME + "PART #chat")
        alice.send("PRIVMSG #chat :two")
        alice.sync()
        await submit(pilot, "/join #chat")
        await wait_for_joined(pilot, "#chat")

        await wait_for_divider(pilot)
        assert said(app, "alice") == ["06:30 <alice> one", "06:30 <alice> two"]
        assert not [text for text in dividers(app) if "disconnected" in text], dividers(app)


class SlowReaderApp(TuichatApp):
    """The app, with a connection thread that, once `hold` is set, stops reading after it has
    written the first `hold_after` line the app sends (the app rejoins, and sends what was
    typed) until `release` is set: whatever the server answers meanwhile then comes in one
    `recv()`, as it may on a loaded machine or a slow network. (The thread writes what the app
    queues, so it is held after writing, in the step that writes.)"""

    CSS_PATH = str(Path(app_module.__file__).parent / "styles.tcss")  # not next to this file

    def __init__(self, port: int) -> None:
        super().__init__(
            client_config(port), channels=["#chat"], clock=fixed_clock, server_label="test-server"
        )
        self.hold = threading.Event()
        self.release = threading.Event()
        self.hold_after = "JOIN"
        queued = threading.Event()
        send, flush = self.client.send, self.client._flush

        def send_noting(line: Line | str) -> bool:
            sent = send(line)
            if self.hold.is_set() and isinstance(line, Line) and line.command == self.hold_after:
                queued.set()
            return sent

        def flush_then_hold(raw: Any, out: bytearray, session: Any) -> None:
            written = queued.is_set()  # queued before this step: it goes in it
            flush(raw, out, session)
            if written and not out and self.hold.is_set():
                self.hold.clear()
                self.release.wait(5)

        self.client.send = send_noting  # type: ignore[method-assign]
        self.client._flush = flush_then_hold  # type: ignore[method-assign]


@pytest.mark.parametrize("with_the_join", ["our line typed while down", "alice's next line"])
async def test_a_line_in_the_same_read_as_our_join_leaves_no_gap(
    server: Server,
    restart: Callable[..., RawUser],
    user: Callable[..., RawUser],
    with_the_join: str,
) -> None:
    alice = user("alice", "#chat")
    app = SlowReaderApp(server.port)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        alice.send("PRIVMSG #chat :before the crash")
        await wait_for_log(pilot, "06:30 <alice> before the crash")
        await crash(pilot, server)
        if with_the_join == "our line typed while down":
            await submit(pilot, "typed while down")
            app.hold_after = "PRIVMSG"  # sent after the JOIN

        app.hold.set()
        alice = restart("missed 1", "missed 2")
        # the app rejoins (and sends what was typed); its connection thread reads none of it yet
        await alice.expect(pilot, FROM_ME + "JOIN :?#chat$", timeout=10)
        if with_the_join == "our line typed while down":
            await alice.expect(pilot, FROM_ME + "PRIVMSG #chat :typed while down$")
        else:
            alice.send("PRIVMSG #chat :just after your join")
            alice.sync()
        app.release.set()

        await wait_for_divider(pilot)
        expected = [
            "06:30 <alice> before the crash",
            "06:30 <alice> missed 1",
            "06:30 <alice> missed 2",
        ]
        if with_the_join == "alice's next line":
            expected.append("06:30 <alice> just after your join")  # shown before what was missed
        assert sorted(said(app, "alice")) == sorted(expected)
        assert dividers(app) == [fetched(2)]


# -- (3) own messages: pending, delivered, not sent -----------------------------------------------


async def test_own_message_is_sending_until_the_echo_then_delivered_once(
    server: Server, in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        assert {"echo-message", "labeled-response"} <= app.caps

        # while the server holds its state lock it cannot handle (nor echo) what we send
        with server.lock:
            await submit(pilot, "hello there")
            await wait_for_log(pilot, "08:00 <me> hello there  [sending]")
        await alice.expect(pilot, FROM_ME + r"PRIVMSG #chat :hello there$")
        # delivered: the mark goes, and the time becomes the server's
        await wait_for(
            pilot,
            lambda: said(app, "me") == ["06:30 <me> hello there"],
            what="the message delivered, once",
            show=lambda: screen_state(app),
        )


async def test_message_typed_while_disconnected_is_delivered_once_after_reconnect(
    server: Server,
    restart: Callable[..., RawUser],
    in_chat: InChat,
    user: Callable[..., RawUser],
) -> None:
    alice = user("alice", "#chat")
    async with in_chat() as (app, pilot):
        alice.send("PRIVMSG #chat :before")
        await wait_for_log(pilot, "06:30 <alice> before")
        await crash(pilot, server)

        await submit(pilot, "typed while down")
        not_yet = "[not sent yet: will be sent on reconnect]"
        await wait_for_log(pilot, f"08:00 <me> typed while down  {not_yet}")
        assert said(app, "me") == [f"08:00 <me> typed while down  {not_yet}"]

        alice = restart()
        await alice.expect(pilot, FROM_ME + r"PRIVMSG #chat :typed while down$", timeout=10)
        await wait_for(
            pilot,
            lambda: said(app, "me") == ["06:30 <me> typed while down"],
            what="the message delivered, once",
            show=lambda: screen_state(app),
        )
        # the history fetched after the reconnect holds it too: it is not shown again
        await wait_for_divider(pilot)
        assert said(app, "me") == ["06:30 <me> typed while down"]
        assert said(app, "alice") == ["06:30 <alice> before"]


async def test_message_to_a_moderated_channel_is_marked_not_sent(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")  # first in: operator
    async with in_chat() as (app, pilot):
        alice.send("MODE #chat +m")
        await wait_for_log(pilot, "alice sets mode +m")

        await submit(pilot, "can anyone hear me")
        await wait_for_log(pilot, "!! #chat Cannot send to channel (+m)")
        assert said(app, "me") == [
            "08:00 <me> can anyone hear me  [not sent: Cannot send to channel (+m)]"
        ]
        alice.sync()
        assert not [line for line in alice.lines if "can anyone hear me" in line]


async def test_message_to_a_channel_we_are_not_in_is_marked_not_sent(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    user("alice", "#chat", "#secret")  # channels are +n: no messages from outside
    async with in_chat() as (app, pilot):
        await submit(pilot, "/msg #secret let me in")
        await wait_for_log(pilot, "!! #secret Cannot send to channel (no external messages)")
        await pilot.press("alt+3")
        refused = "[not sent: Cannot send to channel (no external messages)]"
        await wait_for(
            pilot,
            lambda: said(app, "me") == [f"08:00 <me> let me in  {refused}"],
            what="the message marked not sent in #secret's window",
            show=lambda: screen_state(app),
        )


async def test_private_message_to_an_away_user_is_delivered_once(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    """The echo comes with RPL_AWAY: two lines, so the labelled answer is a batch."""
    alice = user("alice", "#chat")
    alice.send("AWAY :at lunch")
    alice.sync()
    async with in_chat() as (app, pilot):
        await submit(pilot, "/query alice are you there")
        await alice.expect(pilot, FROM_ME + r"PRIVMSG alice :are you there$")
        await wait_for_log(pilot, "alice is away: at lunch")  # in the same answer as the echo
        assert said(app, "me") == ["06:30 <me> are you there"]


# -- (4) typing -----------------------------------------------------------------------------------


async def test_typing_from_others_shows_in_the_status_line_until_done(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    alice.request_caps("message-tags")
    async with in_chat() as (app, pilot):
        assert "typing" not in status_text(app)

        alice.send("@+typing=active TAGMSG #chat")
        await wait_for(
            pilot,
            lambda: status_text(app).endswith("  alice is typing…"),
            what="alice typing in the status line",
            show=lambda: status_text(app),
        )
        alice.send("@+typing=done TAGMSG #chat")
        await wait_for(
            pilot,
            lambda: "typing" not in status_text(app),
            what="the typing indicator to go",
            show=lambda: status_text(app),
        )


async def test_a_message_from_a_typer_ends_the_typing_indicator(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    alice.request_caps("message-tags")
    async with in_chat() as (app, pilot):
        alice.send("@+typing=active TAGMSG #chat")
        await wait_for(pilot, lambda: "alice is typing…" in status_text(app))
        alice.send("PRIVMSG #chat :there")
        await wait_for_log(pilot, "<alice> there")
        assert "typing" not in status_text(app)


def typing_and_messages(raw: RawUser) -> list[str]:
    """What `raw` received from the app: `typing=active` for a TAGMSG, `PRIVMSG`."""
    kinds = []
    for line in raw.lines:
        tags, _, rest = line.partition(" ") if line.startswith("@") else ("", "", line)
        if not rest.startswith(":me!"):
            continue
        command = rest.split(" ")[1]
        if command == "TAGMSG":
            typing = [tag for tag in tags[1:].split(";") if tag.startswith("+typing=")]
            kinds.append(typing[0][1:] if typing else "TAGMSG")
        elif command == "PRIVMSG":
            kinds.append(command)
    return kinds


async def test_typing_is_sent_once_while_typing_and_done_after_sending(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    alice = user("alice", "#chat")
    alice.request_caps("message-tags")
    async with in_chat() as (_app, pilot):
        await pilot.press(*"hi alice")  # eight changes of the input line
        await alice.expect(pilot, FROM_ME + "TAGMSG #chat$")
        await pilot.press("enter")
        await alice.expect(pilot, FROM_ME + "PRIVMSG #chat :hi alice$")
        await alice.expect(pilot, FROM_ME + "TAGMSG #chat$")
        alice.sync()
        assert typing_and_messages(alice) == ["typing=active", "PRIVMSG", "typing=done"]


# -- (5) a server without history -----------------------------------------------------------------


async def test_without_history_no_chathistory_and_no_dividers(
    servers: Servers, raw_users: Callable[..., RawUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = servers.start(**QUICK)  # no db
    port = plain.port
    alice = raw_users(port, "alice", "#chat")
    alice.send("PRIVMSG #chat :said before you came")
    alice.sync()
    app = TuichatApp(
        client_config(port), channels=["#chat"], clock=fixed_clock, server_label="test-server"
    )
    sent = record_sent(app, monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        assert "echo-message" in app.caps
        assert not app.caps & {"chathistory", "draft/chathistory"}
        with plain.lock:
            await submit(pilot, "no history here")
            await wait_for_log(pilot, "08:00 <me> no history here  [sending]")
        await alice.expect(pilot, FROM_ME + r"PRIVMSG #chat :no history here$")
        await wait_for(pilot, lambda: said(app, "me") == ["08:00 <me> no history here"])
        alice.send("PRIVMSG #chat :hello")
        await wait_for_log(pilot, "08:00 <alice> hello")

        await crash(pilot, plain)
        servers.start(port, **QUICK)
        alice = raw_users(port, "alice", "#chat")
        alice.send("PRIVMSG #chat :missed, and lost")
        alice.sync()
        await alice.expect(pilot, FROM_ME + "JOIN :?#chat$", timeout=10)
        await wait_for_joined(pilot, "#chat")
        alice.send("PRIVMSG #chat :welcome back")
        await wait_for_log(pilot, "08:00 <alice> welcome back")

        assert said(app, "alice") == ["08:00 <alice> hello", "08:00 <alice> welcome back"]
        assert dividers(app) == []
        assert [line for line in sent if line.startswith("JOIN ")] == ["JOIN #chat"] * 2
        assert requests(sent) == []
