"""State unit tests, a connection's life: PING/PONG, QUIT, the tick's pings and timeouts, and
disconnect."""

from __future__ import annotations

import pytest

from tests.unit.helpers import SERVER, T0, Net, check_invariants, numeric, only, silent, sink_of
from tuichat.net import protocol as p
from tuichat.state import Config, User

# PING / PONG --------------------------------------------------------------------------------------


def test_ping_token_is_echoed(net: Net, alice: User) -> None:
    out = net.send(alice, "PING :some token")
    assert out.lines_for(alice) == [":tuichat PONG tuichat :some token"]


def test_ping_works_before_registration(net: Net) -> None:
    user = net.connect()
    assert only(net.send(user, "PING abc"), user, "PONG").params == (SERVER, "abc")


def test_ping_without_origin_gets_409(net: Net, alice: User) -> None:
    numeric(net.send(alice, "PING"), alice, p.ERR_NOORIGIN)


def test_pong_gets_no_reply(net: Net, alice: User) -> None:
    assert net.send(alice, "PONG :tuichat").sends == []


# QUIT ---------------------------------------------------------------------------------------------


def test_quit_tells_each_neighbour_once_and_closes(
    net: Net, alice: User, bob: User, carol: User
) -> None:
    dave = net.register("dave")
    net.channel("#a", alice, bob, carol)
    net.channel("#b", alice, bob)
    net.channel("#c", alice)
    prefix = alice.prefix
    out = net.send(alice, "QUIT :so long")
    assert out.lines_for(bob) == [f":{prefix} QUIT :Quit: so long"]
    assert out.lines_for(carol) == [f":{prefix} QUIT :Quit: so long"]
    silent(out, alice, dave)
    assert out.closes == [(alice, "Closing link (Quit: so long)")]
    assert sink_of(alice).closed == ["Closing link (Quit: so long)"]
    assert alice.gone
    assert alice not in net.state.clients
    assert net.state.find_user("alice") is None
    assert set(net.state.channels) == {"#a", "#b"}
    check_invariants(net.state)
    # nothing more is handled for a user who is gone
    assert net.send(alice, "PRIVMSG bob :ghost").sends == []


def test_quit_without_reason(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.send(alice, "QUIT")
    assert only(out, bob, "QUIT").params == ("Quit",)


def test_quit_before_registration(net: Net, alice: User) -> None:
    user = net.connect()
    net.send(user, "NICK bob")
    out = net.send(user, "QUIT :nah")
    assert [u for u, _ in out.closes] == [user]
    silent(out, alice, user)
    assert net.send(alice, "NICK bob").lines_for(alice)[0].endswith("NICK :bob")


# tick ---------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Net:
    return Net(
        Config(created=0.0, ping_interval=90.0, ping_timeout=120.0, registration_timeout=60.0)
    )


def test_tick_pings_idle_user_once(clock: Net) -> None:
    alice = clock.register("alice")
    assert clock.tick(T0 + 89).sends == []
    out = clock.tick(T0 + 90)
    assert out.lines_for(alice) == ["PING :tuichat"]
    assert clock.tick(T0 + 150).sends == []
    assert out.closes == []


def test_tick_activity_postpones_ping(clock: Net) -> None:
    alice = clock.register("alice")
    clock.send(alice, "LUSERS", now=T0 + 60)
    assert clock.tick(T0 + 100).sends == []
    assert clock.tick(T0 + 150).lines_for(alice) == ["PING :tuichat"]


def test_tick_pong_keeps_the_user(clock: Net) -> None:
    alice = clock.register("alice")
    clock.tick(T0 + 90)
    clock.send(alice, "PONG :tuichat", now=T0 + 95)
    out = clock.tick(T0 + 95 + 89)
    assert out.sends == []
    assert out.closes == []
    # the next ping comes one interval after the pong, and no timeout from the first one
    assert clock.tick(T0 + 95 + 90).lines_for(alice) == ["PING :tuichat"]
    assert clock.tick(T0 + 90 + 120).closes == []
    assert not alice.gone


def test_tick_ping_timeout_disconnects(clock: Net) -> None:
    alice, bob = clock.register("alice"), clock.register("bob")
    clock.channel("#a", alice, bob)
    clock.send(bob, "PING x", now=T0 + 200)
    clock.tick(T0 + 90)
    out = clock.tick(T0 + 209)
    assert out.closes == []
    out = clock.tick(T0 + 210)
    assert [user for user, _ in out.closes] == [alice]
    assert out.closes[0][1].startswith("Closing link (Ping timeout")
    quit_line = only(out, bob, "QUIT")
    assert quit_line.source == "alice!~alice@127.0.0.1"
    assert quit_line.params == ("Ping timeout: 210 seconds",)
    assert alice.gone
    assert not bob.gone


def test_tick_registration_timeout(clock: Net) -> None:
    alice = clock.register("alice")
    pending = clock.connect()
    clock.send(pending, "NICK slow")
    assert clock.tick(T0 + 59).closes == []
    out = clock.tick(T0 + 60)
    assert out.closes == [(pending, "Closing link (Registration timed out)")]
    assert pending.gone
    assert clock.state.nicks.keys() == {"alice"}
    assert not alice.gone


# disconnect ---------------------------------------------------------------------------------------


def test_disconnect_is_idempotent(net: Net, alice: User, bob: User) -> None:
    net.channel("#a", alice, bob)
    out = net.disconnect(alice, "Read error")
    assert only(out, bob, "QUIT").params == ("Read error",)
    assert out.closes == [(alice, "Closing link (Read error)")]
    again = net.disconnect(alice, "Read error")
    assert again.sends == []
    assert again.closes == []
    assert sink_of(alice).closed == ["Closing link (Read error)"]


def test_disconnect_removes_empty_channels_only(net: Net, alice: User, bob: User) -> None:
    net.channel("#shared", alice, bob)
    net.channel("#alone", alice)
    net.disconnect(alice)
    assert set(net.state.channels) == {"#shared"}
    assert set(net.state.channels["#shared"].members) == {bob}
    check_invariants(net.state)


def test_disconnect_records_whowas(net: Net, alice: User, bob: User) -> None:
    net.disconnect(bob)
    numeric(net.send(alice, "WHOWAS bob"), alice, p.RPL_WHOWASUSER, "bob")


def test_disconnect_unregistered_frees_nick(net: Net) -> None:
    pending = net.connect()
    net.send(pending, "NICK alice")
    out = net.disconnect(pending)
    assert out.sends == []
    assert pending not in net.state.clients
    net.register("alice")
