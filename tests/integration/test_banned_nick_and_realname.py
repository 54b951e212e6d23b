"""Issue 10, items 16 and 4 (in part): a member who is banned or quieted on a channel cannot
change nick to speak again (435, as InspIRCd and Ergo do), and USER's real name is cut to NAMELEN
as SETNAME caps it."""

from __future__ import annotations

import pytest

from .helpers import Connect


@pytest.mark.parametrize("mode", ["b", "q"])
def test_a_banned_or_quieted_member_cannot_change_nick(connect: Connect, mode: str) -> None:
    op = connect("op")
    spammer = connect("spammer")
    op.join("#c")
    spammer.join("#c")
    op.send(f"MODE #c +{mode} spammer!*@*")
    spammer.expect(rf" MODE #c \+{mode} spammer!\*@\*$")
    spammer.send("NICK innocent")
    spammer.expect(r"^:\S+ 435 spammer innocent #c :Cannot change nickname while ")
    assert not any(" NICK " in line for line in op.sync())
    spammer.send("PRIVMSG #c :still here")
    spammer.expect(r"^:\S+ 404 spammer #c ")
    assert not any("still here" in line for line in op.sync())


def test_a_ban_on_the_new_nick_refuses_it_too_and_voice_or_op_exempts(connect: Connect) -> None:
    op = connect("op")
    user = connect("user")
    op.join("#c")
    user.join("#c")
    op.send("MODE #c +b badname!*@*")
    user.expect(r" MODE #c \+b badname!\*@\*$")
    user.send("NICK badname")
    user.expect(r"^:\S+ 435 user badname #c ")
    op.send("MODE #c +v user")
    user.expect(r" MODE #c \+v user$")
    user.send("NICK badname")
    op.expect(r"^:user!\S+ NICK :?badname$")


def test_a_member_of_no_channel_with_bans_changes_nick_freely(connect: Connect) -> None:
    alice = connect("alice")
    alice.join("#free")
    alice.send("NICK alicia")
    alice.expect(r"^:alice!\S+ NICK :?alicia$")


def test_a_long_real_name_is_cut_to_namelen_at_registration(connect: Connect) -> None:
    long = connect()
    long.send("NICK longname")
    long.send("USER longname 0 * :" + "r" * 480)
    long.expect(r"^:\S+ 001 longname ")
    namelen = int(long.expect(r" NAMELEN=(\d+)").group(1))
    other = connect("other")
    other.send("WHOIS longname")
    realname = other.expect(r"^:\S+ 311 other longname \S+ \S+ \* :(.*)$").group(1)
    assert realname == "r" * namelen
