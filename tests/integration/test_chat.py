"""Two and three users talking: channels, private messages, nick changes, parts and quits."""

from __future__ import annotations

import re

import pytest

from .helpers import Client, Connect

pytestmark = pytest.mark.timeout(30)


def lines_matching(lines: list[str], pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return [line for line in lines if regex.search(line)]


@pytest.fixture
def trio(connect: Connect) -> tuple[Client, Client, Client]:
    """alice and bob share #ab, bob and carol share #bc, all three are on #all."""
    alice, bob, carol = connect("alice"), connect("bob"), connect("carol")
    for client, channels in ((alice, "#ab #all"), (bob, "#ab #bc #all"), (carol, "#bc #all")):
        for channel in channels.split():
            client.join(channel)
    # settle the JOIN noise so that each test starts from a quiet state
    for client in (alice, bob, carol):
        client.sync()
    return alice, bob, carol


def test_two_users_chat_in_a_channel(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#chat")
    bob.send("JOIN #chat")
    alice.expect(r"^:bob!~bob@127\.0\.0\.1 JOIN #chat$")
    names = bob.expect(r"^:tuichat 353 bob = #chat :(.*)$")[1]
    assert sorted(names.split()) == ["@alice", "bob"]
    bob.expect(r"^:tuichat 366 bob #chat ")
    alice.send("PRIVMSG #chat :hello bob")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG #chat :hello bob$")
    bob.send("PRIVMSG #CHAT :hi alice")  # channel names are case-insensitive
    alice.expect(r"^:bob!~bob@127\.0\.0\.1 PRIVMSG #chat :hi alice$")
    # no echo of one's own messages
    assert lines_matching(alice.sync(), "PRIVMSG") == []
    assert lines_matching(bob.sync(), "PRIVMSG") == []


def test_channel_messages_reach_members_only(trio: tuple[Client, Client, Client]) -> None:
    alice, bob, carol = trio
    alice.send("PRIVMSG #ab :for bob only")
    alice.send("NOTICE #ab :a notice for bob")
    carol.send("PRIVMSG #bc :for bob again")
    alice.send("PRIVMSG #all :for everybody")
    # once a sender's PING is answered, the server has handed on everything it sent before
    assert alice.sync() == []
    carol_lines = carol.sync()
    received = lines_matching(bob.sync(), r"PRIVMSG|NOTICE")
    assert [line for line in received if line.startswith(":alice!")] == [
        ":alice!~alice@127.0.0.1 PRIVMSG #ab :for bob only",
        ":alice!~alice@127.0.0.1 NOTICE #ab :a notice for bob",
        ":alice!~alice@127.0.0.1 PRIVMSG #all :for everybody",
    ]
    assert [line for line in received if line.startswith(":carol!")] == [
        ":carol!~carol@127.0.0.1 PRIVMSG #bc :for bob again"
    ]
    assert len(received) == 4
    assert lines_matching(carol_lines + carol.sync(), r"PRIVMSG|NOTICE") == [
        ":alice!~alice@127.0.0.1 PRIVMSG #all :for everybody"
    ]
    # a non-member cannot talk into a +n channel
    alice.send("PRIVMSG #bc :let me in")
    alice.expect(r"^:tuichat 404 alice #bc :Cannot send to channel")
    assert lines_matching(bob.sync() + carol.sync(), "let me in") == []


def test_private_messages_and_notices(trio: tuple[Client, Client, Client]) -> None:
    alice, bob, carol = trio
    alice.send("PRIVMSG bob :psst")
    bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG bob :psst$")
    bob.send("NOTICE ALICE :noted")  # nicks are case-insensitive; the target is written as known
    alice.expect(r"^:bob!~bob@127\.0\.0\.1 NOTICE alice :noted$")
    carol.send("PRIVMSG alice,bob :to you both")
    alice.expect(r"^:carol!\S+ PRIVMSG alice :to you both$")
    bob.expect(r"^:carol!\S+ PRIVMSG bob :to you both$")
    alice.send("PRIVMSG nobody :hello?")
    alice.expect(r"^:tuichat 401 alice nobody :No such nick/channel$")
    alice.send("NOTICE nobody :hello?")  # a NOTICE never gets an error back
    assert alice.sync() == []
    assert lines_matching(carol.sync(), r"PRIVMSG|NOTICE") == []


def test_nick_change_is_seen_once_by_each_peer(trio: tuple[Client, Client, Client]) -> None:
    alice, bob, carol = trio
    alice.send("NICK alicia")
    alice.expect(r"^:alice!~alice@127\.0\.0\.1 NICK :alicia$")
    # bob shares two channels with alice, carol one; each sees the change exactly once
    for peer in (bob, carol):
        lines = peer.sync()
        assert lines_matching(lines, r" NICK ") == [":alice!~alice@127.0.0.1 NICK :alicia"]
    alice.send("PRIVMSG #all :new name")
    bob.expect(r"^:alicia!~alice@127\.0\.0\.1 PRIVMSG #all :new name$")
    bob.send("PRIVMSG alice :old name?")
    bob.expect(r"^:tuichat 401 bob alice ")
    bob.send("PRIVMSG alicia :new name!")
    alice.expect(r"^:bob!\S+ PRIVMSG alicia :new name!$")
    bob.send("NAMES #ab")
    assert sorted(bob.expect(r"^:tuichat 353 bob = #ab :(.*)$")[1].split()) == ["@alicia", "bob"]
    # the old nick is free again
    bob.send("NICK alice")
    alice.expect(r"^:bob!~bob@127\.0\.0\.1 NICK :alice$")


def test_part_and_quit_are_seen(trio: tuple[Client, Client, Client], connect: Connect) -> None:
    alice, bob, carol = trio
    carol.send("PART #bc :going away")
    bob.expect(r"^:carol!~carol@127\.0\.0\.1 PART #bc :going away$")
    carol.expect(r"^:carol!\S+ PART #bc :going away$")
    assert lines_matching(alice.sync(), " PART ") == []  # alice is not on #bc
    carol.send("PRIVMSG #bc :still here?")
    carol.expect(r"^:tuichat 404 carol #bc ")
    bob.send("PART #ab")
    alice.expect(r"^:bob!~bob@127\.0\.0\.1 PART #ab$")
    bob.send("QUIT :see you")
    bob.expect(r"^ERROR :Closing link \(Quit: see you\)$")
    assert bob.expect_closed() == []
    # alice still shares #all with bob, carol too: each sees one QUIT
    for peer in (alice, carol):
        assert lines_matching(peer.sync(), " QUIT ") == [":bob!~bob@127.0.0.1 QUIT :Quit: see you"]
    # bob's nick is free, and he is gone from the channels
    alice.send("NAMES #all")
    assert sorted(alice.expect(r"^:tuichat 353 alice = #all :(.*)$")[1].split()) == [
        "@alice",
        "carol",
    ]
    connect("bob")


def test_disconnect_without_quit_is_seen(trio: tuple[Client, Client, Client]) -> None:
    alice, bob, carol = trio
    carol.close()
    bob.expect(r"^:carol!~carol@127\.0\.0\.1 QUIT :Remote host closed the connection$")
    alice.expect(r"^:carol!~carol@127\.0\.0\.1 QUIT :Remote host closed the connection$")
