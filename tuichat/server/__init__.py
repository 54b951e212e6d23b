"""The threaded IRC server: an accept loop per listener, a reader thread per client, a few writer
threads, and the reaper.

Each client's reader thread reads whole `recv()`s (`connection.Reader`: parsed lines that wait
for the flood control), handles what the flood control lets through under the state lock
(`tuichat.state`), commits the history rows the lines added, and, still under the lock, appends
each recipient's share of the output to that recipient's buffer (`connection.Connection`; no
system call: everyone sees the state's changes in one order). The writer threads (`output.Writer`)
send each dirty buffer in non-blocking `send`s; what a slow client cannot take waits for its
socket to become writable. A client whose queued output passes the send-queue bound is
disconnected ("SendQ exceeded"), so a client that stops reading never slows anybody else; and
when what the writers hold for all clients together passes `--max-output-memory`, the largest
queues are cut off the same way (`output.OutputBudget`). The reaper thread runs the timeouts,
pings, nick-grace renames and the hourly pruning of history.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable

from tuichat import gc_tuning, tls
from tuichat.failures import Failures
from tuichat.limits import address_key as _address_key
from tuichat.net.protocol import Line, TooLong
from tuichat.server.admission import Admission
from tuichat.server.config import (
    DEFAULT_MAX_OUTPUT_MEMORY,
    DEFAULT_SENDQ,
    ServerConfig,
)
from tuichat.server.connection import (
    IDLE_RECV_SIZE,
    RECV_SIZE,
    SECRET_COMMANDS,
    SERVICES,
    Connection,
    Reader,
    Received,
    TokenBucket,
    redacted,
)
from tuichat.server.listening import Listening, listen, raise_fd_limit
from tuichat.server.output import (
    LINGER,
    LINGER_AFTER,
    TRIM_TO,
    OutputBudget,
    Writer,
)
from tuichat.server.reaper import FULL_GC_EVERY, PRUNE_EVERY, PRUNE_RETRY, Reaper
from tuichat.state import Outbox, State, User
from tuichat.store import Store

log = logging.getLogger("tuichat.server")

HANDSHAKE_TIMEOUT = 10.0

STS_DURATION = 30 * 86400

SNDBUF = 256 * 1024

WRITERS = 2  # threads that send; each connection belongs to one

# how long stop() waits for the state lock before it shuts down without it
STOP_LOCK_WAIT = 0.5

# lines that cost nothing against flood control (keeping the connection alive, negotiating): as
# their specs declare
FREE_COMMANDS = frozenset(name for name, spec in State.commands.items() if spec.free)


def _free(item: Received) -> bool:
    return type(item) is Line and item.command in FREE_COMMANDS


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
        self.admission = Admission(self.config)
        self.tls_address: tuple[str, int] = ("", 0)
        self._accepter: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._pruned = False  # whether start() pruned the history
        self._store_down = False  # the last commit of history failed (under the state lock)
        # big replies (NAMES, WHO) are rendered one at a time, after the state lock: a hundred
        # threads rendering at once would keep everybody else waiting for the GIL
        self._render_slot = threading.Lock()
        self._stopping = threading.Event()
        self.reaper = Reaper(self, self._stopping)
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
        raise_fd_limit()
        # a log record names its thread, and naming a bare thread makes threading keep a
        # stand-in object for it forever: nobody logs thread names here
        logging.logThreads = False
        if self.store is not None:
            # a history that cannot be pruned now (disk full) does not keep the server down:
            # the reaper tries again
            startup = Failures("startup", log)
            self._pruned = startup.run(
                "pruning history", self.reaper.prune, self.clock(), retry=" (the reaper retries)"
            ) and startup.run(
                "expiring accounts", self.reaper.expire_accounts, self.clock(), retry=" (retried)"
            )
            log.info("history and accounts in %s", self.store.path)
        c = self.config
        if c.port is not None:
            listener = listen(c.host, c.port)
            self._listeners.append((listener, None))
            self.address = listener.getsockname()[:2]
            log.info("listening on %s port %d", self.address[0], self.address[1])
        if c.tls_port is not None:
            if not c.tls_cert or not c.tls_key:
                raise ValueError("a TLS port needs a certificate and a key")
            context = tls.server_context(c.tls_cert, c.tls_key)
            listener = listen(c.host, c.tls_port)
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
            # the client starter looked up at each call (a test replaces it on the instance)
            target=Listening(
                self._listeners, self._wake_r, self._stopping, lambda *a: self._start_client(*a)
            ).run,
            name="tuichat-accept",
            daemon=True,
        )
        self._accepter.start()
        self._reaper = threading.Thread(
            target=self.reaper.run, args=(self._pruned,), name="tuichat-reaper", daemon=True
        )
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

    def _start_client(
        self, sock: socket.socket, address: tuple[str, int], context: ssl.SSLContext | None
    ) -> None:
        host = address[0]
        with self.lock:
            banned = self.state.banned_host(host, self.clock())
            refusal = self.admission.refusal(host, len(self._connections), banned)
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
                self.admission.left(host)
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
                    self.admission.left(conn.address.rsplit(":", 1)[0])
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


# re-exported: what other modules and the tests import from here
__all__ = [
    "DEFAULT_MAX_OUTPUT_MEMORY",
    "DEFAULT_SENDQ",
    "FREE_COMMANDS",
    "FULL_GC_EVERY",
    "HANDSHAKE_TIMEOUT",
    "IDLE_RECV_SIZE",
    "LINGER",
    "LINGER_AFTER",
    "PRUNE_EVERY",
    "PRUNE_RETRY",
    "RECV_SIZE",
    "SECRET_COMMANDS",
    "SERVICES",
    "STOP_LOCK_WAIT",
    "STS_DURATION",
    "TRIM_TO",
    "Connection",
    "OutputBudget",
    "Reader",
    "Received",
    "Server",
    "ServerConfig",
    "TokenBucket",
    "Writer",
    "_address_key",  # the tests' way to the per-address key
    "redacted",
]
