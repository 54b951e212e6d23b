"""Registration and error numerics over a real socket."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tuichat.server import ServerConfig
from tuichat.state import Config

from .helpers import END_OF_WELCOME, Connect, StartServer

pytestmark = pytest.mark.timeout(30)


def test_registration_welcome_burst(connect: Connect) -> None:
    client = connect()
    client.send("NICK alice")
    client.send("USER alice 0 * :Alice Liddell")
    assert client.expect(r"^:tuichat 001 alice :Welcome to the tuichat IRC Network (\S+)")[1] == (
        "alice!~alice@127.0.0.1"
    )
    for numeric in ("002", "003", "004", "005", "251"):
        client.expect(rf"^:tuichat {numeric} alice ")
    client.expect(END_OF_WELCOME)
    client.send("WHOIS alice")
    match = client.expect(r"^:tuichat 311 alice alice (\S+) (\S+) \* :(.*)$")
    assert match.groups() == ("~alice", "127.0.0.1", "Alice Liddell")


def test_user_before_nick_also_registers(connect: Connect) -> None:
    client = connect()
    client.send("USER bob 0 * :Bob")
    client.send("NICK bob")
    client.expect(r"^:tuichat 001 bob ")


def test_cap_negotiation_holds_registration_until_cap_end(connect: Connect) -> None:
    client = connect()
    client.send("CAP LS 302")
    client.expect(r"^:tuichat CAP \* LS :")
    client.send("NICK capper")
    client.send("USER capper 0 * :Cap")
    assert not any(" 001 " in line for line in client.sync())
    client.send("CAP REQ :no-such-cap")
    client.expect(r"^:tuichat CAP capper NAK :no-such-cap$")
    client.send("CAP END")
    client.expect(r"^:tuichat 001 capper ")


def test_registration_errors(connect: Connect) -> None:
    connect("taken")
    client = connect()
    client.send("JOIN #early")
    client.expect(r"^:tuichat 451 \* :You have not registered$")
    client.send("FROB")
    client.expect(r"^:tuichat 451 \* :You have not registered$")
    client.send("NICK")
    client.expect(r"^:tuichat 431 \* :No nickname given$")
    client.send("NICK 1abc")
    client.expect(r"^:tuichat 432 \* 1abc :Erroneous nickname$")
    client.send("NICK TAKEN")  # nicks compare case-insensitively
    client.expect(r"^:tuichat 433 \* TAKEN :Nickname is already in use$")
    client.send("USER onlyone")
    client.expect(r"^:tuichat 461 \* USER :Not enough parameters$")
    # none of that registered or broke the connection
    assert not any(" 001 " in line for line in client.sync())
    client.register("fresh")
    client.send("USER again 0 * :again")
    client.expect(r"^:tuichat 462 fresh :You may not reregister$")
    client.send("PASS whatever")
    client.expect(r"^:tuichat 462 fresh :You may not reregister$")
    client.send("FROB the thing")
    client.expect(r"^:tuichat 421 fresh FROB :Unknown command$")
    client.send("JOIN")
    client.expect(r"^:tuichat 461 fresh JOIN :Not enough parameters$")
    client.send("NICK taken")
    client.expect(r"^:tuichat 433 fresh taken :Nickname is already in use$")


@pytest.mark.parametrize("password", [None, "wrong", "Sesame"])
def test_bad_password_is_refused_and_closed(
    connect: Connect, start_server: StartServer, password: str | None
) -> None:
    server = start_server(ServerConfig(state=Config(password="sesame")))
    client = connect(server=server)
    if password is not None:
        client.send(f"PASS {password}")
    client.send("NICK mallory")
    client.send("USER mallory 0 * :Mallory")
    client.expect(r"^:tuichat 464 mallory :Password incorrect$")
    client.expect(r"^ERROR :Closing link \(Bad password\)$")
    assert client.expect_closed() == []


@pytest.fixture
def slow_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the server's writer thread linger 200 ms after each send, as a thread descheduled
    under load does: it turns a rare race into a certain one."""
    original = socket.socket.send

    def send(self: socket.socket, data: bytes, flags: int = 0, /) -> int:
        sent = original(self, data, flags)
        if threading.current_thread().name == "tuichat-writer":
            time.sleep(0.2)
        return sent

    monkeypatch.setattr(socket.socket, "send", send)


@pytest.mark.usefixtures("slow_writer")
def test_the_error_line_after_quit_arrives_while_the_writer_is_busy(connect: Connect) -> None:
    for attempt in range(3):
        client = connect()
        client.send(f"PING :{attempt}")
        # the writer has sent the PONG and is still busy when the QUIT comes
        client.expect(rf"^:tuichat PONG tuichat :{attempt}$")
        client.send("QUIT :bye")
        assert client.expect_closed() == ["ERROR :Closing link (Quit: bye)"], attempt


def test_right_password_registers(connect: Connect, start_server: StartServer) -> None:
    server = start_server(ServerConfig(state=Config(password="sesame")))
    client = connect(server=server)
    client.register("alice", password="sesame")
    assert client.sync() == []


def test_too_long_line_gets_417_and_the_connection_still_works(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#c")
    bob.join("#c")
    alice.send("PRIVMSG #c :" + "x" * 600)
    alice.expect(r"^:tuichat 417 alice :Input line was too long$")
    # an endless-looking line, sent in pieces, is dropped as one line too
    alice.send_raw(b"PRIVMSG #c :" + b"y" * 20000)
    alice.send_raw(b"z" * 20000 + b"\r\n")
    alice.expect(r"^:tuichat 417 alice :Input line was too long$")
    # a line of exactly 512 bytes with CRLF is still fine
    head = "PRIVMSG #c :"
    text = "w" * (510 - len(head))
    alice.send(head + text)
    alice.send("PRIVMSG #c :still here")
    # relayed with alice's prefix in front, the text is cut so the line still fits 512 bytes
    relayed = bob.expect(r"^:alice!\S+ PRIVMSG #c :(w+)$")
    assert len(relayed[0].encode()) + 2 == 512
    assert text.startswith(relayed[1])
    bob.expect(r"^:alice!\S+ PRIVMSG #c :still here$")
    assert not any("x" * 10 in line or "y" * 10 in line for line in bob.sync())
    assert alice.sync() == []


def test_invalid_utf8_and_nul_do_not_kill_the_connection(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#c")
    bob.join("#c")
    alice.send(b"PRIVMSG #c :caf\xe9 \xff\xfe ok")
    alice.send(b"PRIVMSG #c :nul\x00byte")
    alice.send(b"\x00\xff\x00")
    alice.send(b"PRIVMSG #c :after")
    first = bob.expect(r"^:alice!\S+ PRIVMSG #c :caf(.*) ok$")[1]
    # the server passes on valid UTF-8: replacement characters, no raw bytes
    assert first == "\ufffd \ufffd\ufffd"
    assert bob.expect(r"^:alice!\S+ PRIVMSG #c :nul(.*)byte$")[1] == "\ufffd"
    bob.expect(r"^:alice!\S+ PRIVMSG #c :after$")
    alice.sync()
    alice.send("WHOIS bob")
    alice.expect(r"^:tuichat 318 alice bob ")


def test_a_bare_cr_never_reaches_another_client_inside_a_line(connect: Connect) -> None:
    alice = connect("alice")
    bob = connect("bob")
    alice.join("#c")
    bob.join("#c")
    bob.sync()
    # a client that splits on CR would read the second half as a line from the server
    alice.send(b"PRIVMSG #c :one\r:evil!e@example PRIVMSG #c :spoofed")
    alice.send(b"PRIVMSG bob :two\rNOTICE #c :x")
    alice.sync()
    lines = bob.sync()
    assert lines, "nothing was passed on"
    assert [line for line in lines if "\r" in line] == []
    assert all(line.startswith(":alice!") for line in lines), lines
