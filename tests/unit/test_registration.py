"""Unit tests for the client's registration (`tuichat.net.registration`): the state machine fed the
server's lines one by one, no sockets.

Each test checks the exact lines the machine would send (as `net.Client` writes them), the events
it reports and whether the line goes on to the app.
"""

from __future__ import annotations

import base64

import pytest

from tuichat.net import protocol as p
from tuichat.net.protocol import parse
from tuichat.net.registration import (
    NickFallback,
    Reaction,
    Refused,
    Registered,
    Registration,
    StsPolicy,
    StsUpgrade,
)

SECRET = "hunter2-secret"


def machine(
    password: str | None = None, account: str | None = None, secure: bool = False
) -> Registration:
    return Registration(
        "amy",
        "tuichat",
        "tuichat user",
        password=password,
        account=account,
        secure=secure,
        randint=lambda low, high: low + 7,
    )


def feed(registration: Registration, raw: str) -> Reaction:
    return registration.feed(parse(raw))


def sent(reaction: Reaction) -> list[str]:
    return [line.format(trailing=True) for line in reaction.send]


def plain(account: str, password: str) -> str:
    """The SASL PLAIN payload: authorisation and authentication identity, then the password."""
    return base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()


def test_a_session_opens_with_cap_ls_then_nick_and_user() -> None:
    lines = [line.format(trailing=True) for line in machine().start()]
    assert lines == ["CAP LS :302", "NICK :amy", "USER tuichat 0 * :tuichat user"]


def test_the_password_goes_as_pass_before_the_nick() -> None:
    lines = [line.format(trailing=True) for line in machine(password=SECRET).start()]
    assert lines == [
        "CAP LS :302",
        f"PASS :{SECRET}",
        "NICK :amy",
        "USER tuichat 0 * :tuichat user",
    ]


def test_cap_ls_over_several_lines_then_req_ack_end_and_the_welcome() -> None:
    reg = machine()
    first = feed(reg, ":srv CAP * LS * :multi-prefix sasl=PLAIN unknown/cap")
    assert first == Reaction(passed=False)  # more to come: nothing asked yet
    last = feed(reg, ":srv CAP * LS :server-time draft/chathistory chathistory echo-message")
    # in tuichat's order, the final chathistory instead of the draft, no SASL without a password
    assert sent(last) == ["CAP REQ :server-time echo-message chathistory multi-prefix"]
    assert not last.passed and last.events == ()
    ack = feed(reg, ":srv CAP amy ACK :server-time echo-message chathistory multi-prefix")
    assert sent(ack) == ["CAP :END"] and not ack.passed
    assert not reg.registered
    welcome = feed(reg, ":srv 001 amy :Welcome")
    caps = frozenset({"server-time", "echo-message", "chathistory", "multi-prefix"})
    assert welcome == Reaction(events=(Registered("amy", caps),), passed=True)
    assert reg.registered and reg.caps == caps and reg.nick == "amy"


def test_a_nak_ends_negotiation_without_caps() -> None:
    reg = machine()
    assert sent(feed(reg, ":srv CAP * LS :server-time")) == ["CAP REQ :server-time"]
    nak = feed(reg, ":srv CAP * NAK :server-time")
    assert sent(nak) == ["CAP :END"] and not nak.passed
    assert feed(reg, ":srv 001 amy :Welcome").events == (Registered("amy", frozenset()),)


def test_nothing_wanted_on_offer_ends_negotiation_at_once() -> None:
    reg = machine()
    assert sent(feed(reg, ":srv CAP * LS :unknown/one other")) == ["CAP :END"]


def test_sasl_plain_success() -> None:
    reg = machine(password=SECRET)
    assert sent(feed(reg, ":srv CAP * LS :server-time sasl=EXTERNAL,PLAIN")) == [
        "CAP REQ :server-time sasl"
    ]
    ack = feed(reg, ":srv CAP amy ACK :server-time sasl")
    assert sent(ack) == ["AUTHENTICATE :PLAIN"]  # not CAP END: SASL first
    challenge = feed(reg, "AUTHENTICATE +")
    assert sent(challenge) == [f"AUTHENTICATE :{plain('amy', SECRET)}"]
    assert not challenge.passed
    logged_in = feed(reg, ":srv 900 amy amy!u@h amy :You are now logged in as amy")
    assert logged_in == Reaction(passed=True)  # the app shows it
    success = feed(reg, ":srv 903 amy :SASL authentication successful")
    assert sent(success) == ["CAP :END"] and success.passed
    welcome = feed(reg, ":srv 001 amy :Welcome")
    assert welcome.events == (Registered("amy", frozenset({"server-time", "sasl"})),)


def test_sasl_failure_ends_negotiation_anyway() -> None:
    reg = machine(password=SECRET, account="amelia")
    feed(reg, ":srv CAP * LS :sasl")
    assert sent(feed(reg, ":srv CAP amy ACK :sasl")) == ["AUTHENTICATE :PLAIN"]
    assert sent(feed(reg, "AUTHENTICATE +")) == [f"AUTHENTICATE :{plain('amelia', SECRET)}"]
    failed = feed(reg, ":srv 904 amy :SASL authentication failed")
    assert sent(failed) == ["CAP :END"] and failed.passed and failed.events == ()
    # the server's 001 follows as usual, and CAP END is not sent twice
    assert feed(reg, ":srv 001 amy :Welcome").send == ()
    assert feed(reg, ":srv CAP amy ACK :away-notify").send == ()


@pytest.mark.parametrize(("length", "pieces", "plus"), [(300, [400], True), (301, [400, 4], False)])
def test_a_long_sasl_payload_goes_in_400_character_pieces(
    length: int, pieces: list[int], plus: bool
) -> None:
    """A payload of exactly a multiple of 400 characters is followed by `+` (IRCv3 SASL)."""
    password = "x" * (length - len("amy\0amy\0"))
    reg = machine(password=password)
    feed(reg, ":srv CAP * LS :sasl=PLAIN")
    feed(reg, ":srv CAP amy ACK :sasl")
    chunks = [line.params[0] for line in feed(reg, "AUTHENTICATE +").send]
    if plus:
        assert chunks.pop() == "+"
    assert [len(chunk) for chunk in chunks] == pieces
    assert "".join(chunks) == plain("amy", password)


def test_sasl_is_asked_only_for_plain_and_with_a_password() -> None:
    assert sent(feed(machine(password=SECRET), ":srv CAP * LS :sasl=EXTERNAL")) == ["CAP :END"]
    # a bare `sasl` (CAP 301) does not list its mechanisms: PLAIN is tried
    assert sent(feed(machine(password=SECRET), ":srv CAP * LS :sasl")) == ["CAP REQ :sasl"]
    assert sent(feed(machine(), ":srv CAP * LS :sasl=PLAIN")) == ["CAP :END"]


def test_a_server_without_cap_registers_us_all_the_same() -> None:
    reg = machine()
    unknown = feed(reg, ":srv 421 * CAP :Unknown command")
    assert unknown == Reaction(passed=True)
    welcome = feed(reg, ":srv 001 amy :Welcome")
    assert welcome == Reaction(events=(Registered("amy", frozenset()),), passed=True)


def test_a_nick_in_use_before_the_welcome_falls_back() -> None:
    reg = machine()
    taken = feed(reg, ":srv 433 * amy :Nickname is already in use")
    assert taken.events == (NickFallback("amy", "amy_", "Nickname is already in use"),)
    assert sent(taken) == ["NICK :amy_"] and taken.passed
    again = feed(reg, ":srv 433 * amy_ :Nickname is already in use")
    assert again.events == (NickFallback("amy_", "amy__", "Nickname is already in use"),)
    assert sent(again) == ["NICK :amy__"]
    assert feed(reg, ":srv 001 amy__ :Welcome").events == (Registered("amy__", frozenset()),)
    assert reg.nick == "amy__"
    # once registered, a refused NICK is the user's business: the app shows it
    assert feed(reg, ":srv 433 amy__ bob :Nickname is already in use") == Reaction(passed=True)
    assert reg.nick == "amy__"


def test_a_nick_at_the_length_limit_changes_its_last_character() -> None:
    long = "a" * p.NICKLEN
    reg = Registration(long, "u", "r", randint=lambda low, high: 7)
    taken = feed(reg, f":srv 433 * {long} :Nickname is already in use")
    assert sent(taken) == [f"NICK :{long[:-1]}7"]


def test_an_erroneous_nick_falls_back_to_a_guest_nick() -> None:
    reg = machine()
    refused = feed(reg, ":srv 432 * amy :Erroneous nickname")
    assert refused.events == (NickFallback("amy", "Guest1007", "Erroneous nickname"),)
    assert sent(refused) == ["NICK :Guest1007"]


def test_sts_on_a_plain_connection_asks_for_tls_and_no_caps() -> None:
    reg = machine()
    offer = feed(reg, ":srv CAP * LS :server-time sts=port=6697,duration=300")
    assert offer.send == () and not offer.passed
    assert offer.events == (
        StsUpgrade(6697, "upgrading to TLS on port 6697 (the server's STS policy)"),
    )


@pytest.mark.parametrize("value", ["port=0", "port=65536", "port=x", "duration=300"])
def test_sts_without_a_usable_port_is_ignored_over_plain_text(value: str) -> None:
    offer = feed(machine(), f":srv CAP * LS :server-time sts={value}")
    assert sent(offer) == ["CAP REQ :server-time"] and offer.events == ()


@pytest.mark.parametrize(
    ("value", "duration"), [("duration=300,port=6697", 300), ("duration=0", 0)]
)
def test_sts_over_tls_keeps_the_policy_and_negotiates_on(value: str, duration: int) -> None:
    offer = feed(machine(secure=True), f":srv CAP * LS :server-time sts={value}")
    assert offer.events == (StsPolicy(duration),)
    assert sent(offer) == ["CAP REQ :server-time"]


def test_a_wrong_server_password_is_refused_for_good() -> None:
    refused = feed(machine(password="wrong"), ":srv 464 * :Password incorrect")
    assert refused.events == (Refused("wrong server password (464); check --password"),)
    assert refused.passed and refused.send == ()


def test_our_nick_follows_nick_changes_after_the_welcome() -> None:
    reg = machine()
    feed(reg, ":srv 001 amy :Welcome")
    assert feed(reg, ":bob!u@h NICK bobby") == Reaction(passed=True)
    assert reg.nick == "amy"
    assert feed(reg, ":amy!u@h NICK amelia") == Reaction(passed=True)
    assert reg.nick == "amelia"


def test_the_password_is_not_in_the_machine_s_repr() -> None:
    reg = machine(password=SECRET)
    assert SECRET not in repr(reg)
    assert SECRET not in repr(feed(reg, ":srv CAP * LS :sasl"))
