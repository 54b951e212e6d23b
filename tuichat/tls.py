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
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context
