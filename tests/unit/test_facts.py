"""Deliveries as facts (`tuichat.state.facts`): plain data that renders per recipient, and that
another process could rebuild from its fields alone and render the same bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

import pytest

from tuichat.state import Variants
from tuichat.state.facts import TAG_ACCOUNT, TAG_MESSAGE, TAG_TIME, Fact, Joined, Relayed, Said

T = 1_767_225_600_250  # 2026-01-01T00:00:00.250Z


@dataclass
class Recipient:
    tagmask: int = 0
    caps: set[str] = field(default_factory=set)


ALL_TAGS = Recipient(TAG_MESSAGE | TAG_TIME | TAG_ACCOUNT)
SAID = Said("a!u@h", "alice", "PRIVMSG", "#c", "hi there", (("+draft/reply", "m0"),), "m1", T)


def test_a_message_for_each_kind_of_recipient() -> None:
    assert SAID.render(Recipient()) == b":a!u@h PRIVMSG #c :hi there\r\n"
    assert SAID.render(Recipient(TAG_TIME)) == (
        b"@time=2026-01-01T00:00:00.250Z :a!u@h PRIVMSG #c :hi there\r\n"
    )
    assert SAID.render(ALL_TAGS) == (
        b"@time=2026-01-01T00:00:00.250Z;msgid=m1;+draft/reply=m0;account=alice "
        b":a!u@h PRIVMSG #c :hi there\r\n"
    )


def test_a_tagmsg_goes_only_to_message_tags() -> None:
    typing = Said("a!u@h", None, "TAGMSG", "#c", None, (("+typing", "active"),), "m2", T)
    assert typing.render(Recipient(TAG_TIME)) == b""
    assert typing.render(Recipient(TAG_MESSAGE)) == b"@msgid=m2;+typing=active :a!u@h TAGMSG #c\r\n"


def test_a_join_with_and_without_extended_join() -> None:
    joined = Joined("a!u@h", "alice", "Alice A.", "#c", T)
    assert joined.render(Recipient()) == b":a!u@h JOIN #c\r\n"
    assert joined.render(Recipient(TAG_ACCOUNT, {"extended-join"})) == (
        b"@account=alice :a!u@h JOIN #c alice :Alice A.\r\n"
    )
    guest = Joined("g!u@h", None, "G", "#c", T)
    assert guest.render(Recipient(0, {"extended-join"})) == b":g!u@h JOIN #c * :G\r\n"


def test_a_relayed_line_has_the_account_tag_when_asked() -> None:
    relayed = Relayed("alice", b":a!u@h PART #c :bye\r\n")
    assert relayed.render(Recipient()) == b":a!u@h PART #c :bye\r\n"
    assert relayed.render(Recipient(TAG_ACCOUNT)) == b"@account=alice :a!u@h PART #c :bye\r\n"


def test_variants_render_a_fact_once_per_kind() -> None:
    variants = Variants.of(SAID)
    assert variants.fact is SAID
    plain, tagged = Recipient(), Recipient(TAG_TIME)
    assert variants.for_user(plain) == SAID.render(plain)
    assert variants.for_user(tagged) is variants.for_user(Recipient(TAG_TIME))


@pytest.mark.parametrize(
    "fact", [SAID, Joined("a!u@h", None, "A", "#c", T), Relayed("x", b"L\r\n")]
)
def test_a_fact_is_rebuilt_from_its_fields_alone(fact: Fact) -> None:
    """What a sink to another process would publish: the fields, as JSON (bytes as text)."""
    data = {f.name: getattr(fact, f.name) for f in fields(fact) if f.init}
    wire = json.dumps({k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()})
    back = {
        k: v.encode() if isinstance(getattr(fact, k), bytes) else v
        for k, v in json.loads(wire).items()
    }
    if "client_tags" in back:
        back["client_tags"] = tuple(tuple(pair) for pair in back["client_tags"])
    again = type(fact)(**back)
    assert again == fact
    for recipient in (Recipient(), ALL_TAGS, Recipient(ALL_TAGS.tagmask, {"extended-join"})):
        assert again.render(recipient) == fact.render(recipient)
