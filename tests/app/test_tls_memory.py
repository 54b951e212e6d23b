"""How a host was verified is remembered: a host once verified by a certificate authority gets no
first-use prompt for a self-signed certificate later (it is refused), and a server's STS policy
sends plain-text connections over TLS, now and, for its duration, later (issue 10, item 11).

The certificate authority is made here and trusted through SSL_CERT_FILE, which the standard
library's default context reads, as a system's store would be."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuichat import tls
from tuichat.app import TuichatApp
from tuichat.net.client import ClientConfig
from tuichat.server import Server, ServerConfig

from .helpers import (
    HOST,
    SIZE,
    Servers,
    fixed_clock,
    log_text,
    screen_state,
    status_text,
    wait_for,
    wait_for_joined,
    wait_for_log,
)
from .test_tls import (
    Cert,
    dialog_of,
    make_cert,
    start_tls_server,
    tls_app,
    tls_config,
    wait_for_end,
)

__all__ = ["make_cert"]  # the fixture, used here too

pytestmark = pytest.mark.timeout(30)


@dataclass(frozen=True)
class Authority:
    cert: Path  # the CA's certificate (what clients trust)
    server: Cert  # a server certificate for 127.0.0.1 it signed


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Authority:
    """A certificate authority the client trusts (SSL_CERT_FILE) and a server certificate for
    127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tuichat test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    signs_certificates = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(signs_certificates, critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = tmp_path / "signed-cert.pem", tmp_path / "signed-key.pem"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return Authority(ca_file, Cert(cert_file, key_file, tls.certificate_fingerprint(cert_file)))


def start_sts_server(servers: Servers, cert: Cert) -> Server:
    """A tuichat server on a plain port and a TLS port, advertising STS (as it may with a CA's
    certificate): `sts=port=<tls port>` in plain text, `sts=duration=...` over TLS."""
    config = ServerConfig(
        host=HOST, port=0, tls_port=0, tls_cert=str(cert.cert), tls_key=str(cert.key), sts=True
    )
    server = Server(config, clock=fixed_clock)
    server.start()
    servers.started.append(server)
    return server


def plain_app(port: int, tmp_path: Path) -> TuichatApp:
    config = ClientConfig(
        host=HOST,
        port=port,
        nick="me",
        known_servers=str(tmp_path / "known_servers"),
        backoff_min=0.1,
        backoff_max=0.5,
    )
    config.sts_policies = str(tmp_path / "sts_policies")  # set after: older code runs this too
    return TuichatApp(config, channels=["#chat"], clock=fixed_clock, server_label="test-server")


async def test_a_host_verified_by_a_ca_refuses_a_self_signed_certificate_without_asking(
    servers: Servers,
    authority: Authority,
    make_cert: Callable[[str], Cert],
    tmp_path: Path,
) -> None:
    known = tmp_path / "known_servers"
    signed = start_tls_server(servers, authority.server)
    app = tls_app(tls_config(signed.tls_address[1], known))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        assert dialog_of(app) is None  # a CA vouched for it: nothing to ask

    # later, the same host shows a self-signed certificate (an impostor on another port, or
    # the same one): no first-use prompt, a refusal that says why, and no retrying
    impostor = start_tls_server(servers, make_cert("impostor"))
    app = tls_app(tls_config(impostor.tls_address[1], known))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot,
            lambda: "REFUSED" in log_text(app) or dialog_of(app) is not None,
            what="a refusal",
            show=lambda: screen_state(app),
        )
        assert dialog_of(app) is None
        await wait_for_end(pilot, app)
        text = " ".join(log_text(app).split())
        assert "not signed by an authority you trust" in text
        assert "impersonating" in text
        assert "retrying" not in status_text(app)
        assert not app.client.connected
    assert tls.KnownServers(known).get(HOST, impostor.tls_address[1]) is None
    assert tls.KnownServers(known).verified_by_ca(HOST)


async def test_sts_upgrades_a_plain_connection_to_tls_and_is_kept_for_later(
    servers: Servers, authority: Authority, tmp_path: Path
) -> None:
    server = start_sts_server(servers, authority.server)
    tls_port = server.tls_address[1]
    app = plain_app(server.port, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        app.action_select_window(1)
        await wait_for_log(pilot, f"upgrading to TLS on port {tls_port}")
        assert app.client._secure and app.client._port == tls_port
    # over TLS the server gave the policy's duration: it is kept
    assert tls.StsPolicies(tmp_path / "sts_policies").port(HOST) == tls_port

    # a later run, told to connect in plain text, goes straight to TLS
    app = plain_app(server.port, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        assert app.client._secure and app.client._port == tls_port
        app.action_select_window(1)
        assert "upgrading" not in log_text(app)


async def test_an_expired_or_dropped_sts_policy_is_not_followed(tmp_path: Path) -> None:
    now = [1000.0]
    policies = tls.StsPolicies(tmp_path / "sts", clock=lambda: now[0])
    policies.set(HOST, 6697, 60)
    assert policies.port(HOST) == 6697
    now[0] += 61
    assert policies.port(HOST) is None
    policies.set(HOST, 6697, 60)
    policies.set(HOST, 6697, 0)  # duration=0: the server withdrew it
    assert policies.port(HOST) is None
    assert (tmp_path / "sts").stat().st_mode & 0o777 == 0o600


async def test_a_kept_sts_policy_never_falls_back_to_plain_text(
    servers: Servers, tmp_path: Path
) -> None:
    plain = servers.start()  # a server that would take the connection in plain text
    closed = socket.create_server((HOST, 0))  # the policy's TLS port: nobody answers there
    tls_port = closed.getsockname()[1]
    closed.close()
    # kept from an earlier run, in the file's format (host, port, when it expires)
    (tmp_path / "sts_policies").write_text(f"{HOST} {tls_port} {time.time() + 3600:.0f}\n")
    app = plain_app(plain.port, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        # the status line names the reason from the second failed attempt on
        await wait_for(
            pilot,
            lambda: (
                f"(connection refused by {HOST} port" in status_text(app) or app.client.registered
            ),
            what="a second failed attempt",
            show=lambda: screen_state(app),
        )
        assert not app.client.registered
        assert f"port {tls_port}" in log_text(app)  # where it tried: TLS, as the policy says
        assert not plain.state.clients  # never in plain text
