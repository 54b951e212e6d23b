"""One client connection on the server: its socket, its input (`Reader`: received bytes cut into
parsed lines that wait for the flood control, `TokenBucket`) and its queued output
(`Connection`: what its writer will send, the send-queue bound, closing). Also what the debug
log must not show (`redacted`)."""

from __future__ import annotations

import collections
import contextlib
import logging
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

from tuichat import tls
from tuichat.net.protocol import (
    Line,
    LineBuffer,
    ParseError,
    TooLong,
    Unparsable,
    parse,
)
from tuichat.server.config import ServerConfig
from tuichat.state import User

if TYPE_CHECKING:
    from tuichat.server import Server

log = logging.getLogger("tuichat.server")

RECV_SIZE = 16384

IDLE_RECV_SIZE = 512

# what a client's reader thread gets from `LineBuffer.lines`; every one waits its flood-control
# turn, a line that is too long or not IRC too
Received = Line | TooLong | Unparsable

# commands whose parameters are secrets, and how many leading parameters stay readable
SECRET_COMMANDS = {"PASS": 0, "OPER": 1, "AUTHENTICATE": 0, "REGISTER": 2, "NICKSERV": 0, "NS": 0}

SERVICES = frozenset({"nickserv", "nickserv@services"})


def redacted(item: str) -> str:
    """A received line as the debug log may show it: passwords and SASL payloads (PASS, OPER,
    AUTHENTICATE, REGISTER, and IDENTIFY sent to NickServ) replaced by `<redacted>`."""
    try:
        line = parse(item)
    except ParseError:
        return item
    command = line.command.upper()
    keep = SECRET_COMMANDS.get(command)
    to_services = bool(line.params) and line.params[0].lower() in SERVICES
    if keep is None and command in ("PRIVMSG", "NOTICE") and to_services:
        keep = 1  # the target stays; what is said to NickServ may be IDENTIFY <password>
    if keep is None or len(line.params) <= keep:
        return item
    return " ".join([line.command, *line.params[:keep], "<redacted>"])


class TokenBucket:
    """Flood control: `burst` lines at once, then `rate` a second (rate 0: no limit)."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, burst: int, rate: float) -> None:
        self.burst = max(1, burst)
        self.rate = rate
        self.tokens = float(self.burst)
        self.last = time.monotonic()

    def take(self, exempt: bool = False) -> bool:
        """Whether one more line may be handled now (taking it from the bucket)."""
        if self.rate <= 0 or exempt:
            return True
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def charge(self, tokens: float) -> None:
        """Take `tokens` more for what a line cost (a big reply): the next lines wait for them."""
        if self.rate > 0:
            self.tokens -= tokens

    def refund(self, tokens: int) -> None:
        """Give back what lines that were taken but not handled paid."""
        if self.rate > 0:
            self.tokens = min(float(self.burst), self.tokens + tokens)

    def wait_time(self) -> float:
        """Seconds until the next line may be handled."""
        return max(0.001, (1.0 - self.tokens) / self.rate) if self.rate > 0 else 0.0


class Reader:
    """One client's input: received bytes cut into lines that wait for the flood control."""

    __slots__ = ("bucket", "buffer", "conn", "ended", "flood_queue", "reason", "seen", "waiting")

    def __init__(self, conn: Connection, config: ServerConfig, debug: bool = False) -> None:
        self.conn = conn
        self.buffer = LineBuffer()
        self.bucket = TokenBucket(config.flood_burst, config.flood_rate)
        self.flood_queue = config.flood_queue if config.flood_rate > 0 else 1 << 30
        # parsed as they come (outside the state lock), then waiting for the flood control
        self.waiting: collections.deque[Received] = collections.deque()
        self.seen = self._log_received if debug else None
        self.reason = "Remote host closed the connection"
        self.ended = False

    def read(self, block: bool) -> bool:
        """Receive what there is (waiting for it when `block`). False when the connection ended
        with nothing more to handle; True with `ended` set when it ended after what was read."""
        sock = self.conn.sock
        try:
            if block:
                # recv() holds a buffer of the size asked for while it waits: an idle client's
                # thread waits with a small one, and a full one means there is more to take
                data = sock.recv(IDLE_RECV_SIZE)
                if len(data) == IDLE_RECV_SIZE:
                    try:
                        data += sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        pass
                    except OSError as error:  # a reset after those bytes: they count first
                        self._read_error(error)
                        self.take(data)
                        return True  # the caller handles them, then sees `ended`
            else:
                data = sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError as error:
            self._read_error(error)
            return False
        if not data:
            self.ended = True
            return False
        return self.take(data)

    def _read_error(self, error: OSError) -> None:
        self.reason = f"Read error: {error.strerror or error}"
        self.ended = True

    def take(self, data: bytes) -> bool:
        """Add received bytes (decrypted first with TLS); False when the connection ended."""
        session = self.conn.tls
        if session is not None:
            try:
                data, closed = session.decrypt(data)
            except ssl.SSLError as error:
                self.reason = f"TLS error: {error.reason or error}"
                self.ended = True
                return False
            if session.has_output():
                self.conn.kick()
            if closed:
                self.ended = True
                return False
        if data:
            self.waiting.extend(self.buffer.lines(data, self.seen))
        return True

    def _log_received(self, text: str) -> None:
        log.debug("%s <- %r", self.conn.address, redacted(text))

    def flooding(self, exempt: bool) -> bool:
        return len(self.waiting) > self.flood_queue and not exempt


class Connection:
    """One client's socket and outbound buffer. The writer thread owns `pending` and the epoll
    registration; `lock` guards only `outbuf`, `dirty` and `closing`, and is never held across a
    system call."""

    __slots__ = (
        "sock",
        "fd",
        "address",
        "user",
        "lock",
        "outbuf",
        "dirty",
        "closing",
        "close_reason",
        "retired",
        "closed",
        "pending",
        "counted",
        "discard",
        "watched",
        "tls",
        "_server",
        "sendq",
        "writer",
        "held",
    )

    def __init__(
        self, sock: socket.socket, address: str, server: Server, tls: tls.MemoryTLS | None = None
    ) -> None:
        self.sock = sock
        self.tls = tls
        self.fd = sock.fileno()
        self.address = address
        self._server = server
        self.sendq = server.config.sendq
        self.writer = server.writers[self.fd % len(server.writers)]
        self.user: User | None = None
        self.lock = threading.Lock()
        self.outbuf = bytearray()
        self.dirty = False
        self.closing = False
        self.close_reason: str | None = None
        self.retired = False
        self.closed = False
        self.pending: bytearray | None = None
        self.counted = 0  # how much of `pending` the writer's `held` counts
        self.discard = False  # the writer is to drop `pending` (all but the line begun)
        self.watched = False
        # while the client's own thread renders a big reply: what else comes for it meanwhile
        self.held: bytearray | None = None

    def queued(self) -> int:
        """Bytes waiting to go out: buffered here, held for after a reply, held by the writer."""
        pending, held = self.pending, self.held
        return (
            len(self.outbuf)
            + (len(pending) if pending is not None else 0)
            + (len(held) if held is not None else 0)
        )

    def deliver(self, data: bytes) -> None:
        """Queue `data` for this client (from any thread)."""
        self._queue(data, release=False)

    def hold(self) -> None:
        """Keep what is delivered from now on for after `release` (under the state lock, by the
        client's own thread, which renders a reply from a snapshot taken under it)."""
        with self.lock:
            self.held = bytearray()

    def release(self, data: bytes) -> None:
        """Queue the reply `data`, then what was held since `hold`."""
        self._queue(data, release=True)

    def _queue(self, data: bytes, release: bool) -> None:
        with self.lock:
            if release:
                held, self.held = self.held, None
                if held:
                    data = data + held
            if self.closing:
                return
            overflow = self.queued() + len(data) > self.sendq
            if overflow:
                self.held = None  # the client is dropped: nothing more of it is sent
            elif self.held is not None:
                self.held += data
                return
            else:
                self.outbuf += data
                if self.dirty:
                    return
                self.dirty = True
        if overflow:
            self.close_reason = "SendQ exceeded"
            self.close("Closing link (SendQ exceeded)", drop_queued=True)
        else:
            self.writer.schedule(self)

    def kick(self) -> None:
        """Have the writer look at this connection (TLS has bytes of its own to send)."""
        with self.lock:
            if self.dirty or self.closed:
                return
            self.dirty = True
        self.writer.schedule(self)

    def close(
        self, error: str | None, *, drop_queued: bool = False, wake_reader: bool = True
    ) -> None:
        """Send `ERROR :error` after what is queued (or instead of it: `drop_queued`, which
        frees what the writer holds too, but for the end of a line begun on the wire), then end
        the connection.

        The reader thread wakes up (its socket is shut for reading) and cleans up; without
        `wake_reader`, the caller calls `wake_reader()` later."""
        with self.lock:
            if self.closing:
                return
            self.closing = True
            if self.close_reason is None and error:  # the reason the log gives
                self.close_reason = error.removeprefix("Closing link (").removesuffix(")")
            if drop_queued:
                self.outbuf = bytearray()
                self.discard = True
            if error is not None:
                self.outbuf += Line("ERROR", (error,)).encode(trailing=True)
            schedule = not self.dirty
            self.dirty = True
        if schedule:
            self.writer.schedule(self)
        if wake_reader:
            self.wake_reader()

    def wake_reader(self) -> None:
        """Shut the socket for reading: the reader thread wakes up and finishes."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)
