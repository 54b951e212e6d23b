"""TLS: the server's certificate (made once, self-signed, when none is given) and fingerprints.

The certificate is made with `cryptography` (the standard library can use certificates but not
make them); everything else is the standard library's `ssl`.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tuichat import files


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as `AB:CD:...` (what ssh-like prompts show)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as typed (`abcd...`, `AB:CD:...`, `SHA256:...`) in the `AB:CD:...` form."""
    text = text.strip()
    if text.upper().startswith("SHA256:"):
        text = text[7:]
    digits = text.replace(":", "").replace(" ", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def certificate_fingerprint(cert_file: str | Path) -> str:
    pem = Path(cert_file).read_text(encoding="ascii")
    return fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def make_self_signed(cert_file: Path, key_file: Path, name: str) -> None:
    """A self-signed certificate for `name` (and localhost, this host, 127.0.0.1, ::1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in dict.fromkeys([name, socket.gethostname(), "localhost"]) if n
    ]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files.private_dir(cert_file.parent)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files.write_private(Path(key_file), key_bytes)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION  # CPU outside flood control, writer errors
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class KnownServers:
    """The servers this user has trusted, like ssh's known_hosts: `host:port FINGERPRINT` for a
    certificate trusted on first use, `host:port ca` for one a certificate authority vouched for.
    A host once verified by a CA is never again offered the first-use prompt (a self-signed
    certificate there is an attacker's, until the user removes the line)."""

    CA = "ca"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _entries(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        entries: dict[str, str] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                entries[parts[0]] = parts[1]
        return entries

    def get(self, host: str, port: int) -> str | None:
        """The fingerprint trusted for host:port (None when none is, or a CA vouched for it)."""
        value = self._entries().get(f"{host.lower()}:{port}")
        return None if value == self.CA else value

    def verified_by_ca(self, host: str) -> bool:
        """Whether a CA-verified certificate was seen at `host` (on any port)."""
        prefix = host.lower() + ":"
        return any(
            server.startswith(prefix) and value == self.CA
            for server, value in self._entries().items()
        )

    def add(self, host: str, port: int, fp: str) -> None:
        """Remember `fp` (a fingerprint, or `KnownServers.CA`) for host:port."""
        entries = self._entries()
        server = f"{host.lower()}:{port}"
        if entries.get(server) == fp:
            return
        entries[server] = fp
        lines = [f"{server} {value}" for server, value in sorted(entries.items())]
        # 0600: whoever could write it could pin their own certificate for a host
        files.write_private(self.path, ("\n".join(lines) + "\n").encode("utf-8"))


class StsPolicies:
    """IRCv3 STS policies the client keeps (`host port expires`, one a line): until a policy
    expires, a plain-text connection to the host is made over TLS to that port instead."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock

    def _entries(self) -> dict[str, tuple[int, float]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        entries: dict[str, tuple[int, float]] = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isascii() and parts[1].isdigit():
                try:
                    entries[parts[0]] = (int(parts[1]), float(parts[2]))
                except ValueError:
                    continue
        return entries

    def port(self, host: str) -> int | None:
        """The TLS port a standing policy for `host` requires, or None."""
        entry = self._entries().get(host.lower())
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def set(self, host: str, port: int, duration: int) -> None:
        """Keep the policy for `duration` seconds from now (0 removes it, as the spec says)."""
        now = self.clock()
        entries = {h: e for h, e in self._entries().items() if e[1] > now}
        if duration > 0:
            entries[host.lower()] = (port, now + duration)
        else:
            entries.pop(host.lower(), None)
        lines = [f"{h} {p} {expires:.0f}" for h, (p, expires) in sorted(entries.items())]
        files.write_private(self.path, "".join(line + "\n" for line in lines).encode("utf-8"))


class MemoryTLS:
    """A TLS session on memory buffers. Its SSL object (which two threads must never use at
    once) is only touched under `lock`, which is never held across a system call: the server's
    reader thread decrypts while its writer thread encrypts."""

    __slots__ = ("incoming", "lock", "obj", "outgoing")

    def __init__(
        self, context: ssl.SSLContext, server_side: bool, hostname: str | None = None
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side, server_hostname=hostname
        )
        self.lock = threading.Lock()

    def handshake(
        self, sock: socket.socket, timeout: float, cancelled: Callable[[], bool] | None = None
    ) -> None:
        """The handshake over `sock`, within `timeout` seconds. Raises ssl.SSLError (with
        ssl.SSLCertVerificationError for a refused certificate) or OSError."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                try:
                    self.obj.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                output = self.outgoing.read()
            if output:
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                sock.sendall(output)
            if done:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("TLS handshake timed out")
            if cancelled is not None and cancelled():
                raise ConnectionAbortedError("closed during the TLS handshake")
            sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError("the peer closed the connection during TLS")
            with self.lock:
                self.incoming.write(data)

    def encrypt(self, data: bytes | bytearray) -> bytes:
        """`data` as TLS records, with whatever else the session has to send."""
        with self.lock:
            if data:
                self.obj.write(data)
            return self.outgoing.read()

    def decrypt(self, data: bytes) -> tuple[bytes, bool]:
        """Plain text from received bytes (b"": what the session holds already), and whether the
        peer closed the TLS session."""
        chunks: list[bytes] = []
        closed = False
        with self.lock:
            if data:
                self.incoming.write(data)
            while True:
                try:
                    chunk = self.obj.read(65536)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    closed = True
                    break
                if not chunk:  # the peer's close_notify
                    closed = True
                    break
                chunks.append(chunk)
        return b"".join(chunks), closed

    def has_output(self) -> bool:
        return self.outgoing.pending > 0

    def peer_certificate(self) -> bytes | None:
        with self.lock:
            return self.obj.getpeercert(binary_form=True)


class SecureSocket:
    """TLS over a connected socket, on memory buffers: one thread receives, any thread sends
    (in order, under `_send`). The client's connection thread, which owns its socket, uses
    `sock` and `session` directly instead, without blocking."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, hostname: str | None) -> None:
        self.sock = sock
        self._session = MemoryTLS(context, server_side=False, hostname=hostname)
        self._send = threading.Lock()
        self._plain = b""  # decrypted, not yet returned by recv()
        self._closed = False  # the peer ended the TLS session (the end stays the end)

    def handshake(self, timeout: float) -> None:
        """Raises ssl.SSLError (ssl.SSLCertVerificationError when the certificate is refused)."""
        self._session.handshake(self.sock, timeout)

    def peer_certificate(self) -> bytes | None:
        return self._session.peer_certificate()

    @property
    def session(self) -> MemoryTLS:
        return self._session

    def _flush(self) -> None:
        with self._send:
            data = self._session.encrypt(b"")
            if data:
                self.sock.sendall(data)

    def sendall(self, data: bytes) -> None:
        with self._send:
            self.sock.sendall(self._session.encrypt(data))

    def recv(self, size: int) -> bytes:
        received = b""  # first, what came in with the handshake's last message
        while not self._plain:
            if self._closed:
                return b""
            plain, self._closed = self._session.decrypt(received)
            if self._session.has_output():  # TLS 1.3 has messages of its own to answer
                self._flush()
            if plain:
                self._plain = plain
                break
            if self._closed:
                return b""
            received = self.sock.recv(65536)
            if not received:
                return b""
        data, self._plain = self._plain[:size], self._plain[size:]
        return data

    # the rest is the plain socket's
    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.sock.setsockopt(level, option, value)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()
