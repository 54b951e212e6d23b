"""Issue 10, items 2 and 19: with history on, a channel keeps its modes, key, bans and topic when
it empties and across restarts, so whoever joins it again goes through its checks; a channel that
never held anything vanishes as before."""

from __future__ import annotations

import time
from pathlib import Path

from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import OPER, Bystander, Client, Connect, StartServer, read_batch
from .test_private_history_owner import guest, leave, logged_in, registered


def names(client: Client, channel: str) -> list[str]:
    client.send(f"NAMES {channel}")
    found = client.expect(rf"^:\S+ 353 \S+ [=@] {channel} :(.*)$").group(1)
    return found.split()


def test_an_emptied_secret_keyed_channel_keeps_its_key_and_history(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    server = start_server(ServerConfig(db=str(db_path)))
    alice = guest(connect, server, "alice")
    alice.join("#vault")
    alice.send("MODE #vault +sk sesame")
    alice.expect(r" MODE #vault \+sk sesame$")
    alice.send("PRIVMSG #vault :the combination is 1234")
    alice.sync()
    leave(alice)
    with Bystander(server.port) as bystander:
        mallory = guest(connect, server, "mallory")
        mallory.send("JOIN #vault")
        mallory.expect(r"^:\S+ 475 mallory #vault ")
        mallory.send("CHATHISTORY LATEST #vault * 100")
        mallory.expect(r"^:\S+ FAIL CHATHISTORY INVALID_TARGET LATEST #vault ")
        mallory.send("LIST")
        listed = mallory.sync()
    assert bystander.lost == 0 and bystander.worst < 2, bystander
    assert not any("#vault" in line or "1234" in line for line in listed)
    # with the key: in, and the history is there
    mallory.send("JOIN #vault sesame")
    mallory.expect(r"^:\S+ 366 mallory #vault ")
    mallory.send("CHATHISTORY LATEST #vault * 100")
    assert [line.params[1] for line in read_batch(mallory)] == ["the combination is 1234"]
    # a client without chathistory gets the join replay only with the key too
    old = connect("oldie", server=server)
    old.send("JOIN #vault")
    old.expect(r"^:\S+ 475 oldie #vault ")
    old.send("JOIN #vault sesame")
    old.expect(r"PRIVMSG #vault :\[\S+ \S+\] the combination is 1234$")


def test_topic_and_modes_survive_a_restart(
    start_server: StartServer, connect: Connect, db_path: Path
) -> None:
    first = start_server(ServerConfig(db=str(db_path)))
    alice = guest(connect, first, "alice")
    alice.join("#keep")
    alice.send("TOPIC #keep :the topic of before")
    alice.send("MODE #keep +mlk 5 door")
    alice.send("MODE #keep +b spam!*@*")
    alice.expect(r" MODE #keep \+b spam!\*@\*$")
    first.stop()  # alice is still in #keep when the server goes

    second = start_server(ServerConfig(db=str(db_path)))
    bob = guest(connect, second, "bob")
    bob.send("LIST")
    bob.expect(r"^:\S+ 322 bob #keep 0 :the topic of before$")
    bob.send("JOIN #keep")
    bob.expect(r"^:\S+ 475 bob #keep ")
    bob.send("JOIN #keep door")
    bob.expect(r"^:\S+ 332 bob #keep :the topic of before$")
    bob.expect(r"^:\S+ 333 bob #keep alice!\S+ :?\d+$")
    bob.expect(r"^:\S+ 366 bob #keep ")
    bob.send("MODE #keep")
    modes = bob.expect(r"^:\S+ 324 bob #keep \+([a-z]+) door :?5$").group(1)
    assert sorted(modes) == list("klmnt")
    bob.send("MODE #keep b")
    bob.expect(r"^:\S+ 367 bob #keep spam!\*@\* alice!\S+ :?\d+$")
    spam = guest(connect, second, "spam")
    spam.send("JOIN #keep door")
    spam.expect(r"^:\S+ 474 spam #keep ")


def test_the_founder_gets_operator_back_and_others_do_not(
    history_server: Server, connect: Connect
) -> None:
    alice = registered(connect, history_server, "alice")
    alice.join("#home")
    alice.send("TOPIC #home :alice's place")
    alice.sync()
    leave(alice)
    bob = guest(connect, history_server, "bob")
    bob.join("#home")
    assert names(bob, "#home") == ["bob"]  # not operator: the channel has a founder
    alice = logged_in(connect, history_server, "alice")
    alice.join("#home")
    assert sorted(names(alice, "#home")) == ["@alice", "bob"]


def test_an_empty_invite_only_channel_admits_its_founder_and_operators(
    history_server: Server, connect: Connect
) -> None:
    alice = registered(connect, history_server, "alice")
    alice.join("#club")
    alice.send("MODE #club +i")
    alice.expect(r" MODE #club \+i$")
    leave(alice)
    bob = guest(connect, history_server, "bob")
    bob.send("JOIN #club")
    bob.expect(r"^:\S+ 473 bob #club ")
    oper = guest(connect, history_server, "oper").oper(*OPER)
    oper.join("#club")
    assert names(oper, "#club") == ["oper"]
    alice = logged_in(connect, history_server, "alice")
    alice.join("#club")
    assert sorted(names(alice, "#club")) == ["@alice", "oper"]


def test_a_channel_that_held_nothing_goes_as_before(
    history_server: Server, connect: Connect
) -> None:
    alice = guest(connect, history_server, "alice")
    alice.join("#passing")
    alice.send("PART #passing")
    alice.expect(r" PART #passing$")
    bob = guest(connect, history_server, "bob")
    bob.send("LIST")
    assert not any("#passing" in line for line in bob.sync())
    bob.join("#passing")
    assert names(bob, "#passing") == ["@bob"]


def test_without_history_an_emptied_channel_vanishes(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(ServerConfig(state=Config()))
    alice = connect("alice", server=server)
    alice.join("#gone")
    alice.send("MODE #gone +k key")
    alice.expect(r" MODE #gone \+k key$")
    alice.send("PART #gone")
    alice.expect(r" PART #gone$")
    bob = connect("bob", server=server)
    bob.join("#gone")  # no key needed: nothing was kept
    bob.send("MODE #gone")
    bob.expect(r"^:\S+ 324 bob #gone :?\+nt$")


def test_a_kept_channel_unused_for_history_days_is_forgotten(
    connect: Connect, db_path: Path
) -> None:
    now = [1_800_000_000.0]
    server = Server(
        ServerConfig(host="127.0.0.1", port=0, db=str(db_path), history_days=30),
        clock=lambda: now[0],
    )
    server.start()
    try:
        alice = guest(connect, server, "alice")
        alice.join("#old")
        alice.send("MODE #old +k key")
        alice.expect(r" MODE #old \+k key$")
        leave(alice)
        bob = guest(connect, server, "bob")
        bob.send("LIST")
        assert any(" #old " in line for line in bob.sync())
        now[0] += 31 * 86400  # the reaper's next round prunes: nothing left of #old
        deadline = time.monotonic() + 10
        while any(" #old " in line for line in (bob.send("LIST"), bob.sync())[1]):
            assert time.monotonic() < deadline, "#old was never forgotten"
        bob.join("#old")  # no key: a new channel
        assert names(bob, "#old") == ["@bob"]
    finally:
        server.stop()
