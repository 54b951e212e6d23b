"""Password guessing (issue 10, item 12): OPER and SASL attempts are throttled per operator name
or account and per address, across connections, with a growing delay; a success resets.

Times past a delay come from the server's clock, replaced here by one the test moves."""

from __future__ import annotations

import base64

from tuichat.server import Server, ServerConfig
from tuichat.state import Config

from .helpers import OPER, Client, Connect, StartServer

ACCOUNT_PASSWORD = "correct-horse-battery"


class Clock:
    """A wall clock the test moves (the server reads it for every batch of lines)."""

    def __init__(self, server: Server) -> None:
        self.now = server.clock()
        server.clock = self

    def __call__(self) -> float:
        return self.now


def oper(client: Client, name: str, password: str) -> str:
    client.send(f"OPER {name} {password}")
    return client.expect(r"^:\S+ (381|464|491) ").string


def sasl(client: Client, account: str, password: str) -> str:
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^(AUTHENTICATE \+|:\S+ 90[4-7] )")
    payload = base64.b64encode(f"\0{account}\0{password}".encode()).decode()
    client.send("AUTHENTICATE " + payload)
    return client.expect(r"^:\S+ (903|904) ").string


def test_oper_guesses_from_many_connections_are_refused_after_a_few(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(ServerConfig(state=Config(opers=dict([OPER]))))
    clock = Clock(server)
    guessers = [connect(f"guesser{i}", server=server) for i in range(4)]
    replies = [oper(guessers[i % 4], OPER[0], f"guess{i}") for i in range(8)]
    assert [" 464 " in reply for reply in replies] == [True] * 5 + [False] * 3
    assert all(" 491 " in r and "try again in" in r for r in replies[5:]), replies
    # while the delay runs, even the right password is not checked
    assert " 491 " in oper(guessers[0], *OPER)
    clock.now += 1.5  # the first delay (1 s) passed: one more try, the next waits 2 s
    assert " 464 " in oper(guessers[1], OPER[0], "guess-again")
    assert " 491 " in oper(guessers[2], *OPER)
    clock.now += 2.5
    assert " 381 " in oper(guessers[3], *OPER)  # right: and the count starts again
    assert " 464 " in oper(guessers[0], OPER[0], "one-typo")


def test_oper_guesses_for_many_names_from_one_address_are_refused(
    start_server: StartServer, connect: Connect
) -> None:
    server = start_server(ServerConfig(state=Config(opers=dict([OPER]))))
    guessers = [connect(f"guesser{i}", server=server) for i in range(4)]
    replies = [oper(guessers[i % 4], f"name{i}", "guess") for i in range(24)]
    assert sum(" 464 " in reply for reply in replies) == 20
    assert all(" 491 " in reply for reply in replies[20:]), replies
    # another address is not held up
    other = connect("elsewhere", server=server, source="127.0.0.2")
    assert " 381 " in oper(other, *OPER)


def registered_account(connect: Connect, server: Server, name: str) -> None:
    owner = connect(server=server).register_with_caps(name, ["sasl"])
    owner.send(f"REGISTER * * {ACCOUNT_PASSWORD}")
    owner.expect(r"^:\S+ REGISTER SUCCESS ")
    owner.send("QUIT")
    owner.expect_closed()


def test_sasl_guesses_from_many_connections_are_refused_after_a_few(
    start_server: StartServer, connect: Connect, db_path: object
) -> None:
    server = start_server(ServerConfig(db=str(db_path)))
    clock = Clock(server)
    registered_account(connect, server, "alice")
    # each connection is closed after 3 failures: the old bound; here 3 connections share one
    guessers = [connect(server=server).register_with_caps(f"g{i}", ["sasl"]) for i in range(3)]
    replies = [sasl(guessers[i % 3], "alice", f"guess{i}") for i in range(7)]
    assert all(reply.endswith(":SASL authentication failed") for reply in replies[:5]), replies
    assert all(" 904 " in r and "try again in" in r for r in replies[5:]), replies
    assert "try again in" in sasl(guessers[0], "alice", ACCOUNT_PASSWORD)
    clock.now += 1.5
    assert " 903 " in sasl(guessers[1], "alice", ACCOUNT_PASSWORD)


def test_sasl_guesses_for_one_account_from_many_addresses_are_refused(
    start_server: StartServer, connect: Connect, db_path: object
) -> None:
    server = start_server(ServerConfig(db=str(db_path)))
    registered_account(connect, server, "alice")
    replies = []
    for i in range(7):
        guesser = connect(server=server, source=f"127.0.0.{i + 2}")
        guesser.register_with_caps(f"g{i}", ["sasl"])
        replies.append(sasl(guesser, "alice", f"guess{i}"))
    assert all(reply.endswith(":SASL authentication failed") for reply in replies[:5]), replies
    assert all("try again in" in reply for reply in replies[5:]), replies
    # another account is not held up
    registered_account(connect, server, "bob")
    other = connect(server=server, source="127.0.0.20").register_with_caps("x", ["sasl"])
    assert " 903 " in sasl(other, "bob", ACCOUNT_PASSWORD)
