"""TLS: the server's certificate (made once, self-signed, when none is given) and fingerprints.

The certificate is made with `cryptography` (the standard library can use certificates but not
make them); everything else is the standard library's `ssl`.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import threading
import time
from pathlib import Path


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
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION  # CPU outside flood control, writer errors
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class KnownServers:
    """The fingerprints this user has trusted, like ssh's known_hosts: `host:port FINGERPRINT`."""

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
        return self._entries().get(f"{host.lower()}:{port}")

    def add(self, host: str, port: int, fp: str) -> None:
        entries = self._entries()
        entries[f"{host.lower()}:{port}"] = fp
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{server} {value}" for server, value in sorted(entries.items())]
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class SecureSocket:
    """TLS over a connected socket, on memory buffers: one thread receives, any thread sends.

    One SSL object must not be used by two threads at once; here it is only touched under
    `_tls`, and the socket's system calls happen outside it (sends in order under `_send`)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, hostname: str | None) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_hostname=hostname)
        self._tls = threading.Lock()
        self._send = threading.Lock()

    def handshake(self, timeout: float) -> None:
        """Raises ssl.SSLError (ssl.SSLCertVerificationError when the certificate is refused)."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while True:
            with self._tls:
                try:
                    self._obj.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
            self._flush()
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("TLS handshake timed out")
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("the server closed the connection during TLS")
            with self._tls:
                self._incoming.write(data)

    def peer_certificate(self) -> bytes | None:
        with self._tls:
            return self._obj.getpeercert(binary_form=True)

    def _flush(self) -> None:
        with self._send:
            with self._tls:
                data = self._outgoing.read()
            if data:
                self.sock.sendall(data)

    def sendall(self, data: bytes) -> None:
        with self._send:
            with self._tls:
                self._obj.write(data)
                out = self._outgoing.read()
            self.sock.sendall(out)

    def recv(self, size: int) -> bytes:
        while True:
            with self._tls:
                try:
                    return self._obj.read(size)
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    return b""
                pending = self._outgoing.pending
            if pending:
                self._flush()
            data = self.sock.recv(65536)
            if not data:
                return b""
            with self._tls:
                self._incoming.write(data)

    # the rest is the plain socket's
    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.sock.setsockopt(level, option, value)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()
