"""What handling lines produces, and its delivery: an `Outbox` records data for users and
connections to close; `Variants` are bytes that depend on what each recipient negotiated (its tag
mask), built once per kind of recipient, most of them from a fact (`facts`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator

from tuichat.state.facts import TAG_ACCOUNT, TAG_MESSAGE, TAG_TIME, Fact
from tuichat.state.facts import by_tags as _tagmask_of
from tuichat.state.model import Targets, User
from tuichat.store import History

# a big reply (NAMES, WHO) costs its requester one flood-control token per BIG_REPLY bytes, at
# most BIG_REPLY_MOST (the default burst): a flood of them waits, as in InspIRCd and Ergo
BIG_REPLY = 2048
BIG_REPLY_MOST = 10


def _tagmask(caps: set[str]) -> int:
    return (
        (TAG_MESSAGE if "message-tags" in caps else 0)
        | (TAG_TIME if "server-time" in caps else 0)
        | (TAG_ACCOUNT if "account-tag" in caps else 0)
    )


def _same(user: User) -> int:
    return 0


class Variants:
    """Bytes that depend on what the recipient negotiated (tags, extended-join): each variant is
    built once, the first time a recipient needs it."""

    __slots__ = ("_build", "_cache", "_key", "fact", "recorded")

    def __init__(self, key: Callable[[User], Hashable], build: Callable[[User], bytes]) -> None:
        self._key = key
        self._build = build
        self._cache: dict[Hashable, bytes] = {}
        # a message that goes out only once its history row is on disk (Outbox.unrecorded)
        self.recorded = False
        self.fact: Fact | None = None  # what these bytes render, when they render a fact

    @classmethod
    def of(cls, fact: Fact) -> Variants:
        """The bytes of `fact`, rendered once per kind of recipient."""
        variants = cls(fact.kind, fact.render)
        variants.fact = fact
        return variants

    def for_user(self, user: User) -> bytes:
        key = self._key(user)
        data = self._cache.get(key)
        if data is None:
            data = self._cache[key] = self._build(user)
        return data


Payload = bytearray | Variants


def _run_shares(
    targets: Targets, skip: User | None, run: list[Payload]
) -> Iterator[tuple[User, bytes]]:
    """Each of `targets` but `skip` with its bytes of `run` (none for those with none)."""
    key = _run_key(run)
    if key is None:  # the same bytes for all
        plain = [blob for blob in run if not isinstance(blob, Variants)]
        data = bytes(plain[0]) if len(plain) == 1 else b"".join(plain)
        if data:
            for user in targets:
                if user is not skip:
                    yield user, data
        return
    joined: dict[Hashable, bytes] = {}
    by_tags = key is _tagmask_of
    for user in targets:
        if user is skip:
            continue
        k = user.tagmask if by_tags else key(user)
        share = joined.get(k)
        if share is None:
            share = joined[k] = b"".join(
                blob.for_user(user) if isinstance(blob, Variants) else blob for blob in run
            )
        if share:
            yield user, share


def _run_key(run: list[Payload]) -> Callable[[User], Hashable] | None:
    """What tells apart the recipients of a run of payloads: None when every one gets the same
    bytes, the variants' own key when they share one, else a key made of all of them."""
    keys = [blob._key for blob in run if isinstance(blob, Variants)]
    if not keys:
        return None
    first = keys[0]
    if all(key is first for key in keys):
        return first
    return lambda user: tuple(key(user) for key in keys)


def _joined(parts: list[bytes | Variants]) -> bytes | Variants:
    """Lines one after another as one payload: bytes, or variants by the parts' keys."""
    keys = list({part._key: None for part in parts if isinstance(part, Variants)})
    if not keys:
        return b"".join(part for part in parts if not isinstance(part, Variants))

    def key(user: User) -> Hashable:
        return tuple(k(user) for k in keys)

    def build(user: User) -> bytes:
        return b"".join(
            part.for_user(user) if isinstance(part, Variants) else part for part in parts
        )

    return Variants(keys[0] if len(keys) == 1 else key, build)


class Outbox:
    """What handling lines produced: data for users, in order, and users to disconnect.

    Consecutive data for the same targets is joined, so that each member's share of a batch of
    lines is appended to its buffer once.
    """

    __slots__ = ("closes", "cost", "deferred", "later", "refusals", "render_later", "sends")

    def __init__(self, render_later: bool = False) -> None:
        self.sends: list[tuple[Targets, Payload, User | None]] = []
        self.closes: list[tuple[User, str]] = []
        # what each sender is told instead when the history rows could not be written
        self.refusals: list[tuple[User, bytes]] = []
        # slow work (password hashing) to run outside the state lock, then its continuation
        self.deferred: list[
            tuple[Callable[[], object], Callable[[object, float, Outbox], None]]
        ] = []
        # flood-control tokens the sender owes for big replies (NAMES, WHO), beyond one a line
        self.cost = 0
        # big replies are rendered after the state lock is released (the server asks for it):
        # what is rendered comes from a snapshot taken under the lock, and the user's sink holds
        # whatever else is delivered to them meanwhile, so that order is kept
        self.render_later = render_later
        self.later: list[tuple[User, Callable[[], bytes]]] = []

    def send(self, user: User, data: bytes | Variants) -> None:
        if isinstance(data, Variants):
            data = data.for_user(user)
        sends = self.sends
        if sends:
            targets, blob, skip = sends[-1]
            if (
                skip is None
                and len(targets) == 1
                and targets[0] is user
                and type(blob) is bytearray
            ):
                blob += data
                return
        sends.append(((user,), bytearray(data), None))

    def broadcast(self, users: Targets, data: bytes | Variants, skip: User | None = None) -> None:
        """`data` for each of `users` but `skip`."""
        sends = self.sends
        if isinstance(data, Variants):
            sends.append((users, data, skip))
            return
        if sends:
            targets, blob, last_skip = sends[-1]
            if targets is users and last_skip is skip and type(blob) is bytearray:
                blob += data
                return
        sends.append((users, bytearray(data), skip))

    def close(self, user: User, reason: str) -> None:
        self.closes.append((user, reason))

    def reply(self, user: User, render: Callable[[], bytes]) -> None:
        """A big reply for `user`, rendered by `render` from a snapshot: now, or after the lock
        (`render_later`). It costs one flood-control token per BIG_REPLY bytes."""
        if self.render_later:
            self.later.append((user, render))
            return
        data = render()
        self.charge(len(data))
        self.send(user, data)

    def charge(self, size: int) -> None:
        self.cost += min(BIG_REPLY_MOST, size // BIG_REPLY)

    def finish_later(self) -> None:
        """Render the replies left for after the lock and hand them over (each user's sink held
        what came meanwhile since `deliver`)."""
        later, self.later = self.later, []
        for user, render in later:
            data = b""
            try:
                data = render()
            finally:  # the sink holds until this, whatever happens
                self.charge(len(data))
                user.sink.release(data)

    def defer(
        self, job: Callable[[], object], then: Callable[[object, float, Outbox], None]
    ) -> None:
        """Run `job` outside the state lock, then `then(result, now, out)` under it."""
        self.deferred.append((job, then))

    def persist_and_deliver(self, history: History | None) -> Exception | None:
        """Persist, then deliver, as one step: the history rows added while handling are
        written first (one transaction), so that whatever a client receives is on disk; when
        that fails (disk full), what depended on the rows goes to nobody and their senders are
        told (`unrecorded`). Returns the failure, if any. Under the state lock."""
        failure = None
        if history is not None:
            history.commit()
            failure = history.take_failure()
            if failure is not None:
                self.unrecorded()
        self.deliver()
        return failure

    def deliver(self) -> None:
        """Hand every recipient its data, then close what is to be closed.

        Each recipient gets its whole share in one `deliver`: one lock and one wake-up of the
        writer per recipient and batch, however many lines the batch holds."""
        # runs of sends to the same targets (a burst of messages to one channel) are joined once
        # per kind of recipient (what tags it negotiated), not once per member
        runs: list[tuple[Targets, User | None, list[Payload]]] = []
        for targets, blob, skip in self.sends:
            if runs and runs[-1][0] is targets and runs[-1][1] is skip:
                runs[-1][2].append(blob)
            else:
                runs.append((targets, skip, [blob]))
        if len(runs) == 1:  # the common case (one message, or a burst to one channel)
            targets, skip, run = runs[0]
            for user, data in _run_shares(targets, skip, run):
                user.sink.deliver(data)
        elif runs:
            shares: dict[User, list[bytes]] = {}
            for targets, skip, run in runs:
                for user, data in _run_shares(targets, skip, run):
                    share = shares.get(user)
                    if share is None:
                        shares[user] = [data]
                    else:
                        share.append(data)
            for user, pieces in shares.items():
                user.sink.deliver(pieces[0] if len(pieces) == 1 else b"".join(pieces))
        for user, _ in self.later:  # what comes after now waits for the reply
            user.sink.hold()
        for user, error in self.closes:
            user.sink.close(error)

    def data_for(self, user: User) -> bytes:
        """All the bytes `user` would receive, in order."""
        return b"".join(
            blob.for_user(user) if isinstance(blob, Variants) else bytes(blob)
            for targets, blob, skip in self.sends
            if user is not skip and user in targets
        )

    def lines_for(self, user: User) -> list[str]:
        """The lines that `user` would receive (for tests)."""
        return [raw.decode() for raw in self.data_for(user).split(b"\r\n") if raw]

    def take(self, user: User) -> bytes:
        """Remove from this outbox everything for `user` and return it (labeled-response)."""
        taken: list[bytes] = []
        kept: list[tuple[Targets, Payload, User | None]] = []
        for targets, blob, skip in self.sends:
            if user is skip or user not in targets:
                kept.append((targets, blob, skip))
                continue
            taken.append(blob.for_user(user) if isinstance(blob, Variants) else bytes(blob))
            if len(targets) > 1:
                if skip is not None:  # cannot skip two: hand the others their copies one by one
                    for other in targets:
                        if other is not skip and other is not user:
                            kept.append(((other,), blob, None))
                else:
                    kept.append((targets, blob, user))
        self.sends = kept
        return b"".join(taken)

    def extend(self, other: Outbox) -> None:
        self.cost += other.cost
        self.later.extend(other.later)
        self.sends.extend(other.sends)
        self.closes.extend(other.closes)
        self.deferred.extend(other.deferred)
        self.refusals.extend(other.refusals)

    def record(self, sender: User, payload: Variants, refusal: bytes) -> None:
        """`payload` (sent next) waits for its history row: if the row cannot be written, it is
        not delivered, to anybody, and `sender` gets `refusal` instead."""
        payload.recorded = True
        self.refusals.append((sender, refusal))

    def recorded(self) -> bool:
        return bool(self.refusals)

    def unrecorded(self) -> None:
        """The history rows were not written: drop what depended on them, send the refusals."""
        self.sends = [
            send for send in self.sends if not (isinstance(send[1], Variants) and send[1].recorded)
        ]
        refusals, self.refusals = self.refusals, []
        for user, data in refusals:
            self.send(user, data)
