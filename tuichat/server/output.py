"""Sending: `Writer` threads send each connection's queued output in non-blocking `send`s (what a
slow client cannot take waits for the socket to become writable), and `OutputBudget` bounds what
they hold for all clients together (`--max-output-memory`), cutting off the largest queues."""

from __future__ import annotations

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

from tuichat.failures import Failures
from tuichat.server.connection import Connection

log = logging.getLogger("tuichat.server")

TRIM_TO = 0.9

# after a round of LINGER_AFTER connections or more, the writer waits LINGER seconds: a little
# latency for far fewer system calls when a big channel is busy
LINGER = 0.001

LINGER_AFTER = 64


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
