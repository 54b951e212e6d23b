"""The client's trust in a server's certificate: TLS over a connected socket, the certificate
checked against this system's authorities, a pinned fingerprint (`--fingerprint`), or the one
remembered for the server (trust on first use, asked of the user; `known_servers`). A server that
had a CA-signed certificate is never trusted with a self-signed one later."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tuichat import tls

if TYPE_CHECKING:
    from tuichat.net.client import ClientConfig


class TrustRefused(Exception):
    """The server's certificate is not the trusted one, or the user did not trust it."""


def context(c: ClientConfig, verify: bool) -> ssl.SSLContext:
    """A client TLS context: verifying (this system's authorities) or not; with our certificate
    when the config has one."""
    made = ssl.create_default_context()
    if not verify:
        made.check_hostname = False
        made.verify_mode = ssl.CERT_NONE
    if c.client_cert:
        made.load_cert_chain(c.client_cert)
    return made


def open_tls(
    c: ClientConfig, port: int, sock: socket.socket, ask: Callable[[int, str], bool]
) -> tls.SecureSocket:
    """TLS over `sock` (connected to `c.host` port `port`), the certificate checked. An unknown
    self-signed one is put to `ask(port, fingerprint)`, which answers whether the user trusts it
    (or raises TrustRefused when nobody can answer). Raises TrustRefused for a certificate that
    is not the trusted one."""
    if c.insecure:
        secure = tls.SecureSocket(sock, context(c, verify=False), c.host)
        secure.handshake(c.connect_timeout)
        return secure
    known = tls.KnownServers(Path(c.known_servers)) if c.known_servers else None
    if c.fingerprint is None:
        try:
            secure = tls.SecureSocket(sock, context(c, verify=True), c.host)
            secure.handshake(c.connect_timeout)
        except ssl.SSLCertVerificationError as error:
            sock.close()
            if known is not None and known.verified_by_ca(c.host):
                raise TrustRefused(
                    f"REFUSED: the certificate of {c.host} port {port} is not signed by an "
                    f"authority you trust ({error.verify_message}), yet {c.host} had one "
                    "that was before. Someone may be impersonating the server; if it really "
                    f"changed to a self-signed certificate, remove its lines from "
                    f"{c.known_servers}."
                ) from None
            sock = socket.create_connection((c.host, port), timeout=c.connect_timeout)
        else:
            if known is not None:
                known.add(c.host, port, tls.KnownServers.CA)  # never downgraded later
            return secure  # a certificate from a CA this system trusts
    # not from a trusted CA: compare its fingerprint with the pinned or remembered one
    secure = tls.SecureSocket(sock, context(c, verify=False), c.host)
    secure.handshake(c.connect_timeout)
    der = secure.peer_certificate()
    seen = tls.fingerprint(der or b"")
    expected = (
        tls.normalize_fingerprint(c.fingerprint)
        if c.fingerprint
        else (known.get(c.host, port) if known else None)
    )
    if expected is not None:
        if seen != expected:
            secure.close()
            if c.fingerprint:
                advice = "check the --fingerprint you gave."
            else:
                where = c.known_servers or "your known servers"
                advice = f"if its certificate really changed, remove its line from {where}."
            raise TrustRefused(
                f"REFUSED: the certificate of {c.host} port {port} is not the one trusted. "
                f"Expected SHA-256 {expected}, got {seen}. Someone may be impersonating the "
                f"server; {advice}"
            )
        return secure
    try:
        trusted = ask(port, seen)
    except TrustRefused:
        secure.close()
        raise
    if not trusted:
        secure.close()
        raise TrustRefused(f"the certificate of {c.host} port {port} was not trusted")
    if known is not None:
        known.add(c.host, port, seen)
    return secure
