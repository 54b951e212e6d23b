"""Unit tests for `State.disconnect_all`: many users leaving at once are told to the others as
`disconnect` one by one would tell them, in one blob per member who stays, at a cost that grows
with the channels' sizes rather than their square (issue 10, item 8).

The harness is helpers' `HistoryNet` (a `Store` on ":memory:": accounts, history):
two copies of the same scene, one disconnected user by user, the other all at once.
"""

from __future__ import annotations

import time

from tests.unit.helpers import HistoryNet, ListSink, check_invariants, sink_of, take_raw
from tuichat.net.protocol import casefold
from tuichat.state import Channel, Config, Outbox, User

STAY = ("tagged", "plain", "both", "side", "outsider")
LEAVE = ("acct", "l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "lone", "pending")


class CountingSink(ListSink):
    """A `ListSink` that counts its deliveries (appends to the connection's buffer)."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries = 0

    def deliver(self, data: bytes) -> None:
        self.deliveries += 1
        super().deliver(data)


def scene() -> tuple[HistoryNet, dict[str, User]]:
    """Members who stay and who leave, in channels that overlap: `#big` (with an account whose
    QUIT carries an account tag for `tagged`), `#side` (two of the leavers are in both), `#lone`
    (one leaver alone, with history: the channel is kept), `#gone` (one leaver alone, no history:
    the channel goes); `outsider` shares no channel; `pending` never registered."""
    net = HistoryNet()
    net.account("acct")
    users: dict[str, User] = {}
    users["tagged"] = net.cap_user("tagged", "account-tag")
    for nick in ("plain", "both", "side", "outsider"):
        users[nick] = net.register(nick)
    users["acct"] = net.login("acct")
    for i in range(8):
        users[f"l{i}"] = net.register(f"l{i}")
    users["lone"] = net.register("lone")
    users["pending"] = net.connect()
    net.send(users["pending"], "NICK pending")
    big = ["tagged", "plain", "both", "acct", *(f"l{i}" for i in range(8))]
    for nick in big:
        net.send(users[nick], "JOIN #big")
    for nick in ("both", "side", "l6", "l7"):
        net.send(users[nick], "JOIN #side")
    net.send(users["lone"], "JOIN #lone")
    net.say(users["lone"], "#lone", "kept for the history")
    net.send(users["l0"], "JOIN #gone")
    for user in users.values():
        take_raw(user)
        user.sink = CountingSink()
    return net, users


def consistent(net: HistoryNet) -> None:
    """`check_invariants`, but for the empty channels kept for their history."""
    kept = {key: chan for key, chan in net.state.channels.items() if not chan.members}
    for key in kept:
        del net.state.channels[key]
    try:
        check_invariants(net.state)
    finally:
        net.state.channels.update(kept)


def reasons() -> list[str]:
    return [f"Quit: bye from {nick}" for nick in LEAVE]


def test_disconnect_all_tells_what_disconnect_one_by_one_tells() -> None:
    one_by_one, a = scene()
    at_once, b = scene()
    for nick, reason in zip(LEAVE, reasons(), strict=True):
        out = Outbox()
        one_by_one.state.disconnect(a[nick], reason, one_by_one.now, out)
        out.deliver()
    out = Outbox()
    at_once.state.disconnect_all([b[nick] for nick in LEAVE], reasons(), at_once.now, out)
    out.deliver()

    got = {nick: take_raw(b[nick]) for nick in STAY}
    assert got == {nick: take_raw(a[nick]) for nick in STAY}
    # each QUIT once, in departure order, to those who shared a channel; the account tag only for
    # those who asked for it
    big = ["acct", *(f"l{i}" for i in range(8))]
    assert got["both"] == got["plain"] == [quit(nick) for nick in big]
    assert got["tagged"] == ["@account=acct " + quit("acct")] + [quit(nick) for nick in big[1:]]
    assert got["side"] == [quit("l6"), quit("l7")]
    assert got["outsider"] == []
    # ...in one delivery to each of them
    assert {nick: counted(b[nick]) for nick in STAY} == {
        "tagged": 1,
        "plain": 1,
        "both": 1,
        "side": 1,
        "outsider": 0,
    }
    for nick in LEAVE:
        assert sink_of(b[nick]).closed == sink_of(a[nick]).closed != [], nick
    for net in (one_by_one, at_once):
        consistent(net)
    # WHOWAS, the channels kept for their history, nicks and guests: as one by one
    whowas = [(w.nick, w.username, w.host, w.realname) for w in one_by_one.state.whowas]
    assert [(w.nick, w.username, w.host, w.realname) for w in at_once.state.whowas] == whowas
    assert [entry[0] for entry in whowas] == [nick for nick in LEAVE if nick != "pending"]
    assert (
        set(at_once.state.channels) == set(one_by_one.state.channels) == {"#big", "#side", "#lone"}
    )
    assert set(at_once.state.nicks) == set(one_by_one.state.nicks) == set(STAY)
    assert len(at_once.state._guests) == len(one_by_one.state._guests)
    assert at_once.state.clients == {b[nick] for nick in STAY}


def quit(nick: str) -> str:
    return f":{nick}!~{nick}@127.0.0.1 QUIT :Quit: bye from {nick}"


def counted(user: User) -> int:
    sink = user.sink
    assert isinstance(sink, CountingSink)
    return sink.deliveries


def test_disconnect_all_twice_or_with_repeats_tells_once() -> None:
    net, users = scene()
    leaving = [users["l0"], users["l0"], users["l1"]]
    out = Outbox()
    net.state.disconnect_all(leaving, ["Quit: bye from l0"] * 2 + ["Quit: bye from l1"], 0, out)
    net.state.disconnect_all([users["l1"]], ["again"], 0, out)
    out.deliver()
    assert take_raw(users["plain"]) == [quit("l0"), quit("l1")]
    assert sink_of(users["l0"]).closed == ["Closing link (Quit: bye from l0)"]
    assert sink_of(users["l1"]).closed == ["Closing link (Quit: bye from l1)"]
    consistent(net)


def test_ping_timeouts_of_one_tick_leave_together_in_bounded_time() -> None:
    """1,000 members of one channel stop answering: the tick that times them out tells the one
    who stays of all of them in one blob, each once, in well under a second (0.02 s; disconnected
    one by one, each departure told to every member and rebuilding the member tuple: 15 s)."""
    config = Config(created=0.0, ping_interval=10.0, ping_timeout=10.0)
    net = HistoryNet(config)
    stayer = net.register("stayer")
    net.send(stayer, "JOIN #big")
    chan = net.state.channels["#big"]
    silent = [net.register(f"s{i}") for i in range(1000)]
    # they joined long ago (a JOIN each would cost this test seconds of NAMES)
    for user in silent:
        join_quietly(chan, user)
    consistent(net)
    stayer.sink = CountingSink()
    t0 = net.now
    net.tick(t0 + 10)  # PING to everyone
    net.send(stayer, "PONG tuichat", t0 + 15)
    take_raw(stayer)
    started = time.perf_counter()
    net.tick(t0 + 20)
    elapsed = time.perf_counter() - started
    got = take_raw(stayer)
    assert sorted(got) == sorted(
        f":s{i}!~s{i}@127.0.0.1 QUIT :Ping timeout: 20 seconds" for i in range(1000)
    )
    assert counted(stayer) == 2  # the PING, then every QUIT at once
    assert chan.users == (stayer,)
    assert len(net.state.whowas) == 1000
    consistent(net)
    assert elapsed < 1.0, f"{elapsed:.2f} s"


def join_quietly(chan: Channel, user: User) -> None:
    chan.members[user] = set()
    chan.users = tuple(chan.members)
    user.channels[casefold(chan.name)] = chan


def test_kline_on_a_crowds_address_disconnects_it_at_once_in_bounded_time() -> None:
    """A K-line on the address of 1,000 members of one channel: each gets its ERROR, the member
    who stays gets every QUIT once in one blob, within a second (0.02 s; one by one: seconds)."""
    net = HistoryNet(Config(created=0.0, opers={"op": "secret"}))
    oper = net.register("oper", host="10.0.0.1")
    net.send(oper, "OPER op secret")
    stayer = net.register("stayer", host="10.0.0.2")
    net.send(stayer, "JOIN #big")
    chan = net.state.channels["#big"]
    crowd = [net.register(f"c{i}", host="192.0.2.7") for i in range(1000)]
    for user in crowd:
        join_quietly(chan, user)
    consistent(net)
    for user in (oper, stayer, *crowd):
        take_raw(user)
        user.sink = CountingSink()
    started = time.perf_counter()
    net.send(oper, "KLINE *@192.0.2.7 :go away")
    elapsed = time.perf_counter() - started
    got = take_raw(stayer)
    assert sorted(got) == sorted(
        f":c{i}!~c{i}@192.0.2.7 QUIT :K-lined: go away" for i in range(1000)
    )
    assert counted(stayer) == 1
    for user in crowd[:3]:
        assert take_raw(user) == ["ERROR :K-lined: go away"]
        assert sink_of(user).closed == ["Closing link (K-lined: go away)"]
    assert chan.users == (stayer,)
    assert set(net.state.nicks) == {"oper", "stayer"}
    consistent(net)
    assert elapsed < 1.0, f"{elapsed:.2f} s"
