"""Deliveries as facts: what happened, as plain data (a message said, a join, a line relayed from a
user), and how each is rendered into bytes for one recipient's capabilities.

A handler produces a fact and hands the Outbox `Variants.of(fact)`; the in-process delivery
renders it once per kind of recipient (`kind`: what of a recipient's negotiation changes the
bytes). A sink to other server processes can publish the fact itself (`Variants.fact`), for each
process to render for its own connections. Facts hold only strings and numbers."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Protocol

from tuichat.net import protocol as p
from tuichat.net.protocol import escape_tag_value

# the tag bits of a recipient's tagmask (what it negotiated)
TAG_MESSAGE = 1  # message-tags: msgid and client-only tags
TAG_TIME = 2  # server-time
TAG_ACCOUNT = 4  # account-tag


class Recipient(Protocol):
    """What rendering needs of a recipient."""

    @property
    def tagmask(self) -> int: ...

    @property
    def caps(self) -> set[str]: ...


def by_tags(recipient: Recipient) -> int:
    return recipient.tagmask


def by_account_tag(recipient: Recipient) -> bool:
    return bool(recipient.tagmask & TAG_ACCOUNT)


def by_join(recipient: Recipient) -> Hashable:
    return (recipient.tagmask, "extended-join" in recipient.caps)


@dataclass(frozen=True, slots=True)
class Said:
    """A PRIVMSG or NOTICE (`text`), or a TAGMSG (`text` None: only for message-tags), with the
    tags each recipient negotiated: server-time, msgid and the client's tags, account-tag."""

    source: str
    account: str | None
    command: str
    target: str
    text: str | None
    client_tags: tuple[tuple[str, str], ...]
    msgid: str
    time_ms: int
    batch: str | None = None  # inside a batch (chathistory) of the recipient's own
    _data: bytes = field(init=False, repr=False, compare=False)
    _extra: str = field(init=False, repr=False, compare=False)
    _stamp: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # what every recipient shares, encoded once
        body = f":{self.source} {self.command} {self.target}"
        if self.text is not None:
            body += f" :{self.text}"
        object.__setattr__(self, "_data", (body + "\r\n").encode("utf-8", "replace"))
        extra = ";".join(
            f"{key}={escape_tag_value(value)}" if value else key for key, value in self.client_tags
        )
        object.__setattr__(self, "_extra", extra)
        object.__setattr__(self, "_stamp", "time=" + p.format_server_time(self.time_ms))

    kind = staticmethod(by_tags)

    def render(self, recipient: Recipient) -> bytes:
        mask = recipient.tagmask
        if self.text is None and not mask & TAG_MESSAGE:
            return b""
        parts = [f"batch={self.batch}"] if self.batch else []
        if mask & TAG_TIME:
            parts.append(self._stamp)
        if mask & TAG_MESSAGE:
            parts.append("msgid=" + self.msgid)
            if self._extra:
                parts.append(self._extra)
        if mask & TAG_ACCOUNT and self.account:
            parts.append("account=" + self.account)
        if not parts:
            return self._data
        return ("@" + ";".join(parts) + " ").encode("utf-8", "replace") + self._data


@dataclass(frozen=True, slots=True)
class Joined:
    """A JOIN: with extended-join, the account and real name too; server-time and account-tag
    as negotiated."""

    source: str
    account: str | None
    realname: str
    channel: str
    time_ms: int

    kind = staticmethod(by_join)

    def render(self, recipient: Recipient) -> bytes:
        text = f":{self.source} JOIN {self.channel}"
        if "extended-join" in recipient.caps:
            text += f" {self.account or '*'} :{self.realname}"
        tags = (
            ["time=" + p.format_server_time(self.time_ms)] if recipient.tagmask & TAG_TIME else []
        )
        if self.account and recipient.tagmask & TAG_ACCOUNT:
            tags.append("account=" + escape_tag_value(self.account))
        if tags:
            text = "@" + ";".join(tags) + " " + text
        return (text + "\r\n").encode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Relayed:
    """Any other line from a user (PART, QUIT, NICK, TOPIC, KICK, MODE, AWAY...), already cut to
    fit a line, with account-tag for those who negotiated it."""

    account: str
    data: bytes  # the line, CRLF included

    kind = staticmethod(by_account_tag)

    def render(self, recipient: Recipient) -> bytes:
        if recipient.tagmask & TAG_ACCOUNT:
            return b"@account=" + escape_tag_value(self.account).encode() + b" " + self.data
        return self.data


Fact = Said | Joined | Relayed
