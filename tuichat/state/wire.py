"""Wire formatting shared by the handlers: tags, numerics, middle parameters, truncation and
chunking into lines (server-time itself is the protocol module's)."""

from __future__ import annotations

from collections.abc import Iterable

from tuichat.net.protocol import Line, escape_tag_value
from tuichat.state.facts import Said
from tuichat.state.model import Channel, User
from tuichat.state.outbox import Variants


def _has_batch_tag(line: bytes) -> bool:
    if not line.startswith(b"@"):
        return False
    tags = line[1 : line.find(b" ")]
    return any(tag.startswith(b"batch=") for tag in tags.split(b";"))


def _add_tag(line: bytes, tag: bytes) -> bytes:
    """`line` (encoded, no CRLF) with one more tag."""
    if line.startswith(b"@"):
        return b"@" + tag + b";" + line[1:]
    return b"@" + tag + b" " + line


MAX_CLIENT_TAGS = 4094


def _client_tags(line: Line) -> dict[str, str]:
    """The client-only tags (`+typing`...) of a line, if they fit the spec's size limit."""
    if not line.tags:
        return {}
    tags = {key: value for key, value in line.tags.items() if key.startswith("+")}
    size = sum(len(key) + len(value) + 2 for key, value in tags.items())
    return tags if size <= MAX_CLIENT_TAGS else {}


def _tagged(
    source: str,
    account: str | None,
    command: str,
    target: str,
    text: str | None,
    client_tags: dict[str, str],
    msgid: str,
    time_ms: int,
    batch: str | None = None,
) -> Variants:
    """A message with the tags each recipient negotiated (TAGMSG only for message-tags)."""
    tags = tuple(client_tags.items())
    return Variants.of(Said(source, account, command, target, text, tags, msgid, time_ms, batch))


def _numeric(server: str, nick: str, numeric: str, *params: str) -> bytes:
    """A numeric line from `server` for `nick` (what `State._reply` sends), from plain strings:
    it can be built after the state lock is released."""
    middle = [_middle(param) for param in params[:-1]]
    return Line(numeric, (nick, *middle, *params[-1:]), source=server).encode(trailing=True)


def _status(modes: frozenset[str], multi: bool) -> str:
    """A member's status prefix from its channel modes (`Channel.prefix_of`, from a snapshot)."""
    if multi:
        return ("@" if "o" in modes else "") + ("+" if "v" in modes else "")
    return "@" if "o" in modes else "+" if "v" in modes else ""


def _statuses(chan: Channel) -> dict[User, frozenset[str]]:
    """The channel modes (`o`, `v`) of the members who have some, as they are now."""
    return {member: frozenset(modes) for member, modes in chan.members.items() if modes}


_NONE: frozenset[str] = frozenset()


def _middle(param: str) -> str:
    """`param` as a middle parameter: its first word, without leading colons, or `*`."""
    if param and " " not in param and not param.startswith(":"):
        return param
    return param.lstrip(":").split(" ", 1)[0].lstrip(":") or "*"


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: max(0, limit)].decode("utf-8", "ignore")


def _chunks(items: Iterable[str], head_len: int, limit: int = 510) -> list[str]:
    """Join `items` with spaces into strings that fit in a line after `head_len` bytes."""
    out: list[str] = []
    current = ""
    room = limit - head_len
    for item in items:
        if current and len((current + " " + item).encode()) > room:
            out.append(current)
            current = item
        else:
            current = f"{current} {item}" if current else item
    if current:
        out.append(current)
    return out


def _label_answer(server_name: str, label: str, lines: list[bytes], batch: bytes) -> bytes:
    """The answer to a labeled line: ACK, the one line tagged, or a labeled-response batch
    (`batch` its id) around the lines."""
    tag = b"label=" + escape_tag_value(label).encode()
    server = server_name.encode()
    if not lines:
        answer = b"@" + tag + b" :" + server + b" ACK\r\n"
    elif len(lines) == 1:
        answer = _add_tag(lines[0], tag) + b"\r\n"
    else:
        data = [_add_tag(b":" + server + b" BATCH +" + batch + b" labeled-response", tag)]
        # a line inside a nested batch (chathistory) keeps only its own batch tag
        data += [
            line if _has_batch_tag(line) else _add_tag(line, b"batch=" + batch) for line in lines
        ]
        data.append(b":" + server + b" BATCH -" + batch)
        answer = b"\r\n".join(data) + b"\r\n"
    return answer
