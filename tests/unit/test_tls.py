"""TLS pieces without the app: fingerprints, the known-servers file, the self-signed certificate,
and SecureSocket (TLS on memory buffers) against the standard library's own TLS server."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tuichat import tls

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (made once: key generation is the slow part)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    tls.make_self_signed(cert, key, "tuichat-test")
    return cert, key


# -- fingerprints ---------------------------------------------------------------------------------


def test_fingerprint_is_the_sha256_of_the_der_in_colon_separated_pairs() -> None:
    der = b"not really a certificate"
    digest = hashlib.sha256(der).hexdigest().upper()
    fp = tls.fingerprint(der)
    assert fp.replace(":", "") == digest
    assert len(fp.split(":")) == 32
    assert all(len(pair) == 2 for pair in fp.split(":"))


FP = tls.fingerprint(b"x")
BARE = FP.replace(":", "")


@pytest.mark.parametrize(
    "typed",
    [
        FP,  # as tuichat prints it
        FP.lower(),
        BARE,  # hex digits only
        BARE.lower(),
        f"SHA256:{FP}",  # with the algorithm, as some tools print it
        f"sha256:{BARE.lower()}",
        f"  {FP}\n",  # pasted with whitespace around
        " ".join(FP.split(":")),  # pairs separated by spaces
    ],
)
def test_normalize_fingerprint_accepts_the_usual_forms(typed: str) -> None:
    assert tls.normalize_fingerprint(typed) == FP


def test_certificate_fingerprint_reads_a_pem_file(cert_pair: tuple[Path, Path]) -> None:
    cert, _ = cert_pair
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    assert tls.certificate_fingerprint(cert) == tls.fingerprint(der)
    assert tls.certificate_fingerprint(str(cert)) == tls.fingerprint(der)


# -- the self-signed certificate ------------------------------------------------------------------


def test_make_self_signed_makes_a_certificate_ssl_loads_and_a_private_key(
    tmp_path: Path,
) -> None:
    cert, key = tmp_path / "data" / "cert.pem", tmp_path / "data" / "key.pem"
    old = os.umask(0)  # even with a careless umask, the key is for its owner only
    try:
        tls.make_self_signed(cert, key, "chat.example")
    finally:
        os.umask(old)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key.read_text()
    # the server's context loads it; a client that trusts it accepts it for every local name
    # (the handshakes below check 127.0.0.1 for real)
    tls.server_context(cert, key)
    ssl.create_default_context(cafile=str(cert))
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    san = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    names = set(san.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    assert names == {"chat.example", "localhost", socket.gethostname()}
    assert addresses == {"127.0.0.1", "::1"}
    assert loaded.subject == loaded.issuer  # self-signed


def test_make_self_signed_makes_an_existing_key_file_private(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    key.write_text("old key\n")
    key.chmod(0o644)
    tls.make_self_signed(cert, key, "chat.example")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_make_self_signed_makes_a_new_key_each_time(tmp_path: Path) -> None:
    first, second = tmp_path / "a.pem", tmp_path / "b.pem"
    tls.make_self_signed(first, tmp_path / "a.key", "x")
    tls.make_self_signed(second, tmp_path / "b.key", "x")
    assert tls.certificate_fingerprint(first) != tls.certificate_fingerprint(second)


# -- the known-servers file -----------------------------------------------------------------------


def test_known_servers_is_empty_without_a_file(tmp_path: Path) -> None:
    known = tls.KnownServers(tmp_path / "none" / "known_servers")
    assert known.get("chat.example", 6697) is None
    assert not known.path.exists()


def test_known_servers_remembers_per_host_and_port_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "config" / "tuichat" / "known_servers"
    one, two = tls.fingerprint(b"1"), tls.fingerprint(b"2")
    known = tls.KnownServers(path)
    known.add("Chat.Example", 6697, one)
    known.add("chat.example", 7000, two)
    known.add("127.0.0.1", 6697, two)

    again = tls.KnownServers(path)  # another run of tuichat
    assert again.get("chat.example", 6697) == one
    assert again.get("CHAT.EXAMPLE", 6697) == one  # host names are not case-sensitive
    assert again.get("chat.example", 7000) == two
    assert again.get("127.0.0.1", 6697) == two
    assert again.get("chat.example", 6667) is None
    assert again.get("other.example", 6697) is None
    assert sorted(path.read_text().splitlines()) == sorted(
        [f"chat.example:6697 {one}", f"chat.example:7000 {two}", f"127.0.0.1:6697 {two}"]
    )


def test_known_servers_add_replaces_the_entry_of_that_server(tmp_path: Path) -> None:
    known = tls.KnownServers(tmp_path / "known_servers")
    known.add("chat.example", 6697, tls.fingerprint(b"old"))
    known.add("chat.example", 6697, tls.fingerprint(b"new"))
    assert known.get("chat.example", 6697) == tls.fingerprint(b"new")
    assert len(known.path.read_text().splitlines()) == 1


def test_known_servers_ignores_comments_and_junk(tmp_path: Path) -> None:
    path = tmp_path / "known_servers"
    fp = tls.fingerprint(b"kept")
    path.write_text(
        "# written by hand\n"
        "\n"
        "just-one-field\n"
        "three fields here\n"
        f"#commented:6697 {tls.fingerprint(b'no')}\n"
        f"chat.example:6697 {fp}\n"
    )
    known = tls.KnownServers(path)
    assert known.get("chat.example", 6697) == fp
    assert known.get("#commented", 6697) is None


# -- SecureSocket against the standard library's TLS server ---------------------------------------


class EchoServer:
    """A TLS echo server made of the standard library only (`SSLContext.wrap_socket`), one
    connection at a time, in one thread: what it receives it sends back. After a line `QUIT` it
    ends the session with a close_notify."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server((HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="echo-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            raw, _ = self.listener.accept()
            raw.settimeout(10)
            with self.context.wrap_socket(raw, server_side=True) as conn:
                while data := conn.recv(65536):
                    conn.sendall(data)
                    if data.endswith(b"QUIT\r\n"):
                        break
                with contextlib.suppress(OSError, ssl.SSLError):
                    conn.unwrap()  # close_notify, so the client sees a clean end
        except (OSError, ssl.SSLError) as error:
            self.error = error

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def echo_server(cert_pair: tuple[Path, Path]) -> Iterator[EchoServer]:
    server = EchoServer(*cert_pair)
    yield server
    server.close()


def connect(port: int, context: ssl.SSLContext) -> tls.SecureSocket:
    secure = tls.SecureSocket(socket.create_connection((HOST, port), timeout=5), context, HOST)
    secure.handshake(5)
    return secure


def run_threads(*targets: Callable[[], None]) -> None:
    """Run each target in its own thread; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # handed to the test thread
                errors.append(error)

        return run

    threads = [threading.Thread(target=guarded(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive(), "a thread is stuck"
    if errors:
        raise errors[0]


def test_secure_socket_verifies_and_reports_the_peer_certificate(
    echo_server: EchoServer, cert_pair: tuple[Path, Path]
) -> None:
    cert, _ = cert_pair
    secure = connect(echo_server.port, ssl.create_default_context(cafile=str(cert)))
    try:
        der = secure.peer_certificate()
        assert der is not None
        assert tls.fingerprint(der) == tls.certificate_fingerprint(cert)
        secure.sendall(b"hello\r\n")
        assert secure.recv(100) == b"hello\r\n"
    finally:
        secure.close()


def test_secure_socket_refuses_an_untrusted_certificate(echo_server: EchoServer) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(echo_server.port, ssl.create_default_context())  # the system's CAs only


def test_secure_socket_handshake_times_out_on_a_silent_server() -> None:
    with socket.create_server((HOST, 0)) as silent:  # accepts (backlog) and never answers
        plain = socket.create_connection(silent.getsockname()[:2], timeout=5)
        secure = tls.SecureSocket(plain, ssl.create_default_context(), HOST)
        try:
            with pytest.raises(TimeoutError):
                secure.handshake(0.2)
        finally:
            secure.close()


def test_secure_socket_sends_from_several_threads_while_another_receives(
    echo_server: EchoServer, cert_pair: tuple[Path, Path]
) -> None:
    """The client's pattern: one thread in recv() all the time, sends from any thread. Nothing
    may be lost, reordered within a sender, or cut into another sender's line."""
    cert, _ = cert_pair
    secure = connect(echo_server.port, ssl.create_default_context(cafile=str(cert)))
    senders, count = 3, 1500
    # lines of varied lengths, now and then one of 20 kB (more than one TLS record)
    payload = {
        s: [f"{s} {n} " + "x" * (20_000 if n % 250 == 0 else n % 200) for n in range(count)]
        for s in range(senders)
    }
    expected_bytes = sum(len(line) + 2 for lines in payload.values() for line in lines)
    received = bytearray()

    def send(sender: int) -> Callable[[], None]:
        def run() -> None:
            for line in payload[sender]:
                secure.sendall(line.encode() + b"\r\n")

        return run

    def receive() -> None:
        while len(received) < expected_bytes:
            data = secure.recv(65536)
            assert data, f"the stream ended after {len(received)} of {expected_bytes} bytes"
            received.extend(data)

    try:
        run_threads(receive, *(send(s) for s in range(senders)))
        lines = received.decode().split("\r\n")
        assert lines.pop() == ""
        by_sender: dict[int, list[str]] = {s: [] for s in range(senders)}
        for line in lines:
            by_sender[int(line.split(" ", 1)[0])].append(line)
        for sender in range(senders):
            assert by_sender[sender] == payload[sender]
        # and the connection still works both ways afterwards
        secure.sendall(b"done\r\n")
        assert secure.recv(100) == b"done\r\n"
    finally:
        secure.shutdown(socket.SHUT_RDWR)
        secure.close()
    echo_server.thread.join(5)
    assert echo_server.error is None


def test_secure_socket_recv_returns_empty_at_a_clean_end(
    echo_server: EchoServer, cert_pair: tuple[Path, Path]
) -> None:
    cert, _ = cert_pair
    secure = connect(echo_server.port, ssl.create_default_context(cafile=str(cert)))
    try:
        secure.sendall(b"QUIT\r\n")
        assert secure.recv(100) == b"QUIT\r\n"
        assert secure.recv(100) == b""  # the server's close_notify
        assert secure.recv(100) == b""  # and again: the end stays the end
    finally:
        secure.close()
