"""The client's connection: a socket owned by one background thread, with callbacks, no Textual.

The thread connects, registers (driving `net.registration`, the state machine of CAP, SASL and the
fallback to `nick_`, `nick__`... when the nick is taken), answers PING, measures lag, parses lines
with the shared protocol module and hands them to the `on_event` callback in batches, one per
`recv()`. When the connection drops it reconnects by itself with exponential backoff and jitter
(1 s up to 60 s). The socket is the thread's alone: `send()`, from any thread, only queues the line
in a bounded buffer and wakes the thread, which writes it when the socket takes it, so the UI
never waits on the network. `close()` returns within a second whatever the thread is waiting for.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tuichat import tls
from tuichat.failures import Failures
from tuichat.net import protocol as p

# NickFallback and Registered are ClientEvents too, and named from here
from tuichat.net import trust
from tuichat.net.protocol import Line, LineBuffer
from tuichat.net.registration import NickFallback as NickFallback
from tuichat.net.registration import Refused, Registration, StsPolicy, StsUpgrade
from tuichat.net.registration import Registered as Registered
from tuichat.net.trust import TrustRefused

log = logging.getLogger("tuichat.client")

LAG_INTERVAL = 30.0  # seconds between lag probes
LAG_TIMEOUT = 90.0  # a probe unanswered this long means the connection is dead
LAG_TOKEN = "tuichat-lag-"
# Lines queued and not yet taken by the socket, in bytes. A server that leaves this much of ours
# unread (the kernel's buffers, a megabyte or more on top, are full already) is stuck or gone:
# past it `send` refuses the line, as when disconnected (the app keeps what the user typed and
# sends it after reconnecting), and the connection is dropped and made afresh, as after a lost
# one. Waiting on longer would only grow memory and hold the user's lines back for minutes of
# TCP retries; IRC servers treat a client that stops reading the same way ("SendQ exceeded").
# (The UI queuing a megabyte faster than this thread writes it would be taken the same way; no
# server's flood control lets a client send that much at once anyway.)
SEND_BUFFER = 1024 * 1024


@dataclass
class ClientConfig:
    host: str
    port: int = p.DEFAULT_PORT
    nick: str = "guest"
    username: str = "tuichat"
    realname: str = "tuichat user"
    password: str | None = None  # sent as PASS, and used for SASL PLAIN when the server offers it
    account: str | None = None  # the SASL account (default: the nick)
    tls: bool = False
    fingerprint: str | None = None  # the server certificate's SHA-256, pinned
    insecure: bool = False  # TLS without checking the certificate at all (tests)
    known_servers: str | None = None  # file of trusted fingerprints (trust on first use)
    sts_policies: str | None = None  # file of the servers' STS policies (IRCv3), kept till expiry
    client_cert: str | None = None  # PEM with the certificate and its key
    connect_timeout: float = 10.0
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    reconnect: bool = True
    send_buffer: int = SEND_BUFFER


# Events handed to `on_event` (from the connection's thread) -------------------------------------


@dataclass(frozen=True)
class Connecting:
    host: str
    port: int
    attempt: int


@dataclass(frozen=True)
class Connected:
    host: str
    port: int


@dataclass(frozen=True)
class LinesReceived:
    lines: list[Line]


@dataclass(frozen=True)
class LagMeasured:
    seconds: float


@dataclass(frozen=True)
class TrustQuestion:
    """A self-signed server certificate seen for the first time: answer with `trust()`."""

    host: str
    port: int
    fingerprint: str


@dataclass(frozen=True)
class Disconnected:
    """The connection ended. `retry_in` is None when no reconnect follows."""

    reason: str
    retry_in: float | None


ClientEvent = (
    Connecting
    | Connected
    | Registered
    | LinesReceived
    | NickFallback
    | LagMeasured
    | TrustQuestion
    | Disconnected
)


def describe_error(error: OSError, host: str, port: int) -> str:
    """A sentence for a failed connection attempt."""
    if isinstance(error, socket.gaierror):
        return f"cannot find host {host!r} ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {host} port {port} (is a server running there?)"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer from {host} port {port} (timed out)"
    return f"cannot connect to {host} port {port}: {error.strerror or error}"


class Client:
    """An IRC connection that keeps itself up until `close()`."""

    def __init__(self, config: ClientConfig, on_event: Callable[[ClientEvent], None]) -> None:
        self.config = config
        self._on_event = on_event
        self._sock: socket.socket | tls.SecureSocket | None = None
        # `_send_lock` guards the queue: `_sock` (None: no connection to send on), `_queue`
        # (lines `send` took, for the thread), `_unsent` (what the thread took and the socket
        # has not: with `_queue`, what counts against `send_buffer`), `_stuck` (the bound was
        # passed) and the wake-up socket. It is never held across a system call but the
        # wake-up's non-blocking one.
        self._send_lock = threading.Lock()
        self._queue = bytearray()
        self._unsent = 0
        self._stuck = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False
        self._lag_sent: float | None = None
        self._give_up: str | None = None
        self._trusted = False
        self._trust_answered = threading.Event()
        self._error: str | None = None
        self._next_probe = 0.0
        self._secure = False  # the connection in use is TLS
        self._port = config.port  # the port it is on (an STS policy may have changed it)
        self._sts_port: int | None = None  # TLS here from now on: the server said so (STS)
        self._upgrade: str | None = None  # why this plain-text session ends to go TLS
        self._broken: str | None = None  # why this session's own state cannot be trusted
        self._failures = Failures("connection", log)
        self._registration = self._new_registration()  # this session's, or the last one's

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def registered(self) -> bool:
        return self._registered

    @property
    def nick(self) -> str:
        return self._registration.nick

    @property
    def caps(self) -> frozenset[str]:
        """The capabilities the server acknowledged on this connection."""
        return self._registration.caps

    def start(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="tuichat-connection", daemon=True)
        self._thread.start()

    def send(self, line: Line | str) -> bool:
        """Queue one line for the connection's thread, in order (thread-safe, never blocks on the
        socket). False when there is no connection to send it on, or when `send_buffer` bytes
        wait already: then the connection is dropped and made afresh (see SEND_BUFFER). Lines
        queued when a connection ends are dropped with it, like what the kernel held."""
        text = line.format(trailing=True) if isinstance(line, Line) else line
        data = (text.replace("\r", " ").replace("\n", " ") + "\r\n").encode("utf-8", "replace")
        with self._send_lock:
            if self._sock is None or self._stuck:
                return False
            if len(self._queue) + self._unsent + len(data) > self.config.send_buffer:
                self._stuck = True
                self._wake()
                return False
            if not self._queue and threading.current_thread() is not self._thread:
                self._wake()
            self._queue += data
        return True

    def _wake(self) -> None:
        """Wake the connection's thread from its `select` (with `_send_lock` held)."""
        if self._wake_w is not None:
            # BlockingIOError: wake-ups are pending already
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    def trust(self, answer: bool) -> None:
        """The user's answer to a TrustQuestion (from any thread)."""
        self._trusted = answer
        self._trust_answered.set()

    def quit(self, reason: str = "") -> None:
        """Send QUIT (if the socket takes it at once: see `close`) and close, without
        reconnecting."""
        self._stopping.set()
        self.send(Line("QUIT", (reason,) if reason else ()))
        self.close()

    def close(self, timeout: float = 1.0) -> None:
        """Stop for good: wake the thread, which sends what is queued if the socket takes it at
        once (a QUIT) and closes the socket; join the thread."""
        self._stopping.set()
        self._trust_answered.set()
        with self._send_lock:
            self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the connection's thread ------------------------------------------------------------------

    def _emit(self, event: ClientEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # a broken callback must not kill the connection
            log.exception("event callback failed")

    def _run(self) -> None:
        try:
            self._attempts()
        finally:
            with self._send_lock:
                for end in (self._wake_r, self._wake_w):
                    if end is not None:
                        end.close()
                self._wake_r = self._wake_w = None

    def _attempts(self) -> None:
        c = self.config
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            self._emit(Connecting(c.host, c.port, attempt))
            try:
                sock = self._connect()
            except OSError as error:
                reason = describe_error(error, c.host, self._port)
            except ssl.SSLError as error:
                reason = f"TLS failed with {c.host} port {self._port}: {error.reason or error}"
            except TrustRefused as error:
                reason = str(error)
                self._give_up = reason
            except Exception:  # a bug must not end the thread: this attempt failed, the next one
                self._failures.failed("connecting")
                reason = "the client failed to connect (an internal error, logged)"
            else:
                try:
                    reason = self._session(sock)
                except Exception:  # as a lost connection: `_session` closed the socket
                    self._failures.failed("the session")
                    reason = "the client failed (an internal error, logged)"
                if self._registered:
                    attempt = 1
            self._registered = False
            if self._upgrade is not None and not self._stopping.is_set():
                self._emit(Disconnected(self._upgrade, 0.0))
                self._upgrade = None
                attempt = 0
                continue  # at once: TLS to the port the server named
            if self._stopping.is_set() or not c.reconnect or self._give_up is not None:
                self._emit(Disconnected(self._give_up or reason, None))
                return
            delay = min(c.backoff_max, c.backoff_min * 2 ** (attempt - 1))
            delay *= random.uniform(0.5, 1.0)
            delay = max(delay, min(c.backoff_min, c.backoff_max))
            self._emit(Disconnected(reason, delay))
            if self._stopping.wait(delay):
                self._emit(Disconnected(reason, None))
                return

    def _connect(self) -> socket.socket | tls.SecureSocket:
        """A connected socket: plain, or TLS with the certificate checked (CA, pin, or TOFU).
        A plain-text connection goes over TLS instead when the server's STS policy says so
        (learnt on this run, or kept from an earlier one until it expires)."""
        c = self.config
        use_tls, port = c.tls, c.port
        if not use_tls:
            kept = tls.StsPolicies(Path(c.sts_policies)).port(c.host) if c.sts_policies else None
            sts = self._sts_port or kept
            if sts is not None:
                use_tls, port = True, sts
        self._secure, self._port = use_tls, port
        sock = socket.create_connection((c.host, port), timeout=c.connect_timeout)
        if not use_tls:
            return sock
        return trust.open_tls(c, port, sock, self._ask_trust)

    def _ask_trust(self, port: int, seen: str) -> bool:
        """The user's answer about a certificate seen for the first time (TrustQuestion)."""
        self._trust_answered.clear()
        if self._stopping.is_set():  # closed meanwhile: nobody is there to answer
            raise TrustRefused("closed before the certificate was trusted")
        self._emit(TrustQuestion(self.config.host, port, seen))
        self._trust_answered.wait()
        return not self._stopping.is_set() and self._trusted

    def _session(self, sock: socket.socket | tls.SecureSocket) -> str:
        """Register, then read, and write what `send` queued, until the connection ends; return
        why it ended."""
        c = self.config
        raw = sock.sock if isinstance(sock, tls.SecureSocket) else sock
        session = sock.session if isinstance(sock, tls.SecureSocket) else None
        raw.setblocking(False)
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._send_lock:
            if self._stopping.is_set():
                sock.close()
                return "closed"
            self._sock = sock
        self._emit(Connected(c.host, c.port))
        self._registration = self._new_registration()
        self._lag_sent = None
        self._error = None
        self._broken = None
        for line in self._registration.start():
            self.send(line)
        buffer = LineBuffer()
        out = bytearray()  # for the socket: taken from the queue (and encrypted), not yet sent
        reason = "connection closed by the server"
        self._next_probe = time.monotonic() + LAG_INTERVAL
        wake = self._wake_r
        assert wake is not None
        selector = selectors.DefaultSelector()
        selector.register(wake, selectors.EVENT_READ)
        selector.register(raw, selectors.EVENT_READ)
        watching = selectors.EVENT_READ
        try:
            # with TLS, the server's first lines may have come in with the end of the handshake
            ended = session is not None and self._take(b"", buffer, out, session)
            while not self._stopping.is_set() and not ended:
                try:
                    self._flush(raw, out, session)
                except OSError as error:
                    reason = f"connection lost: {error.strerror or error}"
                    break
                if self._stuck:
                    reason = f"the server stopped reading (over {c.send_buffer} bytes unsent)"
                    break
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
                if events != watching:
                    selector.modify(raw, events)
                    watching = events
                now = time.monotonic()
                wait = LAG_INTERVAL / 3
                if self._registered:
                    wait = min(wait, max(0.0, self._next_probe - now))
                readable = False
                for key, mask in selector.select(wait):
                    if key.fileobj is wake:
                        with contextlib.suppress(OSError):
                            wake.recv(4096)
                    elif mask & selectors.EVENT_READ:
                        readable = True
                if readable:
                    try:
                        data = raw.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        data = None
                    except OSError as error:
                        reason = f"connection lost: {error.strerror or error}"
                        break
                    if data == b"":
                        break
                    if data:
                        try:
                            ended = self._take(data, buffer, out, session)
                        except OSError as error:  # ssl.SSLError: what came in is not TLS
                            reason = f"connection lost: {error.strerror or error}"
                            break
                        if self._error is not None:
                            reason = f"the server closed the connection: {self._error}"
                        if self._upgrade is not None:
                            reason = self._upgrade
                            break
                        if self._broken is not None:
                            reason = self._broken
                            break
                now = time.monotonic()
                if now >= self._next_probe and self._registered:
                    if self._lag_sent is None:
                        self._lag_sent = now
                        self.send(Line("PING", (f"{LAG_TOKEN}{now:.6f}",)))
                    elif now - self._lag_sent > LAG_TIMEOUT:
                        reason = "the server stopped answering (ping timeout)"
                        break
                    self._next_probe = now + LAG_INTERVAL
            if self._stopping.is_set():
                # a last line (QUIT) goes if the socket takes it now; a stuck server gets nothing
                with contextlib.suppress(OSError):
                    self._flush(raw, out, session)
        finally:
            selector.close()
            with self._send_lock:
                self._sock = None
                self._queue = bytearray()
                self._unsent = 0
                self._stuck = False
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._stopping.is_set():
            return "disconnected"
        return reason

    def _take(
        self, data: bytes, buffer: LineBuffer, out: bytearray, session: tls.MemoryTLS | None
    ) -> bool:
        """Handle received bytes (decrypted first with TLS); True when the server ended TLS."""
        closed = False
        if session is not None:
            data, closed = session.decrypt(data)
            if session.has_output():  # TLS 1.3 has messages of its own to answer, in order
                out += session.encrypt(b"")
        if data:
            self._receive(buffer, data)
        return closed

    def _flush(self, raw: socket.socket, out: bytearray, session: tls.MemoryTLS | None) -> None:
        """Move what `send` queued into `out` (as TLS records, through the session's one write
        path, after anything it had to send itself) and write what the socket takes now.

        The lines leave the queue only once written or in `out`, so that `send` counts them
        once and wakes nobody meanwhile: what it queued during this is taken before returning."""
        more = True
        while more:
            with self._send_lock:
                data = bytes(self._queue)
            try:
                if data:
                    out += session.encrypt(data) if session is not None else data
                if out:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        del out[: raw.send(out)]
            finally:
                with self._send_lock:
                    del self._queue[: len(data)]
                    self._unsent = len(out)
                    more = bool(self._queue)

    def _receive(self, buffer: LineBuffer, data: bytes) -> None:
        lines: list[Line] = []
        for line in buffer.lines(data):
            if not isinstance(line, Line):
                continue  # too long, or not IRC: nothing to answer or show
            try:
                passed = self._handle(line)
            except Exception:
                # confined to this line. Before registration, CAP, SASL and the nick fallback
                # are a state machine this line may have left half-way: start afresh, as after a
                # lost connection. After it, each line's handling stands alone: go on.
                self._failures.failed("handling a line", f" ({line.command})")
                if not self._registered:
                    self._broken = (
                        f"the client failed handling the server's {line.command} (logged)"
                    )
                    break
                passed = True  # what failed was the connection's own reaction; the app sees it
            else:
                self._failures.succeeded("handling a line")
            if passed:
                lines.append(line)
            if line.command == "ERROR" and line.params:
                self._error = line.params[0]
        if lines:
            self._emit(LinesReceived(lines))

    def _new_registration(self) -> Registration:
        c = self.config
        return Registration(
            c.nick, c.username, c.realname, c.password, c.account, secure=self._secure
        )

    def _handle(self, line: Line) -> bool:
        """React to what the connection itself must handle; True to pass the line on."""
        command = line.command
        if command == "PING":
            self.send(Line("PONG", line.params or ("",)))
            return False
        if command == "PONG" and line.params and line.params[-1].startswith(LAG_TOKEN):
            if self._lag_sent is not None:
                self._emit(LagMeasured(time.monotonic() - self._lag_sent))
                self._lag_sent = None
            return False
        reaction = self._registration.feed(line)
        for event in reaction.events:
            if isinstance(event, Registered):
                self._registered = True
                self._next_probe = 0.0  # measure lag right away
                self._emit(event)
            elif isinstance(event, NickFallback):
                self._emit(event)
            elif isinstance(event, StsUpgrade):
                self._sts_port = event.port
                self._upgrade = event.reason
            elif isinstance(event, StsPolicy):
                self._keep_sts(event.duration)
            elif isinstance(event, Refused):
                self._give_up = event.reason
        for reply in reaction.send:
            self.send(reply)
        return reaction.passed

    def _keep_sts(self, duration: int) -> None:
        """The server's STS policy, seen over TLS: TLS to this port from now on, and in the
        policy file till it expires (a duration of 0 drops it)."""
        self._sts_port = self._port if duration else None
        if self.config.sts_policies:
            policies = tls.StsPolicies(Path(self.config.sts_policies))
            policies.set(self.config.host, self._port, duration)
