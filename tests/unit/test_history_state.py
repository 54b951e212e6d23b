"""Unit tests for history, IRCv3 capabilities and accounts in the server state, with a `Store` on
":memory:": feed lines to `State.handle`, read what each user's sink got.

The harness is helpers' `HistoryNet`: every user's bytes land in its `ListSink`, deferred work
(password hashing) runs at once with the same clock, and `take(user)` hands over (and forgets)
what a user got so far, parsed.
"""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.helpers import (
    PASSWORD,
    SERVER,
    T0,
    HistoryNet,
    ListSink,
    Net,
    dispatch,
    plain,
    sink_of,
    take,
    take_raw,
)
from tuichat.net import protocol as p
from tuichat.net.protocol import Line, parse
from tuichat.net.protocol import format_server_time as iso_time
from tuichat.state import Config, Outbox, User
from tuichat.store import Message, Store, hash_password, new_salt

CHATHISTORY_CAPS = ("batch", "server-time", "message-tags", "draft/chathistory")


# harness ------------------------------------------------------------------------------------------


def of(got: list[Line], command: str) -> list[Line]:
    return [line for line in got if line.command == command]


def one(got: list[Line], command: str) -> Line:
    found = of(got, command)
    assert len(found) == 1, got
    return found[0]


def fail(got: list[Line]) -> tuple[str, ...]:
    """The params of the single FAIL in `got` (without its description)."""
    line = one(got, "FAIL")
    assert line.source == SERVER
    return line.params[:-1]


def batch_body(got: list[Line], kind: str = "chathistory", *params: str) -> list[Line]:
    """The lines of the one batch that makes up `got`, checked: opened and closed by the server
    with one reference, every line inside tagged with it."""
    assert len(got) >= 2, got
    start, end = got[0], got[-1]
    assert start.command == "BATCH" and start.source == SERVER, got
    assert start.params[0].startswith("+")
    assert start.params[1:] == (kind, *params), start
    ref = start.params[0][1:]
    assert end.command == "BATCH" and end.params == ("-" + ref,), got
    body = got[1:-1]
    assert all(line.tags.get("batch") == ref for line in body), body
    return body


def texts(lines: list[Line]) -> list[str]:
    return [line.params[-1] for line in lines]


@pytest.fixture
def net() -> HistoryNet:
    return HistoryNet()


@pytest.fixture
def alice(net: HistoryNet) -> User:
    """A client with full chathistory support."""
    return net.cap_user("alice", *CHATHISTORY_CAPS)


@pytest.fixture
def bob(net: HistoryNet) -> User:
    """A client that negotiated nothing."""
    return net.register("bob")


@pytest.fixture
def ten(net: HistoryNet, alice: User, bob: User) -> list[Message]:
    """#h with alice and bob; bob said m0..m9, one a second; also noise elsewhere."""
    net.send(alice, "JOIN #h")
    net.send(bob, "JOIN #h")
    net.send(bob, "JOIN #noise")
    for i in range(10):
        net.say(bob, "#h", f"m{i}", T0 + 10 + i)
        net.say(bob, "#noise", f"noise{i}", T0 + 10 + i)
    take(alice)
    take(bob)
    rows = net.store.query("#h", 100)
    assert [row.text for row in rows] == [f"m{i}" for i in range(10)]
    return rows


def history(net: HistoryNet, user: User, raw: str, target: str = "#h") -> list[str]:
    """The texts of what a CHATHISTORY command returned in its batch."""
    take(user)
    net.send(user, raw)
    return texts(batch_body(take(user), "chathistory", target))


def ts(row: Message) -> str:
    return "timestamp=" + iso_time(row.time)


# history is written, with msgid and time, before delivery -----------------------------------------


class CheckingSink(ListSink):
    """A sink that, on every delivery, checks each msgid in it is already in the store."""

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        self.checked: list[str] = []

    def deliver(self, data: bytes) -> None:
        for msgid in re.findall(rb"msgid=([^; ]+)", data):
            assert self.store.find(msgid.decode()) is not None, data
            self.checked.append(msgid.decode())
        super().deliver(data)


def test_messages_are_stored_before_they_are_delivered(net: HistoryNet, bob: User) -> None:
    reader = User(CheckingSink(net.store), "127.0.0.1", net.now)
    net.state.connect(reader)
    net.send(reader, "CAP REQ :message-tags")
    net.send(reader, "NICK reader")
    net.send(reader, "USER reader 0 * :Reader")
    net.send(reader, "CAP END")
    net.send(reader, "JOIN #c")
    net.send(bob, "JOIN #c")
    for i in range(5):
        net.say(bob, "#c", f"to the channel {i}")
        net.send(bob, f"NOTICE reader :a notice {i}")
    assert isinstance(reader.sink, CheckingSink)
    assert len(reader.sink.checked) == 10
    stored = {row.msgid for row in net.store.query("#c", 100)}
    # a private conversation is keyed by its parties (two guests here: one per connection)
    stored |= {row.msgid for row in net.store.query(net.state._peer_key(bob, "reader"), 100)}
    assert set(reader.sink.checked) == stored


def test_a_stored_message_keeps_what_was_delivered(net: HistoryNet, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #c")
    net.send(bob, "JOIN #c")
    take(alice)
    net.send(bob, "@+draft/reply=abc;server-only=x PRIVMSG #c :hello there", T0 + 1.2345)
    got = one(take(alice), "PRIVMSG")
    [row] = net.store.query("#c", 10)
    assert row.msgid == got.tags["msgid"]
    assert row.time == int((T0 + 1.2345) * 1000)
    assert got.tags["time"] == iso_time(row.time)
    assert (row.key, row.target, row.source, row.command, row.text) == (
        "#c",
        "#c",
        "bob!~bob@127.0.0.1",
        "PRIVMSG",
        "hello there",
    )
    assert row.account is None
    # client-only tags are kept; tags without "+" are the client's to invent, not ours to keep
    assert row.tags == {"+draft/reply": "abc"}


def test_notice_is_stored_and_tagmsg_is_not(net: HistoryNet, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #c")
    net.send(bob, "JOIN #c")
    net.send(bob, "NOTICE #c :a notice")
    net.send(alice, "@+typing=active TAGMSG #c")
    assert [(row.command, row.text) for row in net.store.query("#c", 10)] == [
        ("NOTICE", "a notice")
    ]


def test_refused_messages_are_not_stored(net: HistoryNet, alice: User, bob: User) -> None:
    net.send(alice, "JOIN #c")
    net.send(alice, "MODE #c +m")
    net.say(bob, "#c", "from outside")  # +n
    net.send(bob, "JOIN #c")
    net.say(bob, "#c", "moderated")  # +m
    net.say(bob, "nobody", "no such nick")
    assert net.store.count() == 0


def test_private_history_is_shared_by_both_parties_only(net: HistoryNet, alice: User) -> None:
    carol = net.cap_user("carol", *CHATHISTORY_CAPS)
    net.say(alice, "carol", "hi carol", T0 + 1)
    net.say(carol, "ALICE", "hi alice", T0 + 2)
    dave = net.cap_user("dave", *CHATHISTORY_CAPS)
    net.say(dave, "carol", "dave to carol", T0 + 4)
    assert history(net, alice, "CHATHISTORY LATEST carol * 10", "carol") == [
        "hi carol",
        "hi alice",
    ]
    assert history(net, carol, "CHATHISTORY LATEST alice * 10", "alice") == [
        "hi carol",
        "hi alice",
    ]
    assert history(net, carol, "CHATHISTORY LATEST dave * 10", "dave") == ["dave to carol"]
    # dave sees nothing of alice and carol
    assert history(net, dave, "CHATHISTORY LATEST alice * 10", "alice") == []
    # the lines are the messages as sent: sender and addressee
    net.send(alice, "CHATHISTORY LATEST carol * 10")
    body = batch_body(take(alice), "chathistory", "carol")
    assert [(line.nick, line.params[0]) for line in body] == [
        ("alice", "carol"),
        ("carol", "alice"),
    ]


# CHATHISTORY --------------------------------------------------------------------------------------


def test_isupport_and_caps_advertise_chathistory(net: HistoryNet) -> None:
    user = net.connect()
    net.send(user, "CAP LS 302")
    caps = one(take(user), "CAP").params[-1].split()
    # the spec is a draft: only the draft/ name may be used
    assert "draft/chathistory" in caps and "chathistory" not in caps
    net.send(user, "NICK x")
    net.send(user, "USER x 0 * :X")
    net.send(user, "CAP END")
    tokens = {
        token.partition("=")[0]: token.partition("=")[2]
        for line in of(take(user), p.RPL_ISUPPORT)
        for token in line.params[1:-1]
    }
    assert tokens["CHATHISTORY"] == "100"
    assert set(tokens["MSGREFTYPES"].split(",")) == {"msgid", "timestamp"}


def test_without_a_store_there_is_no_chathistory() -> None:
    net = Net()
    user = net.connect()
    out = net.send(user, "CAP LS 302")
    caps = [c.partition("=")[0] for c in out.lines_for(user)[0].split(" :", 1)[1].split()]
    assert "draft/chathistory" not in caps and "chathistory" not in caps
    assert "batch" in caps
    net.send(user, "NICK x")
    net.send(user, "USER x 0 * :X")
    out = net.send(user, "CAP END")
    assert user.registered
    assert not any("CHATHISTORY" in line for line in out.lines_for(user))
    out = net.send(user, "CHATHISTORY LATEST x * 10")
    assert [parse(raw).command for raw in out.lines_for(user)] == [p.ERR_UNKNOWNCOMMAND]


def test_latest(net: HistoryNet, alice: User, ten: list[Message]) -> None:
    assert history(net, alice, "CHATHISTORY LATEST #h * 3") == ["m7", "m8", "m9"]
    assert history(net, alice, "CHATHISTORY LATEST #h * 100") == [f"m{i}" for i in range(10)]
    # after and excluding the reference, the most recent first when the limit bites
    assert history(net, alice, f"CHATHISTORY LATEST #h msgid={ten[6].msgid} 10") == [
        "m7",
        "m8",
        "m9",
    ]
    assert history(net, alice, f"CHATHISTORY LATEST #h {ts(ten[6])} 10") == ["m7", "m8", "m9"]
    assert history(net, alice, f"CHATHISTORY LATEST #h msgid={ten[2].msgid} 2") == ["m8", "m9"]
    assert history(net, alice, f"CHATHISTORY LATEST #h msgid={ten[9].msgid} 2") == []


def test_the_batch_names_the_target_canonically(
    net: HistoryNet, alice: User, ten: list[Message]
) -> None:
    assert history(net, alice, "CHATHISTORY LATEST #H * 1") == ["m9"]


def test_before(net: HistoryNet, alice: User, ten: list[Message]) -> None:
    assert history(net, alice, f"CHATHISTORY BEFORE #h msgid={ten[5].msgid} 3") == [
        "m2",
        "m3",
        "m4",
    ]
    assert history(net, alice, f"CHATHISTORY BEFORE #h {ts(ten[5])} 3") == ["m2", "m3", "m4"]
    assert history(net, alice, f"CHATHISTORY BEFORE #h msgid={ten[2].msgid} 10") == ["m0", "m1"]
    assert history(net, alice, f"CHATHISTORY BEFORE #h msgid={ten[0].msgid} 10") == []


def test_after(net: HistoryNet, alice: User, ten: list[Message]) -> None:
    assert history(net, alice, f"CHATHISTORY AFTER #h msgid={ten[5].msgid} 3") == [
        "m6",
        "m7",
        "m8",
    ]
    assert history(net, alice, f"CHATHISTORY AFTER #h {ts(ten[5])} 3") == ["m6", "m7", "m8"]
    assert history(net, alice, f"CHATHISTORY AFTER #h msgid={ten[7].msgid} 10") == ["m8", "m9"]
    assert history(net, alice, f"CHATHISTORY AFTER #h msgid={ten[9].msgid} 10") == []


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 7])
def test_around(net: HistoryNet, alice: User, ten: list[Message], limit: int) -> None:
    everything = [f"m{i}" for i in range(10)]
    for ref in (f"msgid={ten[5].msgid}", ts(ten[5])):
        got = history(net, alice, f"CHATHISTORY AROUND #h {ref} {limit}")
        # the implementation picks the split; it is a run of the history that holds m5
        assert len(got) == limit
        assert "m5" in got
        start = everything.index(got[0])
        assert got == everything[start : start + limit]


def test_between_both_directions(net: HistoryNet, alice: User, ten: list[Message]) -> None:
    m2, m7 = f"msgid={ten[2].msgid}", f"msgid={ten[7].msgid}"
    inner = ["m3", "m4", "m5", "m6"]
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {m2} {m7} 10") == inner
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {m7} {m2} 10") == inner
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {ts(ten[2])} {ts(ten[7])} 10") == inner
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {ts(ten[7])} {m2} 10") == inner
    # the limit counts from the first reference, whichever way that is; always ascending
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {m2} {m7} 2") == ["m3", "m4"]
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {m7} {m2} 2") == ["m5", "m6"]
    assert history(net, alice, f"CHATHISTORY BETWEEN #h {m2} msgid={ten[3].msgid} 10") == []


def history_sql(net: HistoryNet, user: User, raw: str) -> tuple[list[str], Outbox]:
    """The statements reading history that handling `raw` ran (under the state lock, in the
    server), and the Outbox, its deferred work not run yet."""
    statements: list[str] = []
    net.store.commit()
    net.store._db.set_trace_callback(statements.append)
    out = Outbox()
    try:
        net.state.handle(user, parse(raw), net.now, out)
    finally:
        net.store._db.set_trace_callback(None)
    reads = [s for s in statements if re.search(r"\bFROM (messages|conversations)\b", s)]
    return reads, out


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("LATEST #h * 5", 5),
        ("LATEST #h timestamp=1970-01-01T00:00:00.000Z 5", 5),
        ("BEFORE #h timestamp=2100-01-01T00:00:00.000Z 5", 5),
        ("AFTER #h timestamp=1970-01-01T00:00:00.000Z 5", 5),
        ("AROUND #h timestamp=2100-01-01T00:00:00.000Z 5", 2),
        ("BETWEEN #h timestamp=1970-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 5", 5),
        ("BEFORE #h msgid={} 5", 5),
        ("TARGETS timestamp=1970-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 5", 1),
    ],
)
def test_no_history_is_read_under_the_state_lock(
    net: HistoryNet, alice: User, ten: list[Message], query: str, rows: int
) -> None:
    reads, out = history_sql(net, alice, "CHATHISTORY " + query.format(ten[5].msgid))
    assert reads == []
    assert take(alice) == []  # the answer waits for the read
    dispatch(out, net.now)
    kind = ("draft/chathistory-targets",) if "TARGETS" in query else ("chathistory", "#h")
    assert len(batch_body(take(alice), *kind)) == rows


def test_the_history_of_a_guest_who_left_is_found_outside_the_lock(
    net: HistoryNet, alice: User
) -> None:
    carol = net.register("carol")
    net.say(carol, "alice", "hello from a guest")
    net.send(carol, "QUIT :bye")
    take(alice)
    reads, out = history_sql(net, alice, "CHATHISTORY LATEST carol * 10")
    assert reads == []
    dispatch(out, net.now)
    assert texts(batch_body(take(alice), "chathistory", "carol")) == ["hello from a guest"]


def test_the_join_replay_is_read_outside_the_lock_and_only_up_to_the_join(
    net: HistoryNet, ten: list[Message]
) -> None:
    carol = net.register("carol")
    reads, joined = history_sql(net, carol, "JOIN #h")
    assert reads == []
    joined.deliver()
    # bob speaks before the replay is read: carol gets it live, and not again in the replay
    bob = next(user for user in net.state.channels["#h"].members if user.nick == "bob")
    net.say(bob, "#h", "live")
    dispatch(joined, net.now)
    got = [line.params[-1][-4:] for line in take(carol) if line.command == "PRIVMSG"]
    assert got == ["live"] + [f"] m{i}" for i in range(10)], got


def test_targets(net: HistoryNet, alice: User, bob: User) -> None:
    carol = net.register("carol")
    net.send(alice, "JOIN #a")
    net.send(alice, "JOIN #b")
    net.send(bob, "JOIN #a")
    net.send(bob, "JOIN #hidden")
    net.say(bob, "#a", "in a", T0 + 10)
    net.say(carol, "alice", "carol to alice", T0 + 20)
    net.say(alice, "#b", "in b", T0 + 30)
    net.say(bob, "#hidden", "alice is not here", T0 + 40)
    net.say(bob, "carol", "not alice's", T0 + 45)
    net.say(alice, "BOB", "alice to bob", T0 + 50)
    take(alice)
    start, end = iso_time(int(T0 * 1000)), iso_time(int((T0 + 100) * 1000))
    net.send(alice, f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 10")
    body = batch_body(take(alice), "draft/chathistory-targets")
    assert [line.command for line in body] == ["CHATHISTORY"] * 4
    assert [line.params[:2] for line in body] == [
        ("TARGETS", "#a"),
        ("TARGETS", "carol"),
        ("TARGETS", "#b"),
        ("TARGETS", "bob"),
    ]
    assert [line.params[2][-24:] for line in body] == [
        iso_time(int((T0 + t) * 1000)) for t in (10, 20, 30, 50)
    ]
    net.send(alice, f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 2")
    assert len(batch_body(take(alice), "draft/chathistory-targets")) == 2


def test_targets_reply_timestamp_is_bare(net: HistoryNet, alice: User, bob: User) -> None:
    net.say(bob, "alice", "hi", T0 + 10)
    take(alice)
    start, end = iso_time(int(T0 * 1000)), iso_time(int((T0 + 100) * 1000))
    net.send(alice, f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 10")
    [line] = batch_body(take(alice), "draft/chathistory-targets")
    assert line.params == ("TARGETS", "bob", iso_time(int((T0 + 10) * 1000)))


def test_history_lines_carry_time_msgid_and_sender(
    net: HistoryNet, alice: User, ten: list[Message]
) -> None:
    net.send(alice, "CHATHISTORY LATEST #h * 2")
    body = batch_body(take(alice), "chathistory", "#h")
    for line, row in zip(body, ten[-2:], strict=True):
        assert line.tags["msgid"] == row.msgid
        assert line.tags["time"] == iso_time(row.time)
        assert line.source == "bob!~bob@127.0.0.1"
        assert line.params == ("#h", row.text)


def test_without_batch_history_comes_as_plain_lines(net: HistoryNet, ten: list[Message]) -> None:
    carol = net.cap_user("carol", "draft/chathistory")
    net.send(carol, "JOIN #h")
    take(carol)
    net.send(carol, "CHATHISTORY LATEST #h * 2")
    assert take_raw(carol) == [
        ":bob!~bob@127.0.0.1 PRIVMSG #h :m8",
        ":bob!~bob@127.0.0.1 PRIVMSG #h :m9",
    ]


def test_limit_is_capped_at_the_isupport_value() -> None:
    net = HistoryNet(Config(created=0.0, chathistory_max=5))
    user = net.cap_user("alice", *CHATHISTORY_CAPS)
    bob = net.register("bob")
    net.send(user, "JOIN #h")
    net.send(bob, "JOIN #h")
    for i in range(12):
        net.say(bob, "#h", f"m{i}", T0 + i)
    assert history(net, user, "CHATHISTORY LATEST #h * 1000") == [f"m{i}" for i in range(7, 12)]
    rows = net.store.query("#h", 100)
    assert len(history(net, user, f"CHATHISTORY AFTER #h msgid={rows[0].msgid} 99")) == 5
    assert len(history(net, user, f"CHATHISTORY BEFORE #h msgid={rows[-1].msgid} 6")) == 5
    assert history(net, user, "CHATHISTORY LATEST #h * 0") == []


def test_invalid_target_for_a_channel_you_are_not_in(
    net: HistoryNet, alice: User, bob: User, ten: list[Message]
) -> None:
    carol = net.cap_user("carol", *CHATHISTORY_CAPS)
    for raw in ("CHATHISTORY LATEST #h * 10", f"CHATHISTORY AFTER #h msgid={ten[0].msgid} 10"):
        net.send(carol, raw)
        got = take(carol)
        assert fail(got) == ("CHATHISTORY", "INVALID_TARGET", raw.split()[1], "#h")
        assert not of(got, "PRIVMSG") and not of(got, "BATCH")
    net.send(carol, "CHATHISTORY LATEST #nowhere * 10")
    assert fail(take(carol)) == ("CHATHISTORY", "INVALID_TARGET", "LATEST", "#nowhere")
    # leaving ends access
    net.send(alice, "PART #h")
    take(alice)
    net.send(alice, "CHATHISTORY LATEST #h * 10")
    assert fail(take(alice))[:2] == ("CHATHISTORY", "INVALID_TARGET")
    net.send(alice, "CHATHISTORY LATEST bad,target * 10")
    assert fail(take(alice))[:2] == ("CHATHISTORY", "INVALID_TARGET")


def test_invalid_msgreftype(net: HistoryNet, alice: User, ten: list[Message]) -> None:
    net.send(alice, "JOIN #other")
    net.say(alice, "#other", "elsewhere")
    elsewhere = net.store.query("#other", 1)[0].msgid
    for raw in (
        "CHATHISTORY AFTER #h msgid=nosuchid 10",
        f"CHATHISTORY AFTER #h msgid={elsewhere} 10",  # a msgid of another conversation
        "CHATHISTORY BEFORE #h frobs=12 10",
        f"CHATHISTORY BETWEEN #h msgid={ten[1].msgid} msgid=nosuchid 10",
        "CHATHISTORY AFTER #h * 10",  # only LATEST takes *
    ):
        take(alice)
        net.send(alice, raw)
        got = take(alice)
        sub = raw.split()[1]
        assert fail(got) == ("CHATHISTORY", "INVALID_MSGREFTYPE", sub, "#h"), raw
        assert not of(got, "BATCH")


@pytest.mark.parametrize(
    "raw",
    [
        "CHATHISTORY FROB #h * 10",
        "CHATHISTORY LATEST #h *",
        "CHATHISTORY LATEST #h",
        "CHATHISTORY LATEST #h * ten",
        "CHATHISTORY LATEST #h * -5",
        "CHATHISTORY BETWEEN #h * 10",
        "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z 10",
        "CHATHISTORY TARGETS yesterday today 10",
    ],
)
def test_invalid_params(net: HistoryNet, alice: User, ten: list[Message], raw: str) -> None:
    net.send(alice, raw)
    got = take(alice)
    assert fail(got)[:3] == ("CHATHISTORY", "INVALID_PARAMS", raw.split()[1])
    assert not of(got, "BATCH")


def test_chathistory_without_parameters_needs_more(net: HistoryNet, alice: User) -> None:
    net.send(alice, "CHATHISTORY")
    assert one(take(alice), p.ERR_NEEDMOREPARAMS).params[1] == "CHATHISTORY"


def test_an_unparsable_timestamp_is_invalid_params(
    net: HistoryNet, alice: User, ten: list[Message]
) -> None:
    net.send(alice, "CHATHISTORY AFTER #h timestamp=yesterday 10")
    assert fail(take(alice))[:2] == ("CHATHISTORY", "INVALID_PARAMS")


def same_ms(net: HistoryNet, alice: User, bob: User, count: int) -> list[str]:
    """`count` messages from bob in #s, in groups of 5 sharing one millisecond; their msgids."""
    net.send(alice, "JOIN #s")
    net.send(bob, "JOIN #s")
    for i in range(count):
        net.say(bob, "#s", f"s{i}", T0 + 1 + (i // 5) * 0.001)
    take(alice)
    rows = net.store.query("#s", 1000)
    assert [row.text for row in rows] == [f"s{i}" for i in range(count)]
    assert len({row.time for row in rows}) == (count + 4) // 5
    return [row.msgid for row in rows]


def page_forward(net: HistoryNet, user: User, target: str, size: int) -> list[str]:
    """Every message of `target` fetched page by page with AFTER msgid=<last seen>."""
    seen: list[str] = []
    cursor = "timestamp=" + iso_time(0)
    for _ in range(1000):
        take(user)
        net.send(user, f"CHATHISTORY AFTER {target} {cursor} {size}")
        page = [line.tags["msgid"] for line in batch_body(take(user), "chathistory", target)]
        assert len(page) <= size
        if not page:
            return seen
        seen += page
        cursor = "msgid=" + page[-1]
    raise AssertionError("paging did not end")


def page_backward(net: HistoryNet, user: User, target: str, size: int) -> list[str]:
    """Every message of `target`, newest page first: LATEST *, then BEFORE msgid=<first>."""
    seen: list[str] = []
    command = f"CHATHISTORY LATEST {target} * {size}"
    for _ in range(1000):
        take(user)
        net.send(user, command)
        page = [line.tags["msgid"] for line in batch_body(take(user), "chathistory", target)]
        if not page:
            return seen
        seen = page + seen
        command = f"CHATHISTORY BEFORE {target} msgid={page[0]} {size}"
    raise AssertionError("paging did not end")


def test_same_millisecond_messages_keep_their_order(
    net: HistoryNet, alice: User, bob: User
) -> None:
    ids = same_ms(net, alice, bob, 23)
    net.send(alice, "CHATHISTORY LATEST #s * 100")
    body = batch_body(take(alice), "chathistory", "#s")
    assert [line.tags["msgid"] for line in body] == ids
    for size in (1, 2, 3, 4, 5, 7, 100):
        assert page_forward(net, alice, "#s", size) == ids, size
        assert page_backward(net, alice, "#s", size) == ids, size
    # AROUND a message in the middle of a same-millisecond group
    take(alice)
    net.send(alice, f"CHATHISTORY AROUND #s msgid={ids[7]} 3")
    around = [line.tags["msgid"] for line in batch_body(take(alice), "chathistory", "#s")]
    assert ids[7] in around and len(around) == 3
    start = ids.index(around[0])
    assert around == ids[start : start + 3]
    # BETWEEN two msgids of the same millisecond, forwards
    take(alice)
    net.send(alice, f"CHATHISTORY BETWEEN #s msgid={ids[5]} msgid={ids[9]} 10")
    between = [line.tags["msgid"] for line in batch_body(take(alice), "chathistory", "#s")]
    assert between == ids[6:9]


def test_between_backwards_within_one_millisecond(net: HistoryNet, alice: User, bob: User) -> None:
    ids = same_ms(net, alice, bob, 10)
    net.send(alice, f"CHATHISTORY BETWEEN #s msgid={ids[9]} msgid={ids[5]} 10")
    between = [line.tags["msgid"] for line in batch_body(take(alice), "chathistory", "#s")]
    assert between == ids[6:9]


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.sampled_from([0, 0, 0, 1, 7]), min_size=0, max_size=40),
    size=st.integers(min_value=1, max_value=9),
)
def test_paging_gives_every_message_once(steps: list[int], size: int) -> None:
    """Whatever the spacing of messages in time (many in one millisecond), paging forwards with
    AFTER msgid or backwards with BEFORE msgid returns each message exactly once, in order."""
    net = HistoryNet()
    alice = net.cap_user("alice", *CHATHISTORY_CAPS)
    bob = net.register("bob")
    net.send(alice, "JOIN #p")
    net.send(bob, "JOIN #p")
    ms = 0
    for i, step in enumerate(steps):
        ms += step
        net.say(bob, "#p", f"p{i}", T0 + ms / 1000)
    ids = [row.msgid for row in net.store.query("#p", 1000)]
    assert len(ids) == len(steps)
    assert page_forward(net, alice, "#p", size) == ids
    assert page_backward(net, alice, "#p", size) == ids


# join replay --------------------------------------------------------------------------------------


def replay_setup(net: HistoryNet, count: int = 3) -> User:
    """#r with `count` lines of history said by a user who then left."""
    speaker = net.register("speaker")
    net.send(speaker, "JOIN #r")
    for i in range(count):
        net.say(speaker, "#r", f"r{i}", T0 + 60 * i)
    net.send(speaker, "PART #r")
    return speaker


def after_names(got: list[Line]) -> list[Line]:
    """What came after the 366 of a JOIN."""
    end = [i for i, line in enumerate(got) if line.command == p.RPL_ENDOFNAMES]
    assert len(end) == 1, got
    return got[end[0] + 1 :]


def test_join_replay_without_caps_is_plain_text_stamped(net: HistoryNet) -> None:
    replay_setup(net)
    user = net.register("plain")
    take(user)
    net.send(user, "JOIN #r", T0 + 3600)
    raw = take_raw(user)
    assert raw[0] == ":plain!~plain@127.0.0.1 JOIN #r"
    replay = raw[-3:]
    stamps = [
        f"[{iso_time(int((T0 + 60 * i) * 1000))[:10]} {iso_time(int((T0 + 60 * i) * 1000))[11:16]}]"
        for i in range(3)
    ]
    assert replay == [f":speaker!~speaker@127.0.0.1 PRIVMSG #r :{stamps[i]} r{i}" for i in range(3)]
    assert not any(line.startswith("@") or " BATCH " in line for line in raw)


def test_join_replay_in_a_chathistory_batch_with_server_time(net: HistoryNet) -> None:
    replay_setup(net)
    rows = net.store.query("#r", 10)
    user = net.cap_user("modern", "batch", "server-time")
    net.send(user, "JOIN #r", T0 + 3600)
    got = take(user)
    body = batch_body(after_names(got), "chathistory", "#r")
    assert texts(body) == ["r0", "r1", "r2"]  # no stamp in the text: the tag says when
    assert [line.tags["time"] for line in body] == [iso_time(row.time) for row in rows]
    assert all("msgid" not in line.tags for line in body)  # no message-tags negotiated


def test_join_replay_with_batch_but_no_server_time_is_text_stamped(net: HistoryNet) -> None:
    replay_setup(net, 1)
    user = net.cap_user("batchonly", "batch")
    net.send(user, "JOIN #r", T0 + 3600)
    body = batch_body(after_names(take(user)), "chathistory", "#r")
    assert [set(line.tags) for line in body] == [{"batch"}]
    assert re.fullmatch(r"\[\d{4}-\d\d-\d\d \d\d:\d\d\] r0", body[0].params[1])


def test_join_replay_with_server_time_but_no_batch(net: HistoryNet) -> None:
    replay_setup(net, 2)
    user = net.cap_user("timeonly", "server-time", "message-tags")
    net.send(user, "JOIN #r", T0 + 3600)
    replay = after_names(take(user))
    assert [line.command for line in replay] == ["PRIVMSG", "PRIVMSG"]
    assert texts(replay) == ["r0", "r1"]
    assert all({"time", "msgid"} <= set(line.tags) for line in replay)


@pytest.mark.parametrize("cap", ["draft/chathistory"])
def test_no_join_replay_for_chathistory_clients(net: HistoryNet, cap: str) -> None:
    replay_setup(net)
    user = net.cap_user("historian", "batch", "server-time", cap)
    net.send(user, "JOIN #r")
    assert after_names(take(user)) == []


def test_join_replay_is_limited_and_can_be_off() -> None:
    net = HistoryNet(Config(created=0.0, join_replay=2))
    replay_setup(net, 5)
    user = net.register("plain")
    take(user)
    net.send(user, "JOIN #r")
    assert [text[-2:] for text in texts(after_names(take(user)))] == ["r3", "r4"]
    net = HistoryNet(Config(created=0.0, join_replay=0))
    replay_setup(net, 5)
    user = net.register("plain")
    take(user)
    net.send(user, "JOIN #r")
    assert after_names(take(user)) == []


def test_join_replay_goes_to_the_joiner_only(net: HistoryNet, bob: User) -> None:
    replay_setup(net)
    net.send(bob, "JOIN #r")
    other = net.register("other")
    take(bob)
    net.send(other, "JOIN #r")
    assert [line.command for line in take(bob)] == ["JOIN"]


# accounts: REGISTER -------------------------------------------------------------------------------


def test_register_creates_a_hashed_account_and_logs_in(net: HistoryNet, alice: User) -> None:
    net.send(alice, f"REGISTER * * {PASSWORD}")
    got = take(alice)
    assert one(got, "REGISTER").params[:2] == ("SUCCESS", "alice")
    logged_in = one(got, p.RPL_LOGGEDIN)
    assert logged_in.params[1:3] == ("alice!~alice@127.0.0.1", "alice")
    assert alice.account == "alice"
    found = net.store.account("alice")
    assert found is not None
    display, salt, digest = found
    assert display == "alice"
    assert digest == hash_password(PASSWORD, salt) and PASSWORD.encode() not in digest
    # logged in to its own nick: no renaming later
    assert alice.nick_deadline is None


def test_register_by_name_before_connecting(net: HistoryNet) -> None:
    user = net.connect()
    net.send(user, "CAP LS 302")
    assert "draft/account-registration=before-connect" in one(take(user), "CAP").params[-1]
    net.send(user, "NICK Early")
    net.send(user, f"REGISTER Early early@example.com {PASSWORD}")
    got = take(user)
    assert one(got, "REGISTER").params[:2] == ("SUCCESS", "Early")
    assert one(got, p.RPL_LOGGEDIN).params[2] == "Early"
    net.send(user, "USER early 0 * :Early")
    net.send(user, "CAP END")
    got = take(user)
    assert user.registered and user.account == "Early"
    assert not of(got, "NOTICE")  # no "log in or be renamed" warning


def test_register_refusals(net: HistoryNet, alice: User, bob: User) -> None:
    net.send(bob, "REGISTER * * short")
    assert fail(take(bob)) == ("REGISTER", "WEAK_PASSWORD", "bob")
    assert net.store.account("bob") is None
    net.send(bob, f"REGISTER * * {PASSWORD}")
    assert one(take(bob), "REGISTER").params[:2] == ("SUCCESS", "bob")
    net.send(bob, f"REGISTER * * {PASSWORD}")
    assert fail(take(bob)) == ("REGISTER", "ALREADY_AUTHENTICATED", "bob")
    # the nick bob is registered: whoever uses it next cannot register it again
    net.disconnect(bob)
    other = net.register("BOB")
    take(other)
    net.send(other, "REGISTER * * another-password")
    assert fail(take(other)) == ("REGISTER", "ACCOUNT_EXISTS", "BOB")


def test_register_is_disallowed_when_registration_is_closed() -> None:
    net = HistoryNet(Config(created=0.0, open_registration=False))
    user = net.register("alice")
    take(user)
    net.send(user, f"REGISTER * * {PASSWORD}")
    assert fail(take(user)) == ("REGISTER", "DISALLOWED", "alice")
    assert net.store.account("alice") is None and user.account is None


def test_register_is_disallowed_without_a_store() -> None:
    net = Net()
    user = net.register("alice")
    out = net.send(user, f"REGISTER * * {PASSWORD}")
    [raw] = out.lines_for(user)
    assert parse(raw).params[:3] == ("REGISTER", "DISALLOWED", "alice")


def test_register_another_name_must_be_nick(net: HistoryNet, alice: User) -> None:
    net.send(alice, f"REGISTER somebody * {PASSWORD}")
    assert fail(take(alice)) == ("REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", "somebody")


def test_register_before_nick_needs_nick(net: HistoryNet) -> None:
    user = net.connect()
    net.send(user, "CAP LS 302")
    take(user)
    net.send(user, f"REGISTER * * {PASSWORD}")
    assert fail(take(user)) == ("REGISTER", "NEED_NICK", "*")


def test_verify_has_nothing_to_verify(net: HistoryNet, alice: User) -> None:
    net.send(alice, "VERIFY alice 123456")
    assert fail(take(alice)) == ("VERIFY", "INVALID_CODE", "alice")


# accounts: SASL PLAIN -----------------------------------------------------------------------------


def sasl_start(net: HistoryNet, nick: str = "alice") -> User:
    user = net.connect()
    net.send(user, "CAP LS 302")
    net.send(user, "CAP REQ :sasl")
    net.send(user, f"NICK {nick}")
    net.send(user, f"USER {nick} 0 * :{nick}")
    take(user)
    return user


def test_sasl_plain_success(net: HistoryNet) -> None:
    net.account("Alice")
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE PLAIN")
    assert take_raw(user) == ["AUTHENTICATE +"]
    net.send(user, "AUTHENTICATE " + plain("alice", PASSWORD))
    got = take(user)
    assert [line.command for line in got] == [p.RPL_LOGGEDIN, p.RPL_SASLSUCCESS]
    assert got[0].params[1:3] == ("alice!~alice@127.0.0.1", "Alice")
    assert user.account == "Alice" and not user.registered
    net.send(user, "CAP END")
    got = take(user)
    assert user.registered and got[0].command == p.RPL_WELCOME
    assert not of(got, "NOTICE")
    # once is enough
    net.send(user, "AUTHENTICATE PLAIN")
    assert one(take(user), p.ERR_SASLALREADY)


def test_sasl_plain_with_matching_authzid(net: HistoryNet) -> None:
    net.account("alice")
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE PLAIN")
    net.send(user, "AUTHENTICATE " + plain("alice", PASSWORD, authzid="ALICE"))
    assert [line.command for line in take(user)] == ["AUTHENTICATE", "900", "903"]


@pytest.mark.parametrize(
    "payload",
    [
        plain("alice", "wrong password"),
        plain("nobody", PASSWORD),
        plain("alice", PASSWORD, authzid="bob"),
        "not base64!",
        base64.b64encode(b"no separators").decode(),
    ],
    ids=["wrong-password", "no-account", "other-authzid", "not-base64", "malformed"],
)
def test_sasl_plain_failure(net: HistoryNet, payload: str) -> None:
    net.account("alice")
    net.account("bob")
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE PLAIN")
    take(user)
    net.send(user, "AUTHENTICATE " + payload)
    got = take(user)
    assert [line.command for line in got] == [p.ERR_SASLFAIL]
    assert user.account is None
    # a failure is not the end: try again
    net.send(user, "AUTHENTICATE PLAIN")
    net.send(user, "AUTHENTICATE " + plain("alice", PASSWORD))
    assert [line.command for line in take(user)] == ["AUTHENTICATE", "900", "903"]


def test_sasl_abort(net: HistoryNet) -> None:
    net.account("alice")
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE PLAIN")
    take(user)
    net.send(user, "AUTHENTICATE *")
    assert [line.command for line in take(user)] == [p.ERR_SASLABORTED]
    assert user.account is None and user.sasl is None


def test_sasl_unknown_mechanism_lists_plain(net: HistoryNet) -> None:
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE SCRAM-SHA-256")
    got = take(user)
    assert [line.command for line in got] == [p.RPL_SASLMECHS, p.ERR_SASLFAIL]
    assert got[0].params[1] == "PLAIN"


def test_sasl_needs_the_cap(net: HistoryNet) -> None:
    net.account("alice")
    user = net.connect()
    net.send(user, "NICK alice")
    net.send(user, "AUTHENTICATE PLAIN")
    assert [line.command for line in take(user)] == [p.ERR_SASLFAIL]


def test_sasl_payload_in_400_byte_chunks(net: HistoryNet) -> None:
    password = "p" * 293  # base64 of "\0alice\0" + 293 bytes is exactly 400 characters
    salt = new_salt()
    net.store.create_account("alice", "alice", salt, hash_password(password, salt), 0)
    payload = plain("alice", password)
    assert len(payload) == 400
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE PLAIN")
    take(user)
    net.send(user, "AUTHENTICATE " + payload)
    assert take(user) == []  # a full chunk: more may follow
    net.send(user, "AUTHENTICATE +")
    assert [line.command for line in take(user)] == ["900", "903"]


def test_require_tls_auth_refuses_plain_without_tls() -> None:
    net = HistoryNet(Config(created=0.0, require_tls_auth=True))
    net.account("alice")
    user = sasl_start(net)
    net.send(user, "AUTHENTICATE PLAIN")
    assert [line.command for line in take(user)] == [p.ERR_SASLFAIL]
    net.send(user, "AUTHENTICATE " + plain("alice", PASSWORD))
    assert user.account is None
    tls = sasl_start(net, "alice2")
    tls.tls = True
    net.send(tls, "AUTHENTICATE PLAIN")
    net.send(tls, "AUTHENTICATE " + plain("alice", PASSWORD))
    assert [line.command for line in take(tls)] == ["AUTHENTICATE", "900", "903"]


# nick protection ----------------------------------------------------------------------------------

GRACE = Config(created=0.0, nick_grace=0.3)


def test_a_registered_nick_is_taken_from_a_user_not_logged_in() -> None:
    net = HistoryNet(GRACE)
    net.account("alice")
    witness = net.register("witness")
    net.send(witness, "JOIN #c")
    impostor = Net.register(net, "alice")  # keeps the welcome
    warning = one(take(impostor), "NOTICE")
    assert warning.source == SERVER and "registered" in warning.params[1]
    net.send(impostor, "JOIN #c")
    take(impostor)
    take(witness)
    net.tick(T0 + 0.29)
    assert take(impostor) == [] and impostor.nick == "alice"
    net.tick(T0 + 0.31)
    renamed = one(take(impostor), "NICK")
    assert renamed.source == "alice!~alice@127.0.0.1"
    assert re.fullmatch(r"Guest\d+", renamed.params[0])
    assert impostor.nick == renamed.params[0]
    assert one(take(witness), "NICK") == renamed
    assert net.state.find_user("alice") is None
    net.tick(T0 + 5)
    assert take(impostor) == []  # once


def test_the_owner_keeps_the_nick() -> None:
    net = HistoryNet(GRACE)
    net.account("alice")
    owner = net.login("alice")
    net.tick(T0 + 10)
    assert take(owner) == [] and owner.nick == "alice"


def test_logging_in_within_the_grace_period_keeps_the_nick() -> None:
    net = HistoryNet(GRACE)
    net.account("alice")
    user = net.register("alice")
    net.send(user, "CAP REQ :sasl")
    net.send(user, "AUTHENTICATE PLAIN")
    net.send(user, "AUTHENTICATE " + plain("alice", PASSWORD))
    assert user.account == "alice"
    take(user)
    net.tick(T0 + 10)
    assert take(user) == [] and user.nick == "alice"


def test_leaving_the_nick_within_the_grace_period_ends_the_threat() -> None:
    net = HistoryNet(GRACE)
    net.account("alice")
    user = net.register("alice")
    net.send(user, "NICK notalice")
    take(user)
    net.tick(T0 + 10)
    assert take(user) == [] and user.nick == "notalice"


def test_changing_to_a_registered_nick_later_is_protected_too() -> None:
    net = HistoryNet(GRACE)
    net.account("alice")
    user = net.register("someone")
    take(user)
    net.send(user, "NICK alice", T0 + 100)
    assert one(take(user), "NOTICE")
    net.tick(T0 + 100.31)
    assert user.nick.startswith("Guest")


def test_a_user_logged_in_to_another_account_is_renamed() -> None:
    net = HistoryNet(GRACE)
    net.account("alice")
    net.account("bob")
    user = net.login("bob")
    net.send(user, "NICK alice")
    net.tick(T0 + 1)
    assert user.nick.startswith("Guest") and user.account == "bob"


def test_an_impostor_cannot_read_the_owners_private_history() -> None:
    net = HistoryNet(GRACE)
    net.account("bob")
    alice = net.cap_user("alice", *CHATHISTORY_CAPS)
    owner = net.login("bob")
    net.say(alice, "bob", "the secret is 42")
    net.say(owner, "alice", "thanks")
    net.disconnect(owner)
    impostor = net.cap_user("bob", *CHATHISTORY_CAPS)
    net.send(impostor, "CHATHISTORY LATEST alice * 10")
    assert not of(take(impostor), "PRIVMSG")


# capabilities -------------------------------------------------------------------------------------


def channel(net: HistoryNet, name: str, *users: User) -> None:
    for user in users:
        net.send(user, f"JOIN {name}")
    for user in users:
        take(user)


def test_cap_ls_302_values_and_plain_cap_ls(net: HistoryNet) -> None:
    user = net.connect()
    net.send(user, "CAP LS 302")
    modern = one(take(user), "CAP").params[-1].split()
    assert "sasl=PLAIN" in modern
    assert "draft/account-registration=before-connect" in modern
    old = net.connect()
    net.send(old, "CAP LS")
    names = one(take(old), "CAP").params[-1].split()
    assert not any("=" in name for name in names)
    assert {name.partition("=")[0] for name in modern} == set(names)
    assert {
        "message-tags",
        "server-time",
        "echo-message",
        "batch",
        "draft/chathistory",
        "away-notify",
        "account-notify",
        "account-tag",
        "extended-join",
        "multi-prefix",
        "userhost-in-names",
        "invite-notify",
        "setname",
        "labeled-response",
        "sasl",
        "draft/read-marker",
        "draft/account-registration",
    } <= set(names)


def test_tagmsg_typing_goes_to_message_tags_clients_only(net: HistoryNet, bob: User) -> None:
    tagger = net.cap_user("tagger", "message-tags")
    other = net.cap_user("other", "message-tags", "server-time")
    channel(net, "#t", tagger, other, bob)
    net.send(tagger, "@+typing=active TAGMSG #t")
    got = one(take(other), "TAGMSG")
    assert got.params == ("#t",) and got.source == "tagger!~tagger@127.0.0.1"
    assert got.tags["+typing"] == "active" and "msgid" in got.tags and "time" in got.tags
    assert take(bob) == []
    assert take(tagger) == []  # no echo-message
    # private TAGMSG
    net.send(other, "@+typing=paused TAGMSG tagger")
    assert one(take(tagger), "TAGMSG").tags["+typing"] == "paused"
    net.send(other, "@+typing=done TAGMSG bob")
    assert take(bob) == []


def test_client_tags_on_privmsg_reach_message_tags_clients_only(net: HistoryNet, bob: User) -> None:
    tagger = net.cap_user("tagger", "message-tags")
    channel(net, "#t", tagger, bob)
    net.send(tagger, r"@+example.com/x=a\sb;+bare;label=nope PRIVMSG bob :tagged")
    assert take_raw(bob) == [":tagger!~tagger@127.0.0.1 PRIVMSG bob :tagged"]
    net.send(bob, "@+example.com/x=1 PRIVMSG tagger :back")
    got = one(take(tagger), "PRIVMSG")
    assert got.tags["+example.com/x"] == "1"


def test_server_time_and_msgid_on_every_message(net: HistoryNet, bob: User) -> None:
    tags = net.cap_user("tags", "message-tags")
    times = net.cap_user("times", "server-time")
    channel(net, "#t", tags, times, bob)
    net.say(bob, "#t", "hello", T0 + 0.5)
    net.send(bob, "NOTICE #t :notice", T0 + 0.75)
    net.say(bob, "tags", "private", T0 + 1)
    tagged = take(tags)
    assert [line.command for line in tagged] == ["PRIVMSG", "NOTICE", "PRIVMSG"]
    msgids = [line.tags["msgid"] for line in tagged]
    assert len(set(msgids)) == 3 and all(set(line.tags) == {"msgid"} for line in tagged)
    timed = take(times)
    assert [line.tags for line in timed] == [
        {"time": iso_time(int((T0 + 0.5) * 1000))},
        {"time": iso_time(int((T0 + 0.75) * 1000))},
    ]
    assert iso_time(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"


def test_echo_message(net: HistoryNet, bob: User) -> None:
    echo = net.cap_user("echo", "echo-message", "message-tags")
    channel(net, "#t", echo, bob)
    net.say(echo, "#t", "to all")
    net.say(echo, "bob", "to bob")
    net.send(echo, "NOTICE bob :noticed")
    got = take(echo)
    assert [(line.source, line.command, line.params) for line in got] == [
        ("echo!~echo@127.0.0.1", "PRIVMSG", ("#t", "to all")),
        ("echo!~echo@127.0.0.1", "PRIVMSG", ("bob", "to bob")),
        ("echo!~echo@127.0.0.1", "NOTICE", ("bob", "noticed")),
    ]
    stored = [row.msgid for row in net.store.query("#t", 10)]
    assert got[0].tags["msgid"] == stored[0]
    assert len(take(bob)) == 3
    # the echo of a refused message never comes
    net.say(echo, "#elsewhere", "nope")
    assert [line.command for line in take(echo)] == [p.ERR_NOSUCHCHANNEL]


def test_a_message_to_oneself_arrives(net: HistoryNet, bob: User) -> None:
    net.say(bob, "bob", "note to self")
    assert take_raw(bob) == [":bob!~bob@127.0.0.1 PRIVMSG bob :note to self"]


def test_away_notify(net: HistoryNet, bob: User) -> None:
    notified = net.cap_user("notified", "away-notify")
    plain_user = net.register("plain")
    channel(net, "#a", notified, plain_user, bob)
    net.send(bob, "AWAY :gone fishing")
    assert take_raw(notified) == [":bob!~bob@127.0.0.1 AWAY :gone fishing"]
    assert take(plain_user) == []
    assert [line.command for line in take(bob)] == [p.RPL_NOWAWAY]
    net.send(bob, "AWAY")
    assert take_raw(notified) == [":bob!~bob@127.0.0.1 AWAY"]
    # nobody is told about their own away state
    net.send(notified, "AWAY :me")
    assert [line.command for line in take(notified)] == [p.RPL_NOWAWAY]


def test_away_notify_when_an_away_user_joins(net: HistoryNet, bob: User) -> None:
    notified = net.cap_user("notified", "away-notify")
    channel(net, "#a", notified)
    net.send(bob, "AWAY :gone fishing")
    net.send(bob, "JOIN #a")
    assert take_raw(notified) == [
        ":bob!~bob@127.0.0.1 JOIN #a",
        ":bob!~bob@127.0.0.1 AWAY :gone fishing",
    ]


def test_account_notify_extended_join_and_account_tag(net: HistoryNet) -> None:
    net.account("logged")
    watcher = net.cap_user("watcher", "account-notify", "extended-join", "account-tag")
    plain_user = net.register("plain")
    channel(net, "#acc", watcher, plain_user)
    anon = net.register("anon")
    net.send(anon, "JOIN #acc")
    assert take_raw(watcher) == [":anon!~anon@127.0.0.1 JOIN #acc * :Anon Example"]
    logged = net.login("logged")
    net.send(logged, "JOIN #acc")
    assert take_raw(watcher) == [
        "@account=logged :logged!~logged@127.0.0.1 JOIN #acc logged :Logged Example"
    ]
    assert take_raw(plain_user) == [
        ":anon!~anon@127.0.0.1 JOIN #acc",
        ":logged!~logged@127.0.0.1 JOIN #acc",
    ]
    # account-tag on messages of the logged-in only
    net.say(logged, "#acc", "signed")
    net.say(anon, "#acc", "unsigned")
    got = of(take(watcher), "PRIVMSG")
    assert [line.tags.get("account") for line in got] == ["logged", None]
    assert all("account" not in line.tags for line in of(take(plain_user), "PRIVMSG"))
    # account-notify: logging in after joining
    net.send(anon, f"REGISTER * * {PASSWORD}")
    assert take_raw(watcher) == ["@account=anon :anon!~anon@127.0.0.1 ACCOUNT anon"]
    assert take(plain_user) == []


def test_account_tag_on_every_command_of_a_logged_in_user(net: HistoryNet) -> None:
    net.account("logged")
    watcher = net.cap_user("watcher", "account-tag", "away-notify")
    channel(net, "#acc", watcher)
    logged = net.login("logged")
    net.send(logged, "JOIN #acc")
    net.send(logged, "AWAY :brb")
    net.send(logged, "PART #acc")
    got = take(watcher)
    assert [line.command for line in got] == ["JOIN", "AWAY", "PART"]
    assert all(line.tags.get("account") == "logged" for line in got), got


def op_and_voice(net: HistoryNet) -> tuple[User, User]:
    """opvoice (@+) and watcher in #mp, the watcher with multi-prefix and userhost-in-names."""
    opvoice = net.register("opvoice")
    watcher = net.cap_user("watcher", "multi-prefix", "userhost-in-names")
    net.send(opvoice, "JOIN #mp")
    net.send(opvoice, "MODE #mp +v opvoice")
    net.send(watcher, "JOIN #mp")
    take(opvoice)
    take(watcher)
    return opvoice, watcher


def test_multi_prefix_and_userhost_in_names(net: HistoryNet) -> None:
    opvoice, watcher = op_and_voice(net)
    net.send(watcher, "NAMES #mp")
    names = one(take(watcher), p.RPL_NAMREPLY).params[-1].split()
    assert sorted(names) == ["@+opvoice!~opvoice@127.0.0.1", "watcher!~watcher@127.0.0.1"]
    net.send(opvoice, "NAMES #mp")
    assert sorted(one(take(opvoice), p.RPL_NAMREPLY).params[-1].split()) == ["@opvoice", "watcher"]


def test_multi_prefix_in_who_and_whois(net: HistoryNet) -> None:
    _, watcher = op_and_voice(net)
    net.send(watcher, "WHO #mp")
    flags = {line.params[5]: line.params[6] for line in of(take(watcher), p.RPL_WHOREPLY)}
    net.send(watcher, "WHOIS opvoice")
    channels = one(take(watcher), p.RPL_WHOISCHANNELS).params[-1]
    assert (flags["opvoice"], channels) == ("H@+", "@+#mp")


def test_invite_notify(net: HistoryNet, bob: User) -> None:
    op = net.register("op")
    notified = net.cap_user("notified", "invite-notify")
    plain_user = net.register("plain")
    channel(net, "#inv", op, notified, plain_user)
    net.send(op, "INVITE bob #inv")
    [invite] = take(bob)
    assert (invite.source, invite.command, invite.params) == (
        "op!~op@127.0.0.1",
        "INVITE",
        ("bob", "#inv"),
    )
    assert take(notified) == [invite]
    assert take(plain_user) == []
    assert [line.command for line in take(op)] == [p.RPL_INVITING]


def test_setname(net: HistoryNet, bob: User) -> None:
    namer = net.cap_user("namer", "setname")
    watcher = net.cap_user("watcher", "setname")
    channel(net, "#n", namer, watcher, bob)
    net.send(namer, "SETNAME :A New Name")
    line = ":namer!~namer@127.0.0.1 SETNAME :A New Name"
    assert take_raw(namer) == [line]
    assert take_raw(watcher) == [line]
    assert take(bob) == []
    net.send(bob, "WHOIS namer")
    assert one(take(bob), p.RPL_WHOISUSER).params[-1] == "A New Name"
    net.send(namer, "SETNAME :" + "x" * 101)
    assert fail(take(namer))[:2] == ("SETNAME", "INVALID_REALNAME")
    assert namer.realname == "A New Name"


# labeled-response ---------------------------------------------------------------------------------

LABELED = ("labeled-response", "batch", "message-tags", "echo-message")


def test_labeled_single_reply(net: HistoryNet, bob: User) -> None:
    user = net.cap_user("lab", *LABELED)
    net.send(user, "@label=one PING token")
    assert take_raw(user) == ["@label=one :tuichat PONG tuichat :token"]
    net.send(user, "@label=two PRIVMSG nobody :hi")
    got = take(user)
    assert len(got) == 1 and got[0].tags == {"label": "two"}
    assert got[0].command == p.ERR_NOSUCHNICK


def test_labeled_echo_carries_the_label_and_the_recipient_gets_none(
    net: HistoryNet, bob: User
) -> None:
    user = net.cap_user("lab", *LABELED)
    net.send(user, r"@label=a\sb PRIVMSG bob :hi")
    [echo] = take(user)
    assert echo.tags["label"] == "a b" and echo.command == "PRIVMSG"
    assert take_raw(bob) == [":lab!~lab@127.0.0.1 PRIVMSG bob :hi"]


def test_labeled_multi_line_reply_is_a_batch(net: HistoryNet, bob: User) -> None:
    user = net.cap_user("lab", *LABELED)
    net.send(user, "@label=who WHOIS bob")
    got = take(user)
    assert got[0].tags == {"label": "who"}
    body = batch_body(got, "labeled-response")
    assert (body[0].command, body[-1].command) == (p.RPL_WHOISUSER, p.RPL_ENDOFWHOIS)
    assert sum("label" in line.tags for line in got) == 1


def test_labeled_command_without_reply_gets_ack(net: HistoryNet, bob: User) -> None:
    user = net.cap_user("lab", "labeled-response", "batch", "message-tags")
    net.send(user, "@label=quiet PRIVMSG bob :no echo")
    assert take_raw(user) == ["@label=quiet :tuichat ACK"]
    net.send(user, "@label=pong PONG :whatever")
    assert take_raw(user) == ["@label=pong :tuichat ACK"]
    assert take_raw(bob) == [":lab!~lab@127.0.0.1 PRIVMSG bob :no echo"]
    # without the cap a label is ignored
    net.send(bob, "@label=x PONG :whatever")
    assert take(bob) == []


def test_labeled_chathistory_nests_its_batch(
    net: HistoryNet, alice: User, ten: list[Message]
) -> None:
    user = net.cap_user("lab", *LABELED, "server-time", "draft/chathistory")
    net.send(user, "JOIN #h")
    take(user)
    net.send(user, "@label=hist CHATHISTORY LATEST #h * 3")
    got = take(user)
    assert [line.command for line in got] == ["BATCH", "BATCH", *["PRIVMSG"] * 3, "BATCH", "BATCH"]
    outer_start, inner_start, *lines, inner_end, outer_end = got
    assert outer_start.tags == {"label": "hist"}
    assert outer_start.params[1:] == ("labeled-response",)
    outer = outer_start.params[0][1:]
    assert outer_end.params == ("-" + outer,) and outer_end.tags == {}
    # the nested batch's start and end belong to the outer batch...
    assert inner_start.params[1:] == ("chathistory", "#h")
    inner = inner_start.params[0][1:]
    assert inner != outer
    assert inner_start.tags == {"batch": outer} and inner_end.tags == {"batch": outer}
    assert inner_end.params == ("-" + inner,)
    # ...and its lines carry only their own batch tag
    assert texts(lines) == ["m7", "m8", "m9"]
    assert all(line.tags["batch"] == inner and "label" not in line.tags for line in lines)


def test_labeled_register_reply_carries_the_label(net: HistoryNet) -> None:
    user = net.cap_user("lab", *LABELED)
    net.send(user, f"@label=reg REGISTER * * {PASSWORD}")
    got = take(user)
    assert not of(got, "ACK")
    assert got[0].tags.get("label") == "reg"
    assert sum("label" in line.tags for line in got) == 1
    assert of(got, "REGISTER")


# draft/read-marker --------------------------------------------------------------------------------


def test_markread_get_set_and_only_forward(net: HistoryNet) -> None:
    user = net.cap_user("reader", "draft/read-marker")
    net.send(user, "JOIN #m")
    take(user)
    net.send(user, "MARKREAD #m")
    assert take_raw(user) == [":tuichat MARKREAD #m *"]
    stamp = "timestamp=2026-01-02T03:04:05.678Z"
    net.send(user, f"MARKREAD #m {stamp}")
    assert take_raw(user) == [f":tuichat MARKREAD #m {stamp}"]
    net.send(user, "MARKREAD #m timestamp=2025-01-01T00:00:00.000Z")
    assert take_raw(user) == [f":tuichat MARKREAD #m {stamp}"]
    later = "timestamp=2026-01-02T03:04:05.679Z"
    net.send(user, f"MARKREAD #M {later}")
    assert take_raw(user) == [f":tuichat MARKREAD #M {later}"]
    net.send(user, "MARKREAD bob")
    assert take_raw(user) == [":tuichat MARKREAD bob *"]
    net.send(user, "MARKREAD #m yesterday")
    assert fail(take(user))[:2] == ("MARKREAD", "INVALID_PARAMS")
    net.send(user, "MARKREAD")
    assert one(take(user), p.ERR_NEEDMOREPARAMS)


def test_markread_is_sent_on_join(net: HistoryNet, bob: User) -> None:
    user = net.cap_user("reader", "draft/read-marker")
    net.send(user, "JOIN #m")
    net.send(user, "MARKREAD #m timestamp=2026-01-02T03:04:05.678Z")
    net.send(user, "PART #m")
    take(user)
    net.send(user, "JOIN #m")
    markers = of(take(user), "MARKREAD")
    assert [line.params for line in markers] == [("#m", "timestamp=2026-01-02T03:04:05.678Z")]
    net.send(bob, "JOIN #m")
    assert not of(take(bob), "MARKREAD")


def test_markread_on_join_comes_before_end_of_names(net: HistoryNet) -> None:
    user = net.cap_user("reader", "draft/read-marker")
    net.send(user, "JOIN #m")
    commands = [line.command for line in take(user)]
    assert commands.index("MARKREAD") < commands.index(p.RPL_ENDOFNAMES)


def test_read_markers_of_an_account_outlive_the_connection(net: HistoryNet) -> None:
    net.account("reader")
    first = net.login("reader", "draft/read-marker")
    stamp = "timestamp=2026-01-02T03:04:05.678Z"
    net.send(first, "JOIN #m")
    net.send(first, "PRIVMSG #m :kept, so that #m outlives its members")
    net.send(first, f"MARKREAD #m {stamp}")
    net.disconnect(first)
    second = net.login("reader", "draft/read-marker")
    net.send(second, "JOIN #m")
    assert [line.params for line in of(take(second), "MARKREAD")] == [("#m", stamp)]
    # a user without an account has markers for this connection only
    anon = net.cap_user("anon", "draft/read-marker")
    net.send(anon, "JOIN #m")
    net.send(anon, f"MARKREAD #m {stamp}")
    net.disconnect(anon)
    again = net.cap_user("anon", "draft/read-marker")
    net.send(again, "MARKREAD #m")
    assert take_raw(again) == [":tuichat MARKREAD #m *"]


def test_markread_reaches_the_other_clients_of_the_account(net: HistoryNet) -> None:
    net.account("reader")
    phone = net.login("reader", "draft/read-marker")
    laptop = net.cap_user("reader2", "sasl", "draft/read-marker")
    net.send(laptop, "AUTHENTICATE PLAIN")
    net.send(laptop, "AUTHENTICATE " + plain("reader", PASSWORD))
    assert laptop.account == "reader"
    take(laptop)
    stamp = "timestamp=2026-01-02T03:04:05.678Z"
    net.send(phone, "JOIN #m")
    net.send(phone, f"MARKREAD #m {stamp}")
    assert take_raw(laptop) == [f":tuichat MARKREAD #m {stamp}"]


def test_markread_for_a_conversation_one_does_not_have_is_refused_and_not_stored(
    net: HistoryNet, bob: User
) -> None:
    net.account("reader")
    user = net.login("reader", "draft/read-marker")
    stamp = "timestamp=2026-01-02T03:04:05.678Z"
    for target in ("#made-up", "nobody", "bob", "#m"):  # bob: online, but no conversation
        net.send(user, f"MARKREAD {target} {stamp}")
        assert fail(take(user)) == ("MARKREAD", "INVALID_PARAMS", target)
    net.send(bob, "JOIN #m")
    net.send(user, "PRIVMSG bob :hello")
    take(user)
    net.send(user, f"MARKREAD bob {stamp}")
    assert take_raw(user) == [f":tuichat MARKREAD bob {stamp}"]
    assert net.store.read_marker("reader", "#made-up") is None
    assert net.store.read_marker("reader", "#m") is None


def test_read_markers_are_capped_per_account_and_pruned_with_history() -> None:
    from tuichat.store import Message, Store

    store = Store()
    for i in range(5):
        store.add(Message(f"id{i}", 1000 + i, f"#c{i}", f"#c{i}", "a!a@h", None, "PRIVMSG", "x"))
        store.set_read_marker("reader", f"#c{i}", 2000 + i, cap=3)
    kept = [i for i in range(5) if store.read_marker("reader", f"#c{i}") is not None]
    assert kept == [2, 3, 4]  # the marker set longest ago goes
    store.commit()
    store.prune(1003)  # history of #c0..#c2 gone: their markers with it
    assert [i for i in range(5) if store.read_marker("reader", f"#c{i}") is not None] == [3, 4]


def test_three_wrong_passwords_close_the_connection(net: HistoryNet) -> None:
    import base64

    net.account("alice")
    guesser = net.connect()
    net.send(guesser, "CAP REQ :sasl")
    token = base64.b64encode(b"\0alice\0wrong-password").decode()
    for _ in range(3):
        net.send(guesser, "AUTHENTICATE PLAIN")
        net.send(guesser, f"AUTHENTICATE {token}")
    assert guesser.gone
    assert sink_of(guesser).closed == ["Closing link (Too many failed logins)"]


def test_unused_accounts_expire_but_not_while_logged_in_and_founders_go_with_them(
    net: HistoryNet,
) -> None:
    for name in ("online", "founder"):
        net.account(name)  # registered at time 0, never logged in to since
    online = net.login("online")  # logged in now: in use, and touched
    net.store._db.execute("UPDATE accounts SET last_login = NULL")  # as if right after REGISTER
    founder = net.cap_user("founder", "sasl")
    founder.account = "founder"  # the REGISTER connection, logged in: not expiring yet
    net.send(founder, "JOIN #kept")
    net.send(founder, "PRIVMSG #kept :history keeps #kept")
    assert net.state.channels["#kept"].founder == "founder"
    assert net.state.expire_accounts(1.0) == []
    net.disconnect(founder)
    assert net.state.expire_accounts(1.0) == ["founder"]
    assert net.state.channels["#kept"].founder is None
    assert net.store.account("founder") is None and net.store.account("online") is not None
    assert online.account == "online"
    # the name waits until its private history is deleted too (Server._expire_accounts)
    newcomer = net.cap_user("founder")
    net.send(newcomer, f"REGISTER * * {PASSWORD}")
    assert fail(take(newcomer)) == ("REGISTER", "TEMPORARILY_UNAVAILABLE", "founder")
    net.state.expired(["founder"])
    net.send(newcomer, f"REGISTER * * {PASSWORD}")
    assert one(take(newcomer), "REGISTER").params[:2] == ("SUCCESS", "founder")
