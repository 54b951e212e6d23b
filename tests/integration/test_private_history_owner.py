"""Issue 10, item 1: private history belongs to accounts, or to a guest's connection. Whoever
connects later with the same nick (or one equal under rfc1459 casemapping) gets none of it, from
`CHATHISTORY TARGETS`, `LATEST` or read markers; the account holder keeps their conversations with
guests who left; a guest keeps theirs across nick changes and into an account they log in to."""

from __future__ import annotations

import base64
import re

from tuichat.net.protocol import Line
from tuichat.server import Server

from .helpers import Bystander, Client, Connect, read_batch

CAPS = ["batch", "message-tags", "server-time", "draft/chathistory", "draft/read-marker"]
PASSWORD = "correct-horse-battery"
ALL_TIME = "timestamp=1970-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z"


def guest(connect: Connect, server: Server, nick: str) -> Client:
    return connect(server=server).register_with_caps(nick, CAPS)


def registered(connect: Connect, server: Server, nick: str) -> Client:
    """A guest that registers its nick as an account (and so is logged in to it)."""
    client = guest(connect, server, nick)
    client.send(f"REGISTER * * {PASSWORD}")
    client.expect(rf"^:\S+ REGISTER SUCCESS {re.escape(nick)} ")
    return client


def logged_in(connect: Connect, server: Server, nick: str) -> Client:
    """A new connection that logs in to the account `nick` with SASL before registering."""
    client = connect(server=server)
    client.send("CAP LS 302")
    client.send("CAP REQ :" + " ".join([*CAPS, "sasl"]))
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+$")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{nick}\0{PASSWORD}".encode()).decode())
    client.expect(rf"^:\S+ 903 {re.escape(nick)} ")
    client.send("CAP END")
    client.expect(rf"^(@\S+ )?:\S+ 001 {re.escape(nick)} ")
    client.expect(r"^(@\S+ )?:\S+ (376|422) ")
    client.nick = nick
    return client


def chat(a: Client, b: Client, *texts: str) -> None:
    """`a` and `b` take turns saying `texts` to each other; each line arrives."""
    for i, text in enumerate(texts):
        sender, receiver = (a, b) if i % 2 == 0 else (b, a)
        sender.send(f"PRIVMSG {receiver.nick} :{text}")
        receiver.expect(rf" PRIVMSG {re.escape(str(receiver.nick))} :{re.escape(text)}$")


def latest(client: Client, target: str) -> list[str]:
    client.send(f"CHATHISTORY LATEST {target} * 100")
    return [line.params[-1] for line in read_batch(client)]


def targets(client: Client) -> list[str]:
    client.send(f"CHATHISTORY TARGETS {ALL_TIME} 100")
    return [line.params[1] for line in read_batch(client, "draft/chathistory-targets")]


def leave(client: Client) -> None:
    client.send("QUIT :bye")
    client.expect_closed()


def test_a_new_guest_with_the_nick_of_a_guest_gets_none_of_their_history(
    history_server: Server, connect: Connect
) -> None:
    alice, bob = guest(connect, history_server, "alice"), guest(connect, history_server, "bob")
    chat(alice, bob, "the secret is 42", "noted")
    leave(alice)
    # bob still has the conversation with the alice who left
    assert latest(bob, "alice") == ["the secret is 42", "noted"]
    with Bystander(history_server.port) as bystander:
        impostor = guest(connect, history_server, "alice")
        assert targets(impostor) == []
        assert latest(impostor, "bob") == []
    assert bystander.lost == 0 and bystander.worst < 2, bystander
    # and to bob, the new alice is somebody new
    assert latest(bob, "alice") == []
    assert "42" not in " ".join(impostor.sync())


def test_a_nick_equal_under_rfc1459_casemapping_gets_nothing_either(
    history_server: Server, connect: Connect
) -> None:
    first, bob = guest(connect, history_server, "x[a]"), guest(connect, history_server, "bob")
    chat(first, bob, "between x[a] and bob")
    leave(first)
    twin = guest(connect, history_server, "X{A}")
    assert targets(twin) == []
    assert latest(twin, "bob") == []
    assert latest(bob, "X{A}") == []  # the conversation now would be with the new X{A}


def test_the_account_holder_keeps_a_conversation_with_a_guest_who_left(
    history_server: Server, connect: Connect
) -> None:
    bob = registered(connect, history_server, "bob")
    alice = guest(connect, history_server, "alice")
    chat(alice, bob, "hello bob", "hello guest")
    bob.send("MARKREAD alice timestamp=2030-01-01T00:00:00.000Z")
    bob.expect(r"^:\S+ MARKREAD alice timestamp=2030-01-01T00:00:00.000Z$")
    leave(alice)
    leave(bob)
    # bob comes back on a new connection: the conversation, its name and his marker are his
    bob = logged_in(connect, history_server, "bob")
    assert targets(bob) == ["alice"]
    assert latest(bob, "alice") == ["hello bob", "hello guest"]
    bob.send("MARKREAD alice")
    bob.expect(r"^:\S+ MARKREAD alice timestamp=2030-01-01T00:00:00.000Z$")
    # a new alice gets none of it, from either command, and no marker
    impostor = guest(connect, history_server, "alice")
    assert targets(impostor) == []
    assert latest(impostor, "bob") == []
    impostor.send("MARKREAD bob")
    impostor.expect(r"^:\S+ MARKREAD bob \*$")


def test_a_guest_taking_an_account_holders_nick_gets_none_of_it(
    history_server: Server, connect: Connect
) -> None:
    bob = registered(connect, history_server, "bob")
    alice = guest(connect, history_server, "alice")
    chat(bob, alice, "from the account", "to the account")
    leave(bob)
    impostor = guest(connect, history_server, "bob")  # renamed after the grace period; not yet
    assert targets(impostor) == []
    assert latest(impostor, "alice") == []
    # alice's conversation with the account is still hers, under its name
    assert targets(alice) == ["bob"]


def test_a_guest_keeps_their_conversation_across_a_nick_change(
    history_server: Server, connect: Connect
) -> None:
    alice, bob = guest(connect, history_server, "alice"), guest(connect, history_server, "bob")
    chat(alice, bob, "one", "two")
    alice.send("NICK alice2")
    alice.expect(r"^(@\S+ )?:alice!\S+ NICK :?alice2$")
    alice.nick = "alice2"
    chat(alice, bob, "three")
    assert latest(alice, "bob") == ["one", "two", "three"]
    assert latest(bob, "alice2") == ["one", "two", "three"]
    assert targets(bob) == ["alice2"]
    # the old nick is free, and a guest who takes it has nothing
    newcomer = guest(connect, history_server, "alice")
    assert latest(newcomer, "bob") == []


def test_a_guest_who_logs_in_takes_their_conversations_into_the_account(
    history_server: Server, connect: Connect
) -> None:
    carol, bob = guest(connect, history_server, "carol"), guest(connect, history_server, "bob")
    chat(carol, bob, "before the account", "welcome")
    carol.send(f"REGISTER * * {PASSWORD}")
    carol.expect(r"^:\S+ REGISTER SUCCESS carol ")
    chat(carol, bob, "after the account")
    assert latest(bob, "carol") == ["before the account", "welcome", "after the account"]
    leave(carol)
    again = logged_in(connect, history_server, "carol")
    assert latest(again, "bob") == ["before the account", "welcome", "after the account"]
    assert targets(bob) == ["carol"]


def test_targets_name_the_other_party_by_nick_in_order(
    history_server: Server, connect: Connect
) -> None:
    bob = registered(connect, history_server, "bob")
    alice, dave = guest(connect, history_server, "Alice"), guest(connect, history_server, "dave")
    chat(alice, bob, "first")
    chat(dave, bob, "second")
    bob.send(f"CHATHISTORY TARGETS {ALL_TIME} 100")
    got: list[Line] = read_batch(bob, "draft/chathistory-targets")
    assert [line.params[1] for line in got] == ["Alice", "dave"]
    alice.send("CHATHISTORY TARGETS " + ALL_TIME + " 100")
    assert [line.params[1] for line in read_batch(alice, "draft/chathistory-targets")] == ["bob"]
