"""Listening: the sockets the server listens on, and the accept thread that lets clients in
(`Server._start_client` decides and starts each one). A failure to accept is logged and the
thread goes on; a client that cannot be started is closed, not left open."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import threading
from collections.abc import Callable

from tuichat.failures import Failures

log = logging.getLogger("tuichat.server")

Listener = tuple[socket.socket, ssl.SSLContext | None]  # with TLS, its context


def listen(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address[:2], family=family, backlog=1024)
    return sock


def raise_fd_limit() -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Listening:
    """The accept thread's work over `listeners`; `wake` (a pipe's read end) ends its wait."""

    def __init__(
        self,
        listeners: list[Listener],
        wake: int,
        stopping: threading.Event,
        start_client: Callable[[socket.socket, tuple[str, int], ssl.SSLContext | None], None],
    ) -> None:
        self.listeners = listeners
        self.wake = wake
        self.stopping = stopping
        self.start_client = start_client

    def run(self) -> None:
        """The accept thread's loop, until `stopping`; closes the listeners when it ends."""
        with selectors.DefaultSelector() as selector:
            for listener, context in self.listeners:
                selector.register(listener, selectors.EVENT_READ, context)
            selector.register(self.wake, selectors.EVENT_READ)
            failures = Failures("accept loop", log)
            while not self.stopping.is_set():
                try:
                    for key, _ in selector.select():
                        if key.fd == self.wake:
                            continue
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        self._accept_all(ready, key.data)
                except Exception:  # logged; the others who connect are still let in
                    failures.failed("accepting")
                    self.stopping.wait(0.1)
                else:
                    failures.succeeded("accepting")
        for listener, _ in self.listeners:
            listener.close()

    def _accept_all(self, listener: socket.socket, context: ssl.SSLContext | None) -> None:
        while not self.stopping.is_set():
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                # out of file descriptors, for example: say so and let others leave first
                log.error("accept failed: %s", error)
                self.stopping.wait(0.1)
                return
            try:
                self.start_client(sock, address, context)
            except Exception:  # a thread that would not start, say: that client only, whose
                # socket is closed rather than left open and unserved (socketserver's
                # shutdown_request after handle_error)
                log.exception("cannot serve a connection from %s", address[0])
                with contextlib.suppress(OSError):
                    sock.close()
