"""Interoperability with a third-party client: the `irc` library from PyPI (jaraco/irc)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator

import irc.client  # type: ignore[import-untyped]
import pytest

from tuichat.server import Server

from .helpers import HOST, Connect


class Library:
    """An `irc.client.Reactor` driven from the test, with every event recorded per connection."""

    def __init__(self) -> None:
        self.reactor = irc.client.Reactor()
        self.events: defaultdict[irc.client.ServerConnection, list[irc.client.Event]] = defaultdict(
            list
        )
        self.reactor.add_global_handler("all_events", self._record)

    def _record(self, connection: irc.client.ServerConnection, event: irc.client.Event) -> None:
        self.events[connection].append(event)

    def connect(self, port: int, nick: str) -> irc.client.ServerConnection:
        return self.reactor.server().connect(HOST, port, nick)

    def wait_for(
        self,
        connection: irc.client.ServerConnection,
        kind: str,
        where: Callable[[irc.client.Event], bool] = lambda event: True,
        timeout: float = 5,
    ) -> irc.client.Event:
        """Run the reactor until `connection` has an event of type `kind` that `where` accepts;
        return it and forget the events before it."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events[connection]
            for i, event in enumerate(events):
                if event.type == kind and where(event):
                    del events[: i + 1]
                    return event
            if time.monotonic() > deadline:
                seen = [(e.type, e.target, e.arguments) for e in events[-15:]]
                raise AssertionError(f"no {kind!r} event in {timeout} s; last: {seen}")
            self.reactor.process_once(0.05)

    def close(self) -> None:
        self.reactor.disconnect_all()


@pytest.fixture
def library() -> Iterator[Library]:
    lib = Library()
    yield lib
    lib.close()


@pytest.mark.timeout(30)
def test_irc_library_client_talks_with_a_raw_client(
    server: Server, connect: Connect, library: Library
) -> None:
    raw = connect("raw")
    raw.join("#interop")

    bot = library.connect(server.port, "pybot")
    welcome = library.wait_for(bot, "welcome")
    assert welcome.target == "pybot"
    library.wait_for(bot, "nomotd")  # the end of the welcome burst: no MOTD is configured
    # ISUPPORT was understood
    assert bot.features.network == "tuichat"
    assert bot.features.nicklen == 30
    assert bot.features.chantypes == "#"
    assert dict(bot.features.prefix) == {"@": "o", "+": "v"}

    bot.join("#interop")
    library.wait_for(bot, "join", lambda e: e.source.nick == "pybot" and e.target == "#interop")
    names = library.wait_for(bot, "namreply")
    assert names.arguments[1] == "#interop"
    assert sorted(names.arguments[2].split()) == ["@raw", "pybot"]
    library.wait_for(bot, "endofnames")
    raw.expect(r"^:pybot!~pybot@127\.0\.0\.1 JOIN #interop$")

    raw.send("PRIVMSG #interop :hello pybot")
    pubmsg = library.wait_for(bot, "pubmsg")
    assert (pubmsg.source.nick, pubmsg.target, pubmsg.arguments) == (
        "raw",
        "#interop",
        ["hello pybot"],
    )
    bot.privmsg("#interop", "hello raw")
    raw.expect(r"^:pybot!~pybot@127\.0\.0\.1 PRIVMSG #interop :hello raw$")
    raw.send("PRIVMSG pybot :just you")
    private = library.wait_for(bot, "privmsg")
    assert (private.source.nick, private.target, private.arguments) == (
        "raw",
        "pybot",
        ["just you"],
    )
    bot.notice("raw", "noted")
    raw.expect(r"^:pybot!\S+ NOTICE raw :noted$")

    bot.whois("raw")
    user = library.wait_for(bot, "whoisuser")
    assert user.arguments == ["raw", "~raw", "127.0.0.1", "*", "raw the tester"]
    channels = library.wait_for(bot, "whoischannels")
    assert channels.arguments == ["raw", "@#interop"]
    library.wait_for(bot, "whoisserver", lambda e: e.arguments[:2] == ["raw", "tuichat"])
    library.wait_for(bot, "endofwhois", lambda e: e.arguments[0] == "raw")

    # a second library client asks for a nick that is taken and gets a proper 433
    other = library.connect(server.port, "RAW")
    in_use = library.wait_for(other, "nicknameinuse")
    assert (in_use.target, in_use.arguments) == ("*", ["RAW", "Nickname is already in use"])
    other.nick("raw2")
    assert library.wait_for(other, "welcome").target == "raw2"
    assert other.get_nickname() == "raw2"

    bot.quit("bye")
    raw.expect(r"^:pybot!~pybot@127\.0\.0\.1 QUIT :Quit: bye$")
