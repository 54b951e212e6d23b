"""State unit tests, hostile input: malformed parameters get an error reply, and random traffic
keeps the cross-references consistent."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.helpers import Net, check_invariants, commands
from tuichat.net import protocol as p
from tuichat.state import User

# malformed parameters -----------------------------------------------------------------------------

CRASHERS = [
    ("NICK :a b", {p.ERR_ERRONEUSNICKNAME}),
    ("NICK ::x", {p.ERR_ERRONEUSNICKNAME}),
    ("JOIN :#a b", {p.ERR_NOSUCHCHANNEL}),
    ("PART :#a b", {p.ERR_NOSUCHCHANNEL}),
    ("TOPIC :", {p.ERR_NOSUCHCHANNEL, p.ERR_NEEDMOREPARAMS}),
    ("NAMES :#a b", {p.RPL_ENDOFNAMES}),
    ("WHO :", {p.RPL_WHOREPLY, p.RPL_ENDOFWHO}),  # an empty mask lists everyone visible
    ("WHOIS :a b", {p.ERR_NOSUCHNICK}),
    ("WHOWAS :a b", {p.ERR_WASNOSUCHNICK}),
    ("MODE :", {p.ERR_NOSUCHNICK, p.ERR_NEEDMOREPARAMS}),
    ("INVITE bob :#a b", {p.ERR_NOSUCHCHANNEL}),
    ("KICK #ops :b c", {p.ERR_USERNOTINCHANNEL}),
    ("CAP :ls x", {p.ERR_INVALIDCAPCMD}),
]


@pytest.mark.parametrize(("raw", "expected"), CRASHERS, ids=[raw for raw, _ in CRASHERS])
def test_malformed_params_get_an_error_reply(net: Net, raw: str, expected: set[str]) -> None:
    alice, _bob = net.register("alice"), net.register("bob")
    net.channel("#ops", alice)
    out = net.send(alice, raw)
    got = commands(out, alice)
    assert got, raw
    assert got[0] in expected, got


def test_well_formed_params_do_not_crash(net: Net, alice: User) -> None:
    """The same commands with ordinary bad values work (the crash above is only the echo)."""
    net.channel("#ops", alice)
    for raw in ("NICK 1x", "JOIN x", "PART #x", "WHOIS x", "WHOWAS x", "KICK #ops x", "CAP x"):
        assert net.send(alice, raw).lines_for(alice), raw


# invariants under random traffic ------------------------------------------------------------------

_NICKS = ["alice", "bob", "carol", "Alice", "[x]", "{X}"]
_CHANS = ["#a", "#A", "#b"]
_TEMPLATES = [
    "NICK {nick}",
    "JOIN {chan}",
    "JOIN {chan},{chan2}",
    "JOIN 0",
    "PART {chan}",
    "PART {chan} :bye",
    "KICK {chan} {nick}",
    "MODE {chan} +o {nick}",
    "MODE {chan} -o {nick}",
    "MODE {chan} +i",
    "MODE {chan} +b {nick}",
    "MODE {chan} -b {nick}",
    "MODE {chan} +l 2",
    "MODE {chan} +k key",
    "INVITE {nick} {chan}",
    "PRIVMSG {chan},{nick} :hi",
    "TOPIC {chan} :t",
    "AWAY :x",
    "MODE {nick} +i",
    "WHO {chan}",
    "WHOIS {nick}",
    "NAMES {chan}",
    "QUIT :q",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.sampled_from(_TEMPLATES),
            st.sampled_from(_NICKS),
            st.sampled_from(_CHANS),
            st.sampled_from(_CHANS),
        ),
        max_size=40,
    )
)
def test_random_traffic_keeps_state_consistent(
    steps: list[tuple[int, str, str, str, str]],
) -> None:
    net = Net()
    users = [net.register(nick) for nick in ("u0", "u1", "u2")]
    users.append(net.connect())
    for index, template, nick, chan, chan2 in steps:
        user = users[index]
        if user.gone:
            continue
        net.send(user, template.format(nick=nick, chan=chan, chan2=chan2))
        check_invariants(net.state)
    for user in users:
        net.disconnect(user)
    assert net.state.channels == {}
    assert net.state.nicks == {}
    assert net.state.clients == set()
