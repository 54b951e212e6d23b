"""The app over TLS against a real tuichat server with a self-signed certificate: trust on first
use (the dialog, y and n), a remembered server, a changed certificate refused loudly, a pinned
fingerprint, and --insecure saying that it is unsafe."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Static

from tuichat import cli, tls
from tuichat.app import TuichatApp
from tuichat.net.client import ClientConfig
from tuichat.server import Server, ServerConfig
from tuichat.state import Config
from tuichat.widgets.trust_dialog import TrustDialog

from .helpers import (
    HOST,
    SIZE,
    RawUser,
    Servers,
    fixed_clock,
    log_text,
    screen_state,
    status_text,
    submit,
    wait_for,
    wait_for_joined,
    wait_for_log,
)

# -- certificates, servers and users over TLS -----------------------------------------------------


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path
    fingerprint: str


@pytest.fixture
def make_cert(tmp_path: Path) -> Callable[[str], Cert]:
    """`make_cert("a")`: a new self-signed certificate (and key) in tmp_path."""

    def make(name: str) -> Cert:
        cert, key = tmp_path / f"{name}-cert.pem", tmp_path / f"{name}-key.pem"
        tls.make_self_signed(cert, key, "tuichat-test")
        return Cert(cert, key, tls.certificate_fingerprint(cert))

    return make


def start_tls_server(servers: Servers, cert: Cert, port: int = 0) -> Server:
    """A tuichat server with only a TLS listener on 127.0.0.1 (stopped, and its log checked for
    errors, by the `servers` fixture)."""
    config = ServerConfig(
        host=HOST, port=None, tls_port=port, tls_cert=str(cert.cert), tls_key=str(cert.key)
    )
    server = Server(config, clock=fixed_clock)
    server.start()
    servers.started.append(server)
    return server


class TlsUser(RawUser):
    """A RawUser over TLS (verifying the server against `cert`, as a CA): the same reader thread
    and the same `send`/`expect`. Its socket is a SecureSocket, the one object in `ssl` terms that
    allows a reader thread and a sending thread at once (tests/unit/test_tls.py checks it)."""

    def __init__(self, port: int, nick: str, cert: Cert) -> None:
        # RawUser.__init__ connects in plain text; this is the same with a TLS handshake
        self.nick = nick
        plain = socket.create_connection((HOST, port), timeout=5)
        context = ssl.create_default_context(cafile=str(cert.cert))
        secure = tls.SecureSocket(plain, context, HOST)
        secure.handshake(5)
        secure.settimeout(None)
        self.sock = secure  # type: ignore[assignment]
        self.lines: list[str] = []
        self.eof = False
        self._pos = 0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name=f"tls-user-{nick}", daemon=True)
        self._thread.start()


@pytest.fixture
def tls_user() -> Iterator[Callable[..., TlsUser]]:
    """`tls_user(server, cert, nick, *channels)`: a registered TLS user, closed at teardown."""
    made: list[TlsUser] = []

    def make(server: Server, cert: Cert, nick: str, *channels: str) -> TlsUser:
        user = TlsUser(server.tls_address[1], nick, cert)
        made.append(user)
        user.register()
        for channel in channels:
            user.join(channel)
        return user

    yield make
    for user in made:
        user.close()


def tls_config(port: int, known: Path | None, **settings: object) -> ClientConfig:
    """The app's connection over TLS, reconnecting quickly (0.1 s to 0.5 s) when it does."""
    return ClientConfig(
        host=HOST,
        port=port,
        nick="me",
        tls=True,
        known_servers=str(known) if known is not None else None,
        backoff_min=0.1,
        backoff_max=0.5,
        **settings,  # type: ignore[arg-type]
    )


def tls_app(config: ClientConfig) -> TuichatApp:
    return TuichatApp(config, channels=["#chat"], clock=fixed_clock, server_label="test-server")


# -- waiting and reading --------------------------------------------------------------------------


def dialog_of(app: TuichatApp) -> TrustDialog | None:
    return app.screen if isinstance(app.screen, TrustDialog) else None


async def wait_for_dialog(pilot: Pilot[Any], app: TuichatApp) -> TrustDialog:
    """Wait until the trust dialog is on screen, laid out (its buttons can be clicked)."""

    def shown() -> TrustDialog | None:
        dialog = dialog_of(app)
        if dialog is None:
            return None
        buttons = dialog.query("#trust-yes").results(Button)
        return dialog if any(button.region.area for button in buttons) else None

    return await wait_for(pilot, shown, what="the trust dialog", show=lambda: screen_state(app))


def dialog_text(dialog: TrustDialog) -> str:
    content = dialog.query_one("#trust-text", Static).content
    return str(getattr(content, "plain", content))


def squeezed(text: str) -> str:
    """Text without whitespace: a fingerprint wrapped over two log lines is found again."""
    return "".join(text.split())


async def wait_for_end(pilot: Pilot[Any], app: TuichatApp) -> None:
    """Wait until the connection's thread has ended: nothing will reconnect or ask again."""
    thread = app.client._thread
    assert thread is not None
    await wait_for(
        pilot,
        lambda: not thread.is_alive(),
        what="the connection to give up for good",
        show=lambda: screen_state(app),
    )


async def chat_both_ways(pilot: Pilot[Any], bob: RawUser) -> None:
    """bob (over TLS) and the app say something to each other in #chat."""
    await bob.expect(pilot, r"^:me!\S+ JOIN :?#chat")
    bob.send("PRIVMSG #chat :hello over TLS")
    await wait_for_log(pilot, "08:00 <bob> hello over TLS")
    await submit(pilot, "hi bob, encrypted")
    await bob.expect(pilot, r"^:me!\S+ PRIVMSG #chat :hi bob, encrypted$")


# -- trust on first use ---------------------------------------------------------------------------


async def test_first_connection_asks_and_y_trusts_and_remembers(
    servers: Servers,
    make_cert: Callable[[str], Cert],
    tls_user: Callable[..., TlsUser],
    tmp_path: Path,
) -> None:
    cert = make_cert("server")
    server = start_tls_server(servers, cert)
    port = server.tls_address[1]
    bob = tls_user(server, cert, "bob", "#chat")
    known = tmp_path / "known_servers"
    app = tls_app(tls_config(port, known))
    async with app.run_test(size=SIZE) as pilot:
        dialog = await wait_for_dialog(pilot, app)
        assert (dialog.host, dialog.port, dialog.fingerprint) == (HOST, port, cert.fingerprint)
        text = dialog_text(dialog)
        assert cert.fingerprint in text
        assert f"{HOST} port {port}" in text
        assert "self-signed" in text
        assert {b.id for b in dialog.query(Button)} == {"trust-yes", "trust-no"}
        # nothing is remembered, and nothing is joined, before the user answers
        assert not known.exists()
        assert "waiting for you to trust the certificate" in status_text(app)
        assert not app.client.registered

        await pilot.press("y")
        await wait_for_joined(pilot, "#chat")
        assert dialog_of(app) is None
        assert tls.KnownServers(known).get(HOST, port) == cert.fingerprint
        await chat_both_ways(pilot, bob)


async def test_the_trust_button_trusts_too(
    servers: Servers, make_cert: Callable[[str], Cert], tmp_path: Path
) -> None:
    cert = make_cert("server")
    server = start_tls_server(servers, cert)
    known = tmp_path / "known_servers"
    app = tls_app(tls_config(server.tls_address[1], known))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_dialog(pilot, app)
        await pilot.click("#trust-yes")
        await wait_for_joined(pilot, "#chat")
        assert tls.KnownServers(known).get(HOST, server.tls_address[1]) == cert.fingerprint


async def test_trusting_after_the_server_gave_up_waiting_still_connects(
    servers: Servers,
    make_cert: Callable[[str], Cert],
    tmp_path: Path,
) -> None:
    """The question holds the connection open; a user slower than the server's registration
    timeout still ends up connected (on a new connection, no second question)."""
    cert = make_cert("server")
    config = ServerConfig(
        host=HOST,
        port=None,
        tls_port=0,
        tls_cert=str(cert.cert),
        tls_key=str(cert.key),
        state=Config(registration_timeout=0.2),
    )
    server = Server(config, clock=time.time)  # a clock that moves, for the timeout
    server.start()
    servers.started.append(server)
    known = tmp_path / "known_servers"
    app = tls_app(tls_config(server.tls_address[1], known))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_dialog(pilot, app)
        await wait_for(
            pilot,
            lambda: not server.state.clients,
            what="the server to drop the unregistered connection",
        )
        # the new connection has all the time it needs (0.2 s is short on a loaded machine)
        with server.lock:
            server.state.config.registration_timeout = 60.0
        await pilot.press("y")
        await wait_for_joined(pilot, "#chat")
        assert dialog_of(app) is None
        assert tls.KnownServers(known).get(HOST, server.tls_address[1]) == cert.fingerprint


@pytest.mark.parametrize("refuse", ["n", "escape", "#trust-no"])
async def test_first_connection_refused_gives_up_with_a_clear_message(
    servers: Servers,
    make_cert: Callable[[str], Cert],
    tls_user: Callable[..., TlsUser],
    tmp_path: Path,
    refuse: str,
) -> None:
    cert = make_cert("server")
    server = start_tls_server(servers, cert)
    port = server.tls_address[1]
    bob = tls_user(server, cert, "bob", "#chat")
    known = tmp_path / "known_servers"
    app = tls_app(tls_config(port, known))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_dialog(pilot, app)
        if refuse.startswith("#"):
            await pilot.click(refuse)
        else:
            await pilot.press(refuse)
        await wait_for_log(pilot, f"the certificate of {HOST} port {port} was not trusted")
        await wait_for_end(pilot, app)
        # said once, no retry announced or attempted, no second question, nothing remembered
        text = log_text(app)
        assert text.count("was not trusted") == 1
        assert "reconnecting" not in text
        status = status_text(app)
        assert "disconnected" in status
        assert "retrying" not in status
        assert dialog_of(app) is None
        assert not app.client.connected
        assert not known.exists()
        assert app.is_running
        # the server never saw us register
        bob.send("WHOIS me")
        await bob.expect(pilot, r"^:\S+ 401 bob me ")


async def test_a_remembered_server_connects_without_asking(
    servers: Servers,
    make_cert: Callable[[str], Cert],
    tls_user: Callable[..., TlsUser],
    tmp_path: Path,
) -> None:
    cert = make_cert("server")
    server = start_tls_server(servers, cert)
    port = server.tls_address[1]
    bob = tls_user(server, cert, "bob", "#chat")
    known = tmp_path / "known_servers"
    tls.KnownServers(known).add(HOST, port, cert.fingerprint)
    app = tls_app(tls_config(port, known))
    async with app.run_test(size=SIZE) as pilot:
        # the connection would wait for an answer forever if a question were asked
        await wait_for_joined(pilot, "#chat")
        assert dialog_of(app) is None
        await chat_both_ways(pilot, bob)


async def test_a_changed_certificate_is_refused_loudly_and_not_retried(
    servers: Servers, make_cert: Callable[[str], Cert], tmp_path: Path
) -> None:
    old, new = make_cert("old"), make_cert("new")
    server = start_tls_server(servers, old)
    port = server.tls_address[1]
    known = tmp_path / "known_servers"
    tls.KnownServers(known).add(HOST, port, old.fingerprint)
    app = tls_app(tls_config(port, known))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")

        # the server comes back on the same port with another certificate (an impostor, or a
        # reinstalled server): the app reconnects by itself, and must refuse it
        server.stop()
        start_tls_server(servers, new, port=port)
        await wait_for_log(pilot, "REFUSED")
        await wait_for_end(pilot, app)

        text = log_text(app)
        assert squeezed(old.fingerprint) in squeezed(text)
        assert squeezed(new.fingerprint) in squeezed(text)
        assert "impersonating" in text
        assert text.count("REFUSED") == 1
        # the server window says it too
        app.action_select_window(1)
        await wait_for_log(pilot, "REFUSED")
        assert squeezed(new.fingerprint) in squeezed(log_text(app))
        status = status_text(app)
        assert "disconnected" in status
        assert "retrying" not in status
        # no offer to trust the new certificate, and the old one is still the trusted one
        assert dialog_of(app) is None
        assert not app.client.connected
        assert tls.KnownServers(known).get(HOST, port) == old.fingerprint


# -- a pinned fingerprint (--fingerprint) ---------------------------------------------------------


@pytest.mark.parametrize("form", ["as printed", "lower case, no colons", "SHA256: prefix"])
async def test_the_right_pinned_fingerprint_connects_without_asking(
    servers: Servers,
    make_cert: Callable[[str], Cert],
    tls_user: Callable[..., TlsUser],
    tmp_path: Path,
    form: str,
) -> None:
    cert = make_cert("server")
    server = start_tls_server(servers, cert)
    bob = tls_user(server, cert, "bob", "#chat")
    pin = {
        "as printed": cert.fingerprint,
        "lower case, no colons": cert.fingerprint.replace(":", "").lower(),
        "SHA256: prefix": f"SHA256:{cert.fingerprint}",
    }[form]
    known = tmp_path / "known_servers"
    app = tls_app(tls_config(server.tls_address[1], known, fingerprint=pin))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        assert dialog_of(app) is None
        await chat_both_ways(pilot, bob)


async def test_a_wrong_pinned_fingerprint_is_refused(
    servers: Servers, make_cert: Callable[[str], Cert], tmp_path: Path
) -> None:
    cert, other = make_cert("server"), make_cert("other")
    server = start_tls_server(servers, cert)
    port = server.tls_address[1]
    known = tmp_path / "known_servers"
    # even a remembered right one does not override the pin the user typed
    tls.KnownServers(known).add(HOST, port, cert.fingerprint)
    app = tls_app(tls_config(port, known, fingerprint=other.fingerprint))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_log(pilot, "REFUSED")
        await wait_for_end(pilot, app)
        text = squeezed(log_text(app))
        assert squeezed(other.fingerprint) in text  # expected
        assert squeezed(cert.fingerprint) in text  # got
        assert dialog_of(app) is None
        assert not app.client.connected
        assert "retrying" not in status_text(app)


# -- --insecure -----------------------------------------------------------------------------------


@pytest.fixture
def cli_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[list[str]], TuichatApp]:
    """`cli_app(["connect", ...])`: the app `tuichat connect ...` builds, not yet run (the
    config file and data directory are empty ones in tmp_path)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    built: list[TuichatApp] = []

    def run(self: TuichatApp, *args: object, **kwargs: object) -> None:
        built.append(self)

    monkeypatch.setattr(TuichatApp, "run", run)

    def make(argv: list[str]) -> TuichatApp:
        assert cli.main(argv) == 0
        (app,) = built[-1:]
        return app

    return make


async def test_insecure_connects_without_asking_and_says_it_is_unsafe(
    servers: Servers,
    make_cert: Callable[[str], Cert],
    tls_user: Callable[..., TlsUser],
    cli_app: Callable[[list[str]], TuichatApp],
    tmp_path: Path,
) -> None:
    cert = make_cert("server")
    server = start_tls_server(servers, cert)
    port = server.tls_address[1]
    bob = tls_user(server, cert, "bob", "#chat")
    app = cli_app(["connect", f"me@{HOST}:{port}", "--insecure", "--channel", "#chat"])
    assert app.config.tls and app.config.insecure
    async with app.run_test(size=SIZE) as pilot:
        await wait_for_joined(pilot, "#chat")
        assert dialog_of(app) is None
        # where the user is looking once joined, not only in the server window
        await wait_for_log(pilot, "--insecure: the server's certificate is NOT checked")
        assert "do not trust this" in log_text(app)
        await chat_both_ways(pilot, bob)
    # nothing was remembered: --insecure trusts nothing for later
    assert not (tmp_path / "data" / "tuichat" / "known_servers").exists()


def test_cli_tls_options_make_the_client_config(
    cli_app: Callable[[list[str]], TuichatApp], tmp_path: Path
) -> None:
    fp = tls.fingerprint(b"x")
    plain = cli_app(["connect", "me@chat.example"]).config
    assert (plain.tls, plain.port, plain.insecure, plain.fingerprint) == (False, 6667, False, None)

    secure = cli_app(["connect", "me@chat.example", "--tls"]).config
    assert (secure.tls, secure.port, secure.insecure) == (True, 6697, False)
    assert secure.known_servers == str(tmp_path / "data" / "tuichat" / "known_servers")

    pinned = cli_app(["connect", "me@chat.example:7000", "--fingerprint", fp]).config
    assert (pinned.tls, pinned.port, pinned.fingerprint) == (True, 7000, fp)

    insecure = cli_app(["connect", "me@chat.example", "--insecure"]).config
    assert (insecure.tls, insecure.port, insecure.insecure) == (True, 6697, True)

    cert = tmp_path / "me.pem"
    with_cert = cli_app(["connect", "me@chat.example", "--tls", "--tls-client-cert", str(cert)])
    assert with_cert.config.client_cert == str(cert)


def test_cli_insecure_greeting_is_only_for_insecure(
    cli_app: Callable[[list[str]], TuichatApp],
) -> None:
    assert not any("NOT checked" in line for line in cli_app(["connect", "me@h", "--tls"]).greeting)
    greeting = cli_app(["connect", "me@h", "--insecure"]).greeting
    assert any("NOT checked" in line for line in greeting)
