"""Nick and channel names are user text too: markup in them ([bold], [@click=app.quit]) shows
literally, and control characters never reach the terminal, in the window list, the member list,
the topic line and the log of another user's client.

tuichat's server refuses control characters in nicks and channel names, so those come from a
deliberately hostile fake server (any server on the network could send them)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widget import Widget

from tuichat.app import TuichatApp

from .helpers import (
    HOST,
    SIZE,
    InChat,
    RawUser,
    client_config,
    fixed_clock,
    log_text,
    member_labels,
    screen_state,
    submit,
    topic_text,
    wait_for,
    wait_for_joined,
    wait_for_log,
    window_labels,
)

CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def rendered(widget: Widget) -> list[Strip]:
    """The widget as drawn on screen (border and border title included)."""
    width, height = widget.outer_size
    return widget.render_lines(Region(0, 0, width, height))


def shows(widget: Widget, text: str) -> bool:
    """Whether the widget draws `text`, perhaps wrapped over several lines (the lists are
    narrow): compared without the border and whitespace."""
    drawn = "".join(strip.text for strip in rendered(widget))
    return "".join(text.split()) in re.sub(r"[\s│╭╮╰╯─]", "", drawn)


async def wait_for_drawn(pilot: Pilot[Any], widget: Widget, text: str) -> None:
    """Wait until the widget has drawn `text` (it redraws on the next refresh, not at once)."""
    await wait_for(
        pilot,
        lambda: shows(widget, text),
        what=f"{text!r} drawn in {widget!r}",
        show=lambda: "\n".join(strip.text for strip in rendered(widget)),
    )


def assert_inert(app: TuichatApp) -> None:
    """What the window list, member list and log draw holds no control character, no link and
    no action (`@click` in a style's meta)."""
    for selector in ("#window-list", "#member-list", "#topic", "#logs"):
        for widget in app.query(selector):
            strips = rendered(widget)
            for strip in strips:
                assert not CONTROLS.search(strip.text), f"{selector}: {strip.text!r}"
                for segment in strip:
                    style = segment.style
                    if style is not None:
                        assert not style.link, f"{selector}: a link in {strip.text!r}"
                        assert "@click" not in style.meta, f"{selector}: {strip.text!r}"


# -- through tuichat's own server: markup in names ------------------------------------------------

EVE = "[bold]eve[i]"  # a valid nick: [ ] are among RFC 2812's special characters
CHANNEL = "#[@click=app.quit]x[/]"
BIDI_CHANNEL = "#\u202eevil"  # a right-to-left override: the server refuses it (a look-alike)


async def test_markup_in_nicks_and_channels_shows_literally_everywhere(
    in_chat: InChat, user: Callable[..., RawUser]
) -> None:
    eve = user(EVE, "#chat", CHANNEL)
    async with in_chat() as (app, pilot):
        await wait_for(
            pilot,
            lambda: f"@{EVE}" in member_labels(app),
            what="eve in the member list",
            show=lambda: screen_state(app),
        )
        await wait_for_drawn(pilot, app.query_one("#member-list"), EVE)

        # a private message opens a window named after the nick
        eve.send("PRIVMSG me :psst [@click=app.quit]")
        await wait_for(
            pilot,
            lambda: any(label.startswith(f"3 {EVE}") for label in window_labels(app)),
            what="eve's query window",
            show=lambda: screen_state(app),
        )
        await wait_for_drawn(pilot, app.query_one("#window-list"), f"3 {EVE}")

        # an invitation names the channel
        eve.send(f"INVITE me {CHANNEL}")
        await wait_for_log(pilot, CHANNEL)
        assert EVE in log_text(app)

        await submit(pilot, f"/join {CHANNEL}")
        await wait_for_joined(pilot, CHANNEL)
        assert topic_text(app).startswith(f"{CHANNEL}  ")
        assert f"@{EVE}" in member_labels(app)
        assert any(label.startswith(f"4 {CHANNEL}") for label in window_labels(app))
        eve.send(f"PRIVMSG {CHANNEL} :[red]hi[/red]")
        await wait_for_log(pilot, f"08:00 <{EVE}> [red]hi[/red]")
        await wait_for_drawn(pilot, app.query_one("#window-list"), CHANNEL)
        await wait_for_drawn(pilot, app.query_one("#member-list"), EVE)
        assert_inert(app)

        # a channel name with a bidirectional override would look like "#evil": refused
        await submit(pilot, f"/join {BIDI_CHANNEL}")
        await wait_for_log(pilot, "No such channel")
        assert not any("evil" in label for label in window_labels(app))
        assert_inert(app)

        # nick changes are shown literally too
        eve.send("NICK [blink]eve")
        await wait_for_log(pilot, f"{EVE} is now known as [blink]eve")
        await wait_for(
            pilot,
            lambda: "@[blink]eve" in member_labels(app),
            what="the new nick in the member list",
            show=lambda: screen_state(app),
        )
        await wait_for_drawn(pilot, app.query_one("#member-list"), "@[blink]eve")
        assert_inert(app)
        assert app.is_running


# -- through a hostile server: control characters in names ----------------------------------------


class HostileServer:
    """A fake IRC server for one client: it registers the client and then says whatever the test
    tells it to (`send`); `expect` waits for a line from the client."""

    def __init__(self) -> None:
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.lines: list[str] = []
        self._pos = 0
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="hostile-server", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with self._cond:
            self.conn = conn
            self._cond.notify_all()
        partial = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                return
            *lines, partial = (partial + data).split(b"\r\n")
            with self._cond:
                self.lines.extend(line.decode("utf-8", "replace") for line in lines)
                self._cond.notify_all()

    def send(self, *lines: str) -> None:
        assert self.conn is not None
        self.conn.sendall("".join(f"{line}\r\n" for line in lines).encode())

    def _find(self, regex: re.Pattern[str]) -> re.Match[str] | None:
        with self._cond:
            for index in range(self._pos, len(self.lines)):
                match = regex.search(self.lines[index])
                if match:
                    self._pos = index + 1
                    return match
        return None

    async def expect(self, pilot: Pilot[Any], pattern: str) -> re.Match[str]:
        regex = re.compile(pattern)
        return await wait_for(
            pilot,
            lambda: self._find(regex),
            what=f"the client to send {pattern!r}",
            show=lambda: "\n".join(self.lines[-10:]),
        )

    def close(self) -> None:
        self.listener.close()
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
            self.conn.close()
        self._thread.join(2)


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


EVIL = "e\x1b[2Jv\x07il"  # a nick that would clear the screen and ring the bell
DARK = "#\x1b]0;pwned\x07dark\x1b[8m"  # a channel that would retitle the terminal, hide text


async def test_control_characters_in_names_never_reach_the_screen(
    hostile: HostileServer,
) -> None:
    app = TuichatApp(
        client_config(hostile.port), channels=["#chat"], clock=fixed_clock, server_label="hostile"
    )
    async with app.run_test(size=SIZE) as pilot:
        await hostile.expect(pilot, r"^USER ")
        hostile.send(
            ":irc.test 001 me :Welcome",
            ":irc.test 005 me CHANTYPES=# PREFIX=(ov)@+ :are supported",
            ":irc.test 422 me :no MOTD",
        )
        await hostile.expect(pilot, r"^JOIN :?#chat$")
        hostile.send(
            ":me!u@h JOIN #chat",
            f":irc.test 353 me = #chat :me @{EVIL} +[b]\x07x",
            ":irc.test 366 me #chat :End of /NAMES list.",
        )
        await wait_for_joined(pilot, "#chat")
        await wait_for(
            pilot,
            lambda: "@e[2Jvil" in member_labels(app),
            what="the evil nick, its controls dropped",
            show=lambda: screen_state(app),
        )
        assert "+[b]x" in member_labels(app)

        hostile.send(f":{EVIL}!u@h PRIVMSG #chat :\x1b[5mhello\x07")
        await wait_for_log(pilot, "<e[2Jvil> [5mhello")

        # we are made to join a channel with control characters in its name
        hostile.send(f":me!u@h JOIN {DARK}", f":{EVIL}!u@h TOPIC {DARK} :\x1b]2;x\x07topic")
        await wait_for(
            pilot,
            lambda: any(label.startswith("3 #]0;pwneddark[8m") for label in window_labels(app)),
            what="the dark channel in the window list",
            show=lambda: screen_state(app),
        )
        hostile.send(f":{EVIL}!u@h PRIVMSG me :\x1b[31mpsst")
        await wait_for(
            pilot,
            lambda: any(label.startswith("4 e[2Jvil") for label in window_labels(app)),
            what="the evil nick's query window",
            show=lambda: screen_state(app),
        )
        app.action_select_window(3)
        await wait_for(
            pilot,
            lambda: topic_text(app).startswith("#]0;pwneddark[8m"),
            what="the dark channel's topic line",
            show=lambda: screen_state(app),
        )
        assert "]2;xtopic" in topic_text(app)
        await wait_for_drawn(pilot, app.query_one("#window-list"), "3 #]0;pwneddark[8m")
        await wait_for_drawn(pilot, app.query_one("#window-list"), "4 e[2Jvil")
        await wait_for_drawn(pilot, app.query_one("#topic"), "#]0;pwneddark[8m")
        assert_inert(app)
        app.action_select_window(2)
        await wait_for_log(pilot, "<e[2Jvil> [5mhello")
        await wait_for_drawn(pilot, app.query_one("#member-list"), "@e[2Jvil")
        await wait_for_drawn(pilot, app.query_one("#member-list"), "+[b]x")
        assert_inert(app)
        assert app.is_running
