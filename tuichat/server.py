"""The threaded IRC server: an accept loop, a reader thread per client, one writer thread.

Each client's reader thread reads whole `recv()`s, handles every complete line under the state
lock (`tuichat.state`), and then, with the lock released, appends each recipient's share of the
output to that recipient's outbound buffer. A single writer thread sends each dirty buffer in one
non-blocking `send`; what a slow client cannot take stays writer-side and waits for the socket to
become writable. A client whose queued output passes the send-queue bound is disconnected
("SendQ exceeded"), so a client that stops reading never slows anybody else; and when what the
writers hold for all clients together passes `--max-output-memory`, the largest queues are cut
off the same way (`OutputBudget`).
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import logging
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tuichat import gc_tuning, tls
from tuichat.failures import Failures
from tuichat.limits import address_key as _address_key
from tuichat.net.protocol import (
    DEFAULT_PORT,
    Line,
    LineBuffer,
    ParseError,
    TooLong,
    Unparsable,
    parse,
)
from tuichat.state import Config, Outbox, State, User
from tuichat.store import Store

log = logging.getLogger("tuichat.server")

DEFAULT_SENDQ = 1024 * 1024
# output held for all clients together; past it the largest queues are cut off until they hold
# TRIM_TO of it (1,000 clients that stop reading would otherwise hold 1 MiB each)
DEFAULT_MAX_OUTPUT_MEMORY = 256 * 1024 * 1024
TRIM_TO = 0.9
RECV_SIZE = 16384
IDLE_RECV_SIZE = 512
HANDSHAKE_TIMEOUT = 10.0
STS_DURATION = 30 * 86400
SNDBUF = 256 * 1024
# after a round of LINGER_AFTER connections or more, the writer waits LINGER seconds: a little
# latency for far fewer system calls when a big channel is busy
LINGER = 0.001
LINGER_AFTER = 64
WRITERS = 2  # threads that send; each connection belongs to one
FULL_GC_EVERY = 3600.0  # seconds between full collections of frozen objects (gc_tuning)
PRUNE_EVERY = 3600.0  # seconds between prunings of old history
PRUNE_RETRY = 60.0  # after a failed pruning, the first wait; it doubles up to PRUNE_EVERY
# how long stop() waits for the state lock before it shuts down without it
STOP_LOCK_WAIT = 0.5


@dataclass
class ServerConfig:
    """Where to listen and how much to queue; `state` holds the protocol-level settings."""

    host: str = "127.0.0.1"
    port: int | None = DEFAULT_PORT  # plain listener; None for none
    tls_port: int | None = None  # TLS listener; needs tls_cert and tls_key
    tls_cert: str | None = None
    tls_key: str | None = None
    # flood control ("fakelag"): a token bucket per client; lines beyond it wait, and a client
    # with more than flood_queue lines waiting is cut off ("Excess Flood"); rate 0 turns it off
    flood_burst: int = 10
    flood_rate: float = 2.0  # lines per second, after the burst
    flood_queue: int = 100
    # connection limits (0: no limit)
    max_clients: int = 10000
    max_per_ip: int = 100
    connects_per_minute: int = 60  # new connections per IP address per minute
    # advertise STS (clients then insist on TLS with a certificate they can verify): only for a
    # certificate from a CA, never for the self-signed one
    sts: bool = False
    sendq: int = DEFAULT_SENDQ
    max_output_memory: int = DEFAULT_MAX_OUTPUT_MEMORY  # all clients' output together; 0: none
    db: str | None = None  # SQLite file for history and accounts; None keeps no history
    history_days: float = 30.0  # 0 keeps everything
    # accounts nobody logged in to after registering them are deleted this long after (0: never)
    account_expiry_days: float = 7.0
    state: Config = field(default_factory=Config)


# lines that cost nothing against flood control (keeping the connection alive, negotiating): as
# their specs declare
FREE_COMMANDS = frozenset(name for name, spec in State.commands.items() if spec.free)
# what a client's reader thread gets from `LineBuffer.lines`; every one waits its flood-control
# turn, a line that is too long or not IRC too
Received = Line | TooLong | Unparsable


def _free(item: Received) -> bool:
    return type(item) is Line and item.command in FREE_COMMANDS


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


class Writer(threading.Thread):
    """The one thread that sends: pops dirty connections, sends each one's whole buffer in one
    non-blocking `send`, and waits on a selector for sockets that could not take everything."""

    def __init__(self, budget: OutputBudget | None = None) -> None:
        super().__init__(name="tuichat-writer", daemon=True)
        self.budget = budget
        # bytes this writer holds for its connections (their `pending`); only this thread changes
        # it, so counting costs no lock
        self.held = 0
        self._ready: collections.deque[Connection] = collections.deque()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._idle = False
        self._stopping = False
        self._pipe_lock = threading.Lock()
        self._pipe_closed = False
        self._failures = Failures("writer", log)

    def schedule(self, conn: Connection) -> None:
        """Have `conn`'s buffer sent (from any thread)."""
        self._ready.append(conn)
        if self._idle:
            self._wake()

    def retire(self, conn: Connection) -> None:
        """Send what `conn` still has if the socket takes it at once, then close the socket."""
        with conn.lock:
            conn.closing = True
            conn.retired = True
        self.schedule(conn)

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        self._idle = False
        with self._pipe_lock:
            if self._pipe_closed:  # a reader finishing after the writer: nobody to wake
                return
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Close the wake-up pipe (after the writer has stopped)."""
        with self._pipe_lock:
            if not self._pipe_closed:
                self._pipe_closed = True
                os.close(self._wake_r)
                os.close(self._wake_w)

    def run(self) -> None:
        ready = self._ready
        while True:
            try:
                count = len(ready)
                if count:
                    for _ in range(count):
                        self._flush_safely(ready.popleft())
                    # sockets that had been full may take more now, even if the queue never empties
                    self._poll(0)
                    if count >= LINGER_AFTER and not self._stopping:
                        # a busy round (a line to a big channel): let the next lines pile up on
                        # the buffers for a moment, so that each system call carries more of them
                        time.sleep(LINGER)
                    continue
                # flag idleness before the last look at the queue, so no wake-up is lost
                self._idle = True
                if ready:
                    self._idle = False
                    continue
                if self._stopping:
                    break
                self._poll(None)
                self._idle = False
                self._failures.succeeded("waiting")
            except Exception:  # the selector, say: logged, and the writer keeps sending
                self._idle = False
                self._failures.failed("waiting")
                time.sleep(0.01)
        for key in list(self._selector.get_map().values()):
            if key.fd != self._wake_r:
                with contextlib.suppress(Exception):
                    self._close(key.data)
        self._selector.close()

    def _flush_safely(self, conn: Connection, writable: bool = False) -> None:
        """`_flush`, and if it raises, that client alone is cut off (its reader thread finds the
        socket shut and cleans up); the writer goes on with the others."""
        try:
            self._flush(conn, writable)
        except Exception:
            self._failures.failed("sending")
            with contextlib.suppress(Exception):
                self._close(conn)

    def _poll(self, timeout: float | None) -> None:
        """Send to the sockets that became writable; wait up to `timeout` (None: until one does
        or somebody wakes the writer)."""
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            else:
                conn: Connection = key.data
                self._flush_safely(conn, writable=True)

    def _flush(self, conn: Connection, writable: bool = False) -> None:
        """Send what `conn` has; `writable`: the selector says its socket takes more."""
        if conn.closed:
            return
        retired = False
        try:
            retired = self._send(conn, writable)
        finally:
            held = len(conn.pending) if conn.pending is not None else 0
            grown = held - conn.counted
            if grown:
                conn.counted = held
                self.held += grown
        if retired:
            self._close(conn)
        elif grown > 0 and self.budget is not None:
            self.budget.check()

    def _send(self, conn: Connection, writable: bool) -> bool:
        """Send what `conn` has, keeping the rest writer-side; True if it was retired before
        its buffer was taken (nothing more can come: it is to be closed)."""
        with conn.lock:
            data = conn.outbuf
            if data:
                conn.outbuf = bytearray()
            conn.dirty = False
            # retired before this take: nothing can be queued after it, so closing loses nothing
            retired = conn.retired
            discard, conn.discard = conn.discard, False
        if discard and conn.pending is not None:
            if conn.tls is not None:
                # encrypted records cannot be cut short: the connection just ends
                self._close(conn)
                return False
            # a client that does not read holds no more memory here: the line it has begun to
            # receive ends, the ERROR follows
            end = conn.pending.find(b"\n")
            if end >= 0:
                conn.pending = conn.pending[: end + 1]
        if conn.tls is not None:
            try:
                data = bytearray(conn.tls.encrypt(data))
            except (ssl.SSLError, ValueError):
                data = bytearray()
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RD)
        pending = conn.pending
        if pending is not None:
            pending += data
            data = pending
            if conn.watched and not writable and not retired:
                # its socket was full and the selector has not said otherwise: no send() that
                # would fail (each one lets another thread have the GIL for up to 5 ms, and a
                # thousand clients that stop reading made every round of the writer seconds long)
                return False
        if data:
            try:
                sent = conn.sock.send(data, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = len(data)  # the peer is gone; its reader thread finds out and cleans up
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RD)
            if sent >= len(data):
                conn.pending = None
            elif data is pending:
                del data[:sent]
            else:
                conn.pending = data[sent:]
        if retired:
            return True
        if conn.pending is not None and not conn.watched:
            self._selector.register(conn.fd, selectors.EVENT_WRITE, conn)
            conn.watched = True
        elif conn.pending is None and conn.watched:
            self._selector.unregister(conn.fd)
            conn.watched = False
        return False

    def _close(self, conn: Connection) -> None:
        if conn.watched:
            self._selector.unregister(conn.fd)
            conn.watched = False
        conn.closed = True
        conn.pending = None
        self.held -= conn.counted
        conn.counted = 0
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)
        conn.sock.close()


class OutputBudget:
    """The bound on the output held for all clients together (`--max-output-memory`).

    The writers count what they hold (the part of a client's queue its socket would not take:
    where a client that stops reading piles up); when a writer's count grows and the sum of the
    counts passes the bound, the connections with the largest queues are cut off with `SendQ
    exceeded`, largest first, until the rest holds TRIM_TO of the bound. A delivery costs nothing
    here and a writer's flush two additions; only a pass over the bound looks at every
    connection, and each such pass frees a tenth of the bound or more. What a client's own buffer
    holds before its writer takes it (a moment's worth) is not counted."""

    def __init__(
        self, bound: int, writers: list[Writer], connections: Callable[[], list[Connection]]
    ) -> None:
        self.bound = bound
        self.writers = writers
        self._connections = connections
        self._lock = threading.Lock()  # one trim at a time; the other writers go on sending
        # connections cut off and not closed yet: what their writers still hold for them is
        # about to go
        self._cut: set[Connection] = set()
        self.cut_off = 0  # connections cut off so far
        # (cut off, how many there were to choose from, seconds it took), to the cutter thread
        self._victims: queue.SimpleQueue[tuple[list[tuple[int, Connection]], int, float] | None] = (
            queue.SimpleQueue()
        )
        self._cutter: threading.Thread | None = None

    def total(self) -> int:
        """Bytes the writers hold (read without a lock: a moment's approximation)."""
        return sum(writer.held for writer in self.writers)

    def check(self) -> None:
        """From a writer whose count grew: trim if the bound is passed."""
        if not self.bound or self.total() <= self.bound:
            return
        if not self._lock.acquire(blocking=False):
            return  # another writer is trimming
        try:
            self._trim()
        finally:
            self._lock.release()

    def _trim(self) -> None:
        cut = self._cut
        cut.difference_update([conn for conn in cut if conn.closed])
        # what the connections already cut off hold goes as soon as their writers get to them
        freeing = sum(conn.counted for conn in cut)
        if self.total() - freeing <= self.bound:
            return
        started = time.monotonic()
        excess = self.total() - freeing - int(self.bound * TRIM_TO)
        queues = [(conn.queued(), conn) for conn in self._connections() if not conn.closing]
        queues.sort(key=lambda queue: queue[0], reverse=True)
        victims: list[tuple[int, Connection]] = []
        # no system call here (nor a log line): each would let the threads of the clients just
        # cut off take the GIL from this writer, for up to 5 ms each
        for size, conn in queues:
            if excess <= 0 or size <= 0:
                break
            cut.add(conn)
            excess -= size
            victims.append((size, conn))
            conn.close_reason = "SendQ exceeded"
            conn.close("Closing link (SendQ exceeded)", drop_queued=True, wake_reader=False)
        self.cut_off += len(victims)
        self._victims.put((victims, len(queues), time.monotonic() - started))

    def start(self) -> None:
        if self.bound and self._cutter is None:
            self._cutter = threading.Thread(target=self._wake_victims, name="tuichat-cutter")
            self._cutter.daemon = True
            self._cutter.start()

    def stop(self) -> None:
        if self._cutter is not None:
            self._victims.put(None)
            self._cutter.join(0.1)

    def _wake_victims(self) -> None:
        """The cutter thread: wakes the reader threads of the connections a trim cut off (they
        finish, and their queues are freed), and logs it, away from the writers."""
        failures = Failures("cutter", log)
        while (work := self._victims.get()) is not None:
            victims, among, took = work
            for size, conn in victims:
                conn.wake_reader()
                log.info("output memory: cut off %s holding %d bytes", conn.address, size)
            failures.run(
                "logging",
                log.warning,
                "output for all clients passed --max-output-memory (%d bytes): cut off the %d "
                "with the largest queues of %d (chosen in %.1f ms)",
                self.bound,
                len(victims),
                among,
                took * 1000,
            )


def _listen(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address[:2], family=family, backlog=1024)
    return sock


def _raise_fd_limit() -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """A running tuichat server. `start()` returns once it listens; `stop()` ends it."""

    def __init__(
        self, config: ServerConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or ServerConfig()
        # the wall clock the state sees (tests fix it to keep times on screen stable)
        self.clock = clock
        self.store = Store(self.config.db) if self.config.db else None
        self.state = State(self.config.state, self.store)
        self.lock = threading.Lock()
        # the threads that send: each connection belongs to one (the sends of one writer run
        # while another holds the GIL, and a send on loopback costs as much as the receive)
        self.writers = [Writer() for _ in range(WRITERS)]
        self._connections: set[Connection] = set()
        # list() of a set is one C call, atomic under the GIL: the writers read it without a lock
        self.output = OutputBudget(
            self.config.max_output_memory, self.writers, lambda: list(self._connections)
        )
        for writer in self.writers:
            writer.budget = self.output

        # connections whose reader thread ended, waiting to be disconnected together (_depart)
        self._departures: collections.deque[tuple[Connection, User, str]] = collections.deque()
        # client threads still running; they are bare threads (`_thread`): a threading.Thread
        # costs 2.6 KB more per client in its bookkeeping
        self.client_threads = 0
        self._threads_done = threading.Condition()
        self._listener: socket.socket | None = None
        self._listeners: list[tuple[socket.socket, ssl.SSLContext | None]] = []
        self._per_ip: dict[str, int] = {}
        self._recent: dict[str, collections.deque[float]] = {}
        self.tls_address: tuple[str, int] = ("", 0)
        self._accepter: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._pruned = False  # whether start() pruned the history
        self._store_down = False  # the last commit of history failed (under the state lock)
        # big replies (NAMES, WHO) are rendered one at a time, after the state lock: a hundred
        # threads rendering at once would keep everybody else waiting for the GIL
        self._render_slot = threading.Lock()
        self._stopping = threading.Event()
        # set by stop() when it had to go on without the state lock: some thread is stuck, and a
        # process that wants to exit now must not wait for it (`tuichat serve` exits at once)
        self.stalled = False
        self._wake_r, self._wake_w = os.pipe()
        self.address: tuple[str, int] = ("", 0)

    @property
    def port(self) -> int:
        return self.address[1]

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        _raise_fd_limit()
        # a log record names its thread, and naming a bare thread makes threading keep a
        # stand-in object for it forever: nobody logs thread names here
        logging.logThreads = False
        if self.store is not None:
            # a history that cannot be pruned now (disk full) does not keep the server down:
            # the reaper tries again
            startup = Failures("startup", log)
            self._pruned = startup.run(
                "pruning history", self._prune, self.clock(), retry=" (the reaper retries)"
            ) and startup.run(
                "expiring accounts", self._expire_accounts, self.clock(), retry=" (retried)"
            )
            log.info("history and accounts in %s", self.store.path)
        c = self.config
        if c.port is not None:
            listener = _listen(c.host, c.port)
            self._listeners.append((listener, None))
            self.address = listener.getsockname()[:2]
            log.info("listening on %s port %d", self.address[0], self.address[1])
        if c.tls_port is not None:
            if not c.tls_cert or not c.tls_key:
                raise ValueError("a TLS port needs a certificate and a key")
            context = tls.server_context(c.tls_cert, c.tls_key)
            listener = _listen(c.host, c.tls_port)
            self._listeners.append((listener, context))
            self.tls_address = listener.getsockname()[:2]
            log.info(
                "listening with TLS on %s port %d, certificate SHA-256 %s",
                self.tls_address[0],
                self.tls_address[1],
                tls.certificate_fingerprint(c.tls_cert),
            )
            if c.sts:
                self.state.sts_port = self.tls_address[1]
                self.state.sts_duration = STS_DURATION
        if not self._listeners:
            raise ValueError("nothing to listen on: give a port or a TLS port")
        for listener, _ in self._listeners:
            listener.setblocking(False)
        self._listener = self._listeners[0][0]
        gc_tuning.install()
        for writer in self.writers:
            writer.start()
        self.output.start()
        self._accepter = threading.Thread(
            target=self._accept_loop, name="tuichat-accept", daemon=True
        )
        self._accepter.start()
        self._reaper = threading.Thread(target=self._reap_loop, name="tuichat-reaper", daemon=True)
        self._reaper.start()

    def stop(self, message: str = "Server shutting down", timeout: float = 1.5) -> None:
        """Tell every client, close everything, and return within about `timeout` seconds."""
        if self._stopping.is_set() or self._listener is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._accepter is not None:
            self._accepter.join(max(0.0, deadline - time.monotonic()))
        # a thread stuck under the state lock (in SQLite behind another process's lock, say)
        # must not keep the server up: past STOP_LOCK_WAIT, shut down without the lock
        wait = max(0.0, min(STOP_LOCK_WAIT, deadline - time.monotonic()))
        locked = self.lock.acquire(timeout=wait)
        try:
            # everyone leaves at once: nobody needs to hear of the others' QUITs
            self.state.closing = True
            connections = list(self._connections)  # one C call: safe without the lock
        finally:
            if locked:
                self.lock.release()
        if not locked:
            self.stalled = True
            log.warning("stopping without the state lock: a request has held it for %g s", wait)
        for conn in connections:
            conn.close_reason = message
            conn.close(message)
        with self._threads_done:
            self._threads_done.wait_for(
                lambda: self.client_threads == 0, max(0.0, deadline - time.monotonic())
            )
        if self._reaper is not None:
            self._reaper.join(max(0.0, deadline - time.monotonic()))
        for writer in self.writers:
            writer.stop()
        for writer in self.writers:
            writer.join(max(0.1, deadline - time.monotonic()))
        self.output.stop()
        # what the writer could not close in time, close here: no socket outlives stop()
        for conn in connections:
            if not conn.closed:
                conn.closed = True
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)
                conn.sock.close()
        if self.store is not None and self.lock.acquire(timeout=0.0 if self.stalled else 0.2):
            try:
                self.store.close()
            finally:
                self.lock.release()
        for writer in self.writers:
            writer.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        gc_tuning.uninstall()
        log.info("stopped")

    # -- accepting --------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            for listener, context in self._listeners:
                selector.register(listener, selectors.EVENT_READ, context)
            selector.register(self._wake_r, selectors.EVENT_READ)
            failures = Failures("accept loop", log)
            while not self._stopping.is_set():
                try:
                    for key, _ in selector.select():
                        if key.fd == self._wake_r:
                            continue
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        self._accept_all(ready, key.data)
                except Exception:  # logged; the others who connect are still let in
                    failures.failed("accepting")
                    self._stopping.wait(0.1)
                else:
                    failures.succeeded("accepting")
        for listener, _ in self._listeners:
            listener.close()

    def _accept_all(self, listener: socket.socket, context: ssl.SSLContext | None) -> None:
        while not self._stopping.is_set():
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                # out of file descriptors, for example: say so and let others leave first
                log.error("accept failed: %s", error)
                self._stopping.wait(0.1)
                return
            try:
                self._start_client(sock, address, context)
            except Exception:  # a thread that would not start, say: that client only, whose
                # socket is closed rather than left open and unserved (socketserver's
                # shutdown_request after handle_error)
                log.exception("cannot serve a connection from %s", address[0])
                with contextlib.suppress(OSError):
                    sock.close()

    def _refusal(self, host: str) -> str | None:
        """Why a new connection from `host` is refused, if it is (under the state lock)."""
        c = self.config
        banned = self.state.banned_host(host, self.clock())
        host = _address_key(host)
        if c.max_clients and len(self._connections) >= c.max_clients:
            return "Server is full"
        if c.max_per_ip and self._per_ip.get(host, 0) >= c.max_per_ip:
            return "Too many connections from your address"
        if c.connects_per_minute:
            now = time.monotonic()
            recent = self._recent.setdefault(host, collections.deque())
            while recent and recent[0] < now - 60:
                recent.popleft()
            if len(recent) >= c.connects_per_minute:
                return "Connecting too fast; try again in a minute"
            recent.append(now)
        return banned

    def _start_client(
        self, sock: socket.socket, address: tuple[str, int], context: ssl.SSLContext | None
    ) -> None:
        host = address[0]
        with self.lock:
            refusal = self._refusal(host)
            if refusal is None:
                key = _address_key(host)
                self._per_ip[key] = self._per_ip.get(key, 0) + 1
        if refusal is not None:
            log.info("refused %s: %s", host, refusal)
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                if context is None:
                    sock.send(Line("ERROR", (f"Closing link ({refusal})",)).encode(trailing=True))
            sock.close()
            return
        sock.setblocking(True)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # bound what the kernel holds for a slow reader; the send queue holds the rest
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        session = tls.MemoryTLS(context, server_side=True) if context is not None else None
        conn = Connection(sock, f"{host}:{address[1]}", self, session)
        user = User(conn, host, self.clock())
        user.tls = session is not None
        conn.user = user
        with self.lock:
            self.state.connect(user)
            self._connections.add(conn)
        log.info("connect from %s", conn.address)
        with self._threads_done:
            self.client_threads += 1
        try:
            _thread.start_new_thread(self._client_thread, (conn, user))
        except RuntimeError:
            # no thread to be had (a process limit): undo this client, keep serving the others
            self._thread_ended()
            with self.lock:
                self.state.clients.discard(user)
                self._connections.discard(conn)
                self._forget_address(host)
            sock.close()
            raise

    # -- one client -------------------------------------------------------------------------------

    def _client_thread(self, conn: Connection, user: User) -> None:
        try:
            self._serve(conn, user)
        finally:
            self._thread_ended()

    def _thread_ended(self) -> None:
        with self._threads_done:
            self.client_threads -= 1
            if not self.client_threads:
                self._threads_done.notify_all()

    def _serve(self, conn: Connection, user: User) -> None:
        debug = log.isEnabledFor(logging.DEBUG)
        reader = Reader(conn, self.config, debug)
        waiting = reader.waiting
        try:
            if conn.tls is not None and not self._handshake(conn, conn.tls):
                reader.reason = "TLS handshake failed"
                return
            # with TLS, the client's first lines may have come in with the end of the handshake:
            # decrypt what the session holds before reading more
            held = conn.tls is not None
            while not conn.closing:
                if held:
                    held = False
                    if not reader.take(b""):
                        break
                elif not reader.read(block=True):
                    break
                registered = user.registered
                while waiting and not user.gone and not conn.closing:
                    if reader.flooding(self._exempt(user)):
                        conn.close_reason = "Excess Flood"
                        conn.close("Closing link (Excess Flood)")
                        break
                    exempt = self._exempt(user)
                    if exempt or reader.bucket.rate <= 0:  # no flood control: all of it at once
                        batch = list(waiting)
                        waiting.clear()
                    else:
                        batch = []
                        while waiting and (_free(waiting[0]) or reader.bucket.take()):
                            batch.append(waiting.popleft())
                    if batch:
                        rest, cost = self._handle_batch(user, batch)
                        if rest:  # after a big reply: they wait their turn again
                            waiting.extendleft(reversed(rest))
                            if not exempt:
                                reader.bucket.refund(sum(1 for item in rest if not _free(item)))
                        if cost and not self._exempt(user):
                            reader.bucket.charge(cost)
                        continue
                    # over the rate: the lines wait. Whatever else the client has sent joins
                    # them, so one that keeps flooding passes the flood queue and is cut off.
                    if not reader.read(block=False):
                        break
                    if not reader.flooding(exempt):
                        self._stopping.wait(reader.bucket.wait_time())
                        if self._stopping.is_set():
                            break
                if reader.ended:
                    break
                if not registered and user.registered:
                    log.info("registered %s from %s", user.prefix, conn.address)
        except Exception:
            log.exception("error serving %s", conn.address)
            reader.reason = "Internal error"
        finally:
            self._finish(conn, user, conn.close_reason or reader.reason)

    @staticmethod
    def _exempt(user: User) -> bool:
        """Server operators are not throttled."""
        return "o" in user.modes

    def _handle_batch(self, user: User, items: list[Received]) -> tuple[list[Received], int]:
        """Handle lines under the state lock and deliver what they decided.

        Two kinds of line end the batch, and the lines after them are returned (to be handled
        next, after the flood-control tokens it cost, returned too):
        - one with a big reply (NAMES, WHO): the reply is rendered after the lock from the
          snapshot the line took;
        - one that asked for slow work (a history read, a password hash: `Outbox.defer`): the
          work runs without the lock and its answer is delivered first.
        So a client's answers keep the order of its requests."""
        state = self.state
        out = Outbox(render_later=True)
        rest: list[Received] = []
        # Delivering (appending to buffers, no system call) under the state lock keeps every
        # client's view in the order the state changed: nobody gets a channel's message before
        # their own JOIN or after their own PART.
        with self.lock:
            try:
                now = self.clock()
                for index, item in enumerate(items):
                    if user.gone:
                        break
                    if type(item) is not Line:
                        if isinstance(item, TooLong):
                            state.input_too_long(user, out)
                        continue  # Unparsable: no reply, as IRC servers do
                    state.handle(user, item, now, out)
                    if out.later or out.cost or out.deferred:
                        rest = items[index + 1 :]
                        break
            finally:
                # deliver what earlier lines decided even if a later one failed
                self.dispatch(out)
        if out.later:
            with self._render_slot:
                out.finish_later()
        if out.deferred:
            self.run_deferred(out)
        return rest, out.cost

    def _handshake(self, conn: Connection, session: tls.MemoryTLS) -> bool:
        """The TLS handshake, in the client's own thread, within HANDSHAKE_TIMEOUT seconds."""
        try:
            session.handshake(conn.sock, HANDSHAKE_TIMEOUT, lambda: conn.closing)
            return True
        except (OSError, ssl.SSLError) as error:
            log.info("TLS handshake with %s failed: %s", conn.address, error)
            return False
        finally:
            with contextlib.suppress(OSError):
                conn.sock.settimeout(None)

    def _finish(self, conn: Connection, user: User, reason: str) -> None:
        """`user` leaves: queued with the others leaving, and handled with them (`_depart`).

        If another thread has taken it already, that thread handles it (it is a client thread
        too: `stop()` waits for it), and this one need not queue up on the lock behind the
        others only to find nothing left to do."""
        departures = self._departures
        departures.append((conn, user, reason))
        if departures:
            self._depart()

    def _depart(self) -> None:
        """Disconnect everybody queued to leave, in one hold of the state lock.

        When many connections end at once (a network split, a client farm that quits), their
        reader threads queue up on the lock: whichever gets it takes every departure queued so
        far, so each member who stays is told of them all in one blob and each channel's member
        tuple is rebuilt once (`State.disconnect_all`), instead of once per departure. When
        this returns, the departures queued before have been handled (here or by another thread)."""
        departures = self._departures
        with self.lock:
            if not departures:
                return  # taken by another thread, handled before it let the lock go
            batch: list[tuple[Connection, User, str]] = []
            while departures:
                batch.append(departures.popleft())
            out = Outbox()
            try:
                self.state.disconnect_all(
                    [user for _, user, _ in batch], [reason for _, _, reason in batch],
                    self.clock(), out,
                )  # fmt: skip
            finally:
                for conn, _, _ in batch:
                    self._connections.discard(conn)
                    self._forget_address(conn.address.rsplit(":", 1)[0])
                self.dispatch(out)
                for conn, _, _ in batch:
                    conn.writer.retire(conn)
                    conn.user = None  # no cycle: the two go with their last references
        if log.isEnabledFor(logging.INFO):
            for conn, user, reason in batch:
                log.info("disconnect %s (%s): %s", user.nick or "*", conn.address, reason)

    def dispatch(self, out: Outbox) -> None:
        """Queue what the state decided on each recipient's buffer (under the state lock).

        History written while handling is committed first: whatever a client receives is on
        disk."""
        recorded = out.recorded()
        failure = out.persist_and_deliver(self.state.store)
        if failure is not None:
            # disk full: what was not recorded went to nobody; its senders were told
            if not self._store_down:
                self._store_down = True
                log.error("history store unavailable, messages refused: %s", failure)
        elif self._store_down and recorded:
            self._store_down = False
            log.warning("history store available again")

    def run_deferred(self, out: Outbox) -> None:
        """Run the slow jobs the state asked for (password hashing) without the state lock, then
        their continuations under it."""
        while out.deferred:
            jobs, out.deferred = out.deferred, []
            for job, then in jobs:
                result = job()
                follow = Outbox()
                with self.lock:
                    then(result, self.clock(), follow)
                    self.dispatch(follow)
                out.deferred.extend(follow.deferred)

    # -- timers -----------------------------------------------------------------------------------

    def _reap_loop(self) -> None:
        c = self.config.state
        interval = max(
            0.05, min(1.0, c.ping_interval / 4, c.ping_timeout / 4, c.registration_timeout / 4)
        )
        # pruned at start: the next one in an hour; else now, and after failures, less often
        next_prune = self.clock() + PRUNE_EVERY if self._pruned else 0.0
        retry = PRUNE_RETRY
        next_collect = time.monotonic() + FULL_GC_EVERY
        # every job is guarded (socketserver's handle_error): the reaper outlives any one failure,
        # or registration and ping timeouts would end for good
        failures = Failures("reaper", log)
        while not self._stopping.wait(interval):
            if time.monotonic() >= next_collect:
                # cycles among frozen objects (see gc_tuning): one full collection an hour
                next_collect = time.monotonic() + FULL_GC_EVERY
                failures.run("full collection", gc_tuning.collect_all)
            now = self.clock()
            failures.run("timeouts", self._tick, now)
            if now >= next_prune:
                if failures.run(
                    "pruning history",
                    self._prune,
                    now,
                    retry=f" (retrying in {retry:g} s)",
                ) and failures.run(
                    "expiring accounts",
                    self._expire_accounts,
                    now,
                    retry=f" (retrying in {retry:g} s)",
                ):
                    next_prune = now + PRUNE_EVERY
                    retry = PRUNE_RETRY
                else:
                    next_prune = now + retry
                    retry = min(retry * 2, PRUNE_EVERY)
            failures.run("address bookkeeping", self._locked, self._forget_quiet_addresses)

    def _tick(self, now: float) -> None:
        """Registration and ping timeouts, nick-grace renames: under the state lock, delivered
        even if one of them fails."""
        out = Outbox()
        with self.lock:
            try:
                self.state.tick(now, out)
            finally:
                self.dispatch(out)

    def _locked(self, work: Callable[..., object], *args: object) -> None:
        with self.lock:
            work(*args)

    def _forget_address(self, host: str) -> None:
        """One connection from `host` fewer (under the state lock)."""
        host = _address_key(host)
        count = self._per_ip.get(host, 0) - 1
        if count > 0:
            self._per_ip[host] = count
        else:
            self._per_ip.pop(host, None)

    def _forget_quiet_addresses(self) -> None:
        """Drop the connection times of addresses not seen for a minute (under the state lock)."""
        cutoff = time.monotonic() - 60
        for host in [
            host for host, times in self._recent.items() if not times or times[-1] < cutoff
        ]:
            del self._recent[host]

    def _expire_accounts(self, now: float) -> None:
        """Delete the accounts nobody logged in to within --account-expiry-days of registering
        them (under the state lock), then their private history (outside it, a little at a
        time, as their names wait to be registered again)."""
        expiry = self.config.account_expiry_days
        if self.store is None or expiry <= 0:
            return
        with self.lock:
            names = self.state.expire_accounts(now - expiry * 86400)
        if not names:
            return
        try:
            removed = self.store.forget_conversations(set(names))
        finally:
            with self.lock:
                self.state.expired(names)
        log.info(
            "accounts: removed %d never used after registration, and %d private messages",
            len(names),
            removed,
        )

    def _prune(self, now: float) -> None:
        """Forget history older than --history-days: the messages outside the state lock (a
        chunk at a time: an hour's worth of a busy server's history takes seconds to delete,
        and nobody waits for it), then the channels unused since, under it."""
        days = self.config.history_days
        if self.store is not None and days > 0:
            removed = self.store.prune(int((now - days * 86400) * 1000))
            if removed:
                log.info("history: removed %d messages older than %g days", removed, days)
            with self.lock:
                forgotten = self.state.forget_idle_channels(now, now - days * 86400)
            if forgotten:
                log.info("forgot %d channels unused for %g days", len(forgotten), days)
