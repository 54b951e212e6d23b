"""Big replies (issue 10, item 7): NAMES and WHO are rendered after the state lock from a snapshot
taken under it, the requester's sink holds what else comes meanwhile so that order is kept, and
the reply costs its sender flood-control tokens by its size."""

from __future__ import annotations

from tests.unit.helpers import ListSink
from tuichat.net.protocol import parse
from tuichat.state import BIG_REPLY_MOST, Config, Outbox, State, User


class HoldingSink(ListSink):
    """What `server.Connection` does with hold/release, over a `ListSink`'s bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.held: bytearray | None = None

    def deliver(self, data: bytes) -> None:
        if self.held is not None:
            self.held += data
        else:
            self.data += data

    def hold(self) -> None:
        self.held = bytearray()

    def release(self, data: bytes) -> None:
        held, self.held = self.held or b"", None
        self.data += data + held


def _state() -> State:
    return State(Config(created=0.0))


def _send(state: State, user: User, raw: str, later: bool = False) -> Outbox:
    out = Outbox(render_later=later)
    state.handle(user, parse(raw), 0.0, out)
    if not later:
        out.deliver()
    return out


def _user(state: State, nick: str, realname: str = "x") -> User:
    user = User(HoldingSink(), "127.0.0.1", 0.0)
    state.connect(user)
    _send(state, user, f"NICK {nick}")
    _send(state, user, f"USER {nick} 0 * :{realname}")
    assert user.registered
    return user


def _sink(user: User) -> HoldingSink:
    assert isinstance(user.sink, HoldingSink)
    return user.sink


def test_a_reply_shows_its_snapshot_and_what_came_after_follows_it() -> None:
    state = _state()
    alice, bob, carol = (_user(state, nick) for nick in ("alice", "bob", "carol"))
    for user in (alice, bob, carol):
        _send(state, user, "JOIN #a")
    sink = _sink(alice)
    sink.data.clear()
    out = _send(state, alice, "NAMES #a", later=True)
    out.deliver()  # under the lock: the snapshot is taken, alice's sink holds from here
    assert out.later and not sink.data
    _send(state, carol, "PART #a :bye")
    _send(state, bob, "NICK bobby")
    out.finish_later()  # after the lock
    assert [line.split(" ", 2)[1] for line in sink.lines] == ["353", "366", "PART", "NICK"]
    assert sink.lines[0].endswith(":@alice bob carol")  # as it was when asked
    assert sink.lines[2].startswith(":carol!") and sink.lines[3].startswith(":bob!")


def test_who_renders_after_the_lock_what_was_true_under_it() -> None:
    state = _state()
    alice, bob = _user(state, "alice"), _user(state, "bob")
    for user in (alice, bob):
        _send(state, user, "JOIN #a")
    sink = _sink(alice)
    sink.data.clear()
    out = _send(state, alice, "WHO #a", later=True)
    out.deliver()
    _send(state, bob, "AWAY :gone")
    _send(state, alice, "MODE #a +v bob")
    out.finish_later()
    rows = [line for line in sink.lines if " 352 " in line]
    assert [row.split()[7:9] for row in rows] == [["alice", "H@"], ["bob", "H"]]
    assert " MODE #a +v bob" in sink.lines[-1]


def test_big_replies_cost_tokens_by_size() -> None:
    state = _state()
    users = [_user(state, f"member{i:03d}", "r" * 100) for i in range(60)]
    for user in users:
        _send(state, user, "JOIN #a")
    small = _send(state, users[0], "NAMES #nowhere")
    assert small.cost == 0
    names = _send(state, users[0], "NAMES #a")  # 60 x 10 bytes: under 2 KB
    assert names.cost == 0
    who = _send(state, users[0], "WHO #a")  # 60 rows of 200 bytes: 12 KB
    assert who.cost == len(who.data_for(users[0])) // 2048 > 0
    later = _send(state, users[0], "WHO #a", later=True)
    assert later.cost == 0  # known once it is rendered
    later.deliver()
    later.finish_later()
    assert later.cost == who.cost
    for i in range(200):
        _user(state, f"other{i:04d}", "r" * 100)
    big = _send(state, users[0], "WHO *")  # 200 rows (the cap), 40 KB: 10 tokens at most
    assert len(big.data_for(users[0])) // 2048 > BIG_REPLY_MOST
    assert big.cost == BIG_REPLY_MOST


def test_a_labeled_big_reply_is_rendered_after_the_lock_too() -> None:
    state = _state()
    alice, bob = _user(state, "alice"), _user(state, "bob")
    for user in (alice, bob):
        _send(state, user, "JOIN #a")
    alice.caps |= {"labeled-response", "batch"}
    sink = _sink(alice)
    sink.data.clear()
    out = _send(state, alice, "@label=w1 WHO #a", later=True)
    out.deliver()
    assert out.later and not sink.data  # not rendered under the lock
    _send(state, bob, "PRIVMSG #a :meanwhile")
    out.finish_later()
    lines = sink.lines
    assert lines[0].startswith("@label=w1 :tuichat BATCH +") and lines[0].endswith(
        " labeled-response"
    )
    ref = lines[0].split()[3][1:]
    assert all(line.startswith(f"@batch={ref} ") for line in lines[1:4])
    assert [line.split()[2] for line in lines[1:4]] == ["352", "352", "315"]
    assert lines[4] == f":tuichat BATCH -{ref}"
    assert lines[5].endswith("PRIVMSG #a :meanwhile")
