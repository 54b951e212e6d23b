"""Registration of one client connection, sans I/O: CAP negotiation, SASL PLAIN, the nick fallback
and the welcome, as a state machine fed the server's lines.

`Registration.start()` gives the lines that open a session; `feed(line)` gives a `Reaction`: the
lines to send, the events that happened, and whether the line goes on to the app. No sockets, no
threads, no clock, no files: `net.Client` does the I/O (and keeps the STS policy file), so that
tests drive the whole exchange line by line (h11 is the model). One machine lives for one
connection; a new connection starts a new one. The password goes out only in PASS and
AUTHENTICATE lines, and is never part of an event or a repr.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from dataclasses import dataclass

from tuichat.net import protocol as p
from tuichat.net.protocol import Line

# the capabilities tuichat asks for when the server offers them
WANTED_CAPS = (
    "message-tags",
    "server-time",
    "echo-message",
    "batch",
    "labeled-response",
    "draft/chathistory",
    "chathistory",
    "away-notify",
    "account-notify",
    "extended-join",
    "multi-prefix",
    "invite-notify",
    "setname",
    "draft/read-marker",
)
SASL_NUMERICS = frozenset(
    {
        p.RPL_LOGGEDIN,
        p.RPL_SASLSUCCESS,
        p.ERR_SASLFAIL,
        p.ERR_SASLTOOLONG,
        p.ERR_SASLABORTED,
        p.ERR_SASLALREADY,
        p.RPL_SASLMECHS,
    }
)
# the replies that end a SASL exchange, whichever way it went
SASL_DONE = frozenset(
    {p.RPL_SASLSUCCESS, p.ERR_SASLFAIL, p.ERR_SASLTOOLONG, p.ERR_SASLABORTED, p.ERR_SASLALREADY}
)
# the nick refused at registration: another is tried
NICK_REFUSED = frozenset(
    {p.ERR_ERRONEUSNICKNAME, p.ERR_NICKNAMEINUSE, p.ERR_NICKCOLLISION, p.ERR_UNAVAILRESOURCE}
)
SASL_CHUNK = 400  # AUTHENTICATE carries the base64 payload in pieces of this many characters


# What happened: the first two are handed on to the app as they are, the rest are for the client


@dataclass(frozen=True)
class Registered:
    nick: str
    caps: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NickFallback:
    """The nick was taken (or refused) at registration; `new` is tried instead."""

    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class StsUpgrade:
    """The server's STS policy, offered over plain text: this connection ends without registering
    and the next one goes over TLS to `port` at once."""

    port: int
    reason: str


@dataclass(frozen=True)
class StsPolicy:
    """The server's STS policy, offered over TLS: keep TLS to this server for `duration` seconds
    (0: drop the policy)."""

    duration: int


@dataclass(frozen=True)
class Refused:
    """The server refused us for a reason that trying again does not cure."""

    reason: str


Event = Registered | NickFallback | StsUpgrade | StsPolicy | Refused


@dataclass(frozen=True)
class Reaction:
    """What one line from the server calls for: events first, then the lines to send."""

    send: tuple[Line, ...] = ()
    events: tuple[Event, ...] = ()
    passed: bool = True  # the line goes on to the app


class Registration:
    """One connection's registration, from CAP LS to the welcome (and the nick after it)."""

    def __init__(
        self,
        nick: str,
        username: str,
        realname: str,
        password: str | None = None,
        account: str | None = None,
        secure: bool = False,
        randint: Callable[[int, int], int] = random.randint,
    ) -> None:
        """`password` is sent as PASS and used for SASL PLAIN (as `account`, by default the nick)
        when the server offers it; `secure`: the connection is TLS (it decides what an STS
        policy means); `randint` picks the digits of a fallback nick."""
        self.nick = nick  # ours now: the fallback tried, the welcome's, then NICK changes
        self._username = username
        self._realname = realname
        self._password = password
        self._account = account or nick
        self._secure = secure
        self._randint = randint
        self.registered = False
        self.caps: frozenset[str] = frozenset()  # acknowledged by the server
        self._offered: dict[str, str] = {}  # CAP LS so far: name -> value
        self._cap_done = False
        self._send: list[Line] = []
        self._events: list[Event] = []

    def __repr__(self) -> str:
        return f"<Registration {self.nick!r} registered={self.registered}>"

    def start(self) -> list[Line]:
        """The lines that open the session.

        CAP LS first: a server that knows CAP holds registration until CAP END; one that does
        not answers 421 and registers us with the NICK and USER that follow."""
        lines = [Line("CAP", ("LS", "302"))]
        if self._password:
            lines.append(Line("PASS", (self._password,)))
        lines.append(Line("NICK", (self.nick,)))
        lines.append(Line("USER", (self._username, "0", "*", self._realname)))
        return lines

    def feed(self, line: Line) -> Reaction:
        """React to one line from the server (PING and the lag probes are the client's)."""
        self._send, self._events = [], []
        passed = self._handle(line)
        return Reaction(tuple(self._send), tuple(self._events), passed)

    def _handle(self, line: Line) -> bool:
        command = line.command
        if command == "CAP" and len(line.params) >= 3:
            self._cap(line)
            return False
        if command == "AUTHENTICATE" or (command in SASL_NUMERICS and not self.registered):
            self._sasl(line)
            return command != "AUTHENTICATE"
        if command == p.RPL_WELCOME:
            self.registered = True
            self._cap_done = True
            if line.params:
                self.nick = line.params[0]
            self._events.append(Registered(self.nick, self.caps))
        elif not self.registered and command in NICK_REFUSED:
            old = self.nick
            if command == p.ERR_ERRONEUSNICKNAME:
                self.nick = f"Guest{self._randint(1000, 9999)}"
            else:
                self.nick = (
                    old + "_" if len(old) < p.NICKLEN else old[:-1] + str(self._randint(0, 9))
                )
            reason = line.params[-1] if line.params else "nickname unavailable"
            self._events.append(NickFallback(old, self.nick, reason))
            self._send.append(Line("NICK", (self.nick,)))
        elif command == p.ERR_PASSWDMISMATCH and not self.registered:
            self._events.append(Refused("wrong server password (464); check --password"))
        elif command == "NICK" and line.nick == self.nick and line.params:
            self.nick = line.params[0]
        return True

    def _cap(self, line: Line) -> None:
        """CAP negotiation: ask for what tuichat understands, log in with SASL if we can."""
        sub = line.params[1].upper()
        if sub == "LS":
            more = len(line.params) > 3 and line.params[2] == "*"
            for item in line.params[-1].split():
                name, _, value = item.partition("=")
                self._offered[name] = value
            if more:
                return
            if "sts" in self._offered and self._sts(self._offered["sts"]):
                return  # this plain-text connection ends here
            wanted = [name for name in WANTED_CAPS if name in self._offered]
            if "draft/chathistory" in wanted and "chathistory" in wanted:
                wanted.remove("draft/chathistory")
            sasl = self._offered.get("sasl")
            if self._password and sasl is not None and "PLAIN" in (sasl or "PLAIN").split(","):
                wanted.append("sasl")
            if wanted:
                self._send.append(Line("CAP", ("REQ", " ".join(wanted))))
            else:
                self._end_cap()
        elif sub == "ACK":
            self.caps = self.caps | frozenset(line.params[-1].split())
            if "sasl" in self.caps and not self.registered:
                self._send.append(Line("AUTHENTICATE", ("PLAIN",)))
            else:
                self._end_cap()
        elif sub == "NAK":
            self._end_cap()

    def _sts(self, value: str) -> bool:
        """The server's STS policy (IRCv3 sts): over plain text, `port=P` means go TLS on P now,
        without registering (True); over TLS, `duration=D` keeps the policy for D seconds (0
        drops it)."""
        fields = dict(item.partition("=")[::2] for item in value.split(","))
        if not self._secure:
            port = fields.get("port", "")
            if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
                reason = f"upgrading to TLS on port {port} (the server's STS policy)"
                self._events.append(StsUpgrade(int(port), reason))
                return True
            return False
        duration = fields.get("duration", "")
        if duration.isascii() and duration.isdigit():
            self._events.append(StsPolicy(int(duration)))
        return False

    def _end_cap(self) -> None:
        if not self._cap_done:
            self._cap_done = True
            self._send.append(Line("CAP", ("END",)))

    def _sasl(self, line: Line) -> None:
        if line.command == "AUTHENTICATE":
            if line.params and line.params[0] == "+":
                account, password = self._account, self._password or ""
                token = f"{account}\0{account}\0{password}".encode()
                encoded = base64.b64encode(token).decode()
                for start in range(0, len(encoded), SASL_CHUNK):
                    chunk = encoded[start : start + SASL_CHUNK]
                    self._send.append(Line("AUTHENTICATE", (chunk,)))
                if len(encoded) % SASL_CHUNK == 0:
                    self._send.append(Line("AUTHENTICATE", ("+",)))
            return
        # registration goes on either way
        if line.command in SASL_DONE:
            self._end_cap()
