"""Running what the command line asked for: `tuichat serve` (a server until a signal ends it,
within EXIT_DEADLINE seconds whatever it is doing), `tuichat connect` and bare `tuichat` (the
app, after starting a local server if none answers), and the secrets and files they read."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sqlite3
import ssl
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from tuichat import files
from tuichat.net.protocol import DEFAULT_PORT, DEFAULT_TLS_PORT, NICKLEN

if TYPE_CHECKING:
    from tuichat.server import Server


MIB = 1024 * 1024
# after SIGTERM/SIGINT, a server still running this long is ended at once (README: within 2 s)
EXIT_DEADLINE = 1.8
# the abuse limits: flag, default, what it bounds (documented in SECURITY.md)
LIMITS: list[tuple[str, float, str]] = [
    ("--max-clients", 10000, "connections in total"),
    ("--max-clients-per-ip", 100, "connections from one address"),
    ("--connects-per-minute", 60, "new connections from one address in a minute"),
    ("--flood-burst", 10, "lines a client may send at once before it is slowed"),
    ("--flood-rate", 2, "lines a second after the burst (0: no flood control)"),
    ("--flood-queue", 100, "lines waiting before a flooding client is cut off (Excess Flood)"),
    ("--max-channels", 50, "channels one user may be in"),
    ("--max-targets", 4, "targets of one PRIVMSG or NOTICE"),
    ("--nicklen", NICKLEN, "nick length"),
    ("--channellen", 64, "channel name length"),
    ("--topiclen", 390, "topic length in bytes"),
    ("--awaylen", 200, "away message length in bytes"),
    ("--kicklen", 255, "kick reason length in bytes"),
    ("--login-failures", 5, "wrong passwords (OPER, SASL) for one name before logins slow down"),
    ("--login-failures-per-address", 20, "wrong passwords from one address before the same"),
    ("--registrations-per-hour", 5, "accounts registered from one address in an hour"),
    ("--history-quota", 16, "MiB of history one account may store a day"),
    ("--history-quota-per-address", 64, "MiB of history one address may store a day"),
]


def default_db_path() -> Path:
    """Where history and accounts live unless `--db` says otherwise."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("tuichat", appauthor=False)) / "tuichat.db"


def _oper(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


PASSWORD_ENV = "TUICHAT_PASSWORD"  # a password kept out of the command line (/proc/PID/cmdline)


def read_secret_file(path: Path) -> str:
    """A secret file's text; a warning on stderr when others may read it. OSError if unreadable."""
    text = path.read_text(encoding="utf-8")
    if path.stat().st_mode & 0o077:
        print(
            f"tuichat: warning: {path} can be read by other users (chmod 600 {path})",
            file=sys.stderr,
        )
    return text


def _opers_from_file(path: Path) -> list[tuple[str, str]]:
    """NAME:PASSWORD lines (blank lines and # comments skipped). OSError or ValueError."""
    opers = []
    for number, raw in enumerate(read_secret_file(path).splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            opers.append(_oper(text))
        except argparse.ArgumentTypeError:
            raise ValueError(f"line {number}: expected NAME:PASSWORD") from None
    return opers


def _password(args: argparse.Namespace) -> str | None:
    """--password, else --password-file's first line, else $TUICHAT_PASSWORD. OSError."""
    if args.password is not None:
        return str(args.password)
    if args.password_file is not None:
        lines = read_secret_file(args.password_file).splitlines()
        return lines[0] if lines else ""
    return os.environ.get(PASSWORD_ENV) or None


def _tls_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """The certificate and key to serve TLS with: the given ones, or a self-signed pair made on
    the first start in the data directory and reused after."""
    from tuichat import tls

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("give both --tls-cert and --tls-key, or neither")
    if args.tls_cert is not None:
        for path in (args.tls_cert, args.tls_key):
            if not path.is_file():
                raise ValueError(f"{path} does not exist")
        return args.tls_cert, args.tls_key
    data = default_db_path().parent
    cert, key = data / "tls-cert.pem", data / "tls-key.pem"
    if not (cert.is_file() and key.is_file()):
        tls.make_self_signed(cert, key, args.server_name)
        print(f"tuichat: made a self-signed TLS certificate: {cert}", file=sys.stderr)
    return cert, key


def _fail(message: str, code: int = 2) -> int:
    print(f"tuichat: {message}", file=sys.stderr)
    return code


def serve(args: argparse.Namespace) -> int:
    from tuichat.server import Server, ServerConfig
    from tuichat.state import Config

    motd: list[str] | None = None
    if args.motd is not None:
        try:
            motd = args.motd.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            return _fail(f"cannot read the MOTD file {args.motd}: {error.strerror or error}")
    try:
        password = _password(args)
        opers = list(args.oper)
        if args.oper_file is not None:
            opers += _opers_from_file(args.oper_file)
    except (OSError, ValueError) as error:
        return _fail(f"cannot read a secret file: {getattr(error, 'strerror', None) or error}")
    db = None if args.no_history else (args.db if args.db is not None else default_db_path())
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    use_tls = args.tls or args.tls_port is not None or args.tls_cert is not None
    port = args.port if args.port is not None or use_tls else DEFAULT_PORT
    tls_port = (
        (args.tls_port if args.tls_port is not None else DEFAULT_TLS_PORT) if use_tls else None
    )
    cert = key = None
    if use_tls:
        try:
            cert, key = _tls_files(args)
        except (OSError, ValueError) as error:
            return _fail(f"TLS: {error}")
    config = ServerConfig(
        host=args.host,
        port=port,
        tls_port=tls_port,
        tls_cert=str(cert) if cert else None,
        tls_key=str(key) if key else None,
        sts=args.tls_cert is not None,
        max_clients=int(args.max_clients),
        max_per_ip=int(args.max_clients_per_ip),
        connects_per_minute=int(args.connects_per_minute),
        flood_burst=int(args.flood_burst) or 1,
        flood_rate=args.flood_rate,
        flood_queue=int(args.flood_queue) or 1_000_000,
        sendq=args.sendq,
        max_output_memory=int(args.max_output_memory),
        db=str(db) if db is not None else None,
        history_days=args.history_days,
        account_expiry_days=args.account_expiry_days,
        state=Config(
            server_name=args.server_name,
            network=args.network,
            motd=motd,
            password=password,
            opers=dict(opers),
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            registration_timeout=args.registration_timeout,
            chanlimit=int(args.max_channels) or 1_000_000,
            maxtargets=int(args.max_targets) or 1000,
            nicklen=int(args.nicklen) or NICKLEN,
            channellen=int(args.channellen) or 64,
            topiclen=int(args.topiclen) or 390,
            awaylen=int(args.awaylen) or 200,
            kicklen=int(args.kicklen) or 255,
            join_replay=max(0, args.join_replay),
            open_registration=args.open_registration,
            require_tls_auth=args.require_tls_auth,
            login_failures=int(args.login_failures),
            login_failures_per_address=int(args.login_failures_per_address),
            registrations_per_hour=int(args.registrations_per_hour),
            history_quota_account=int(args.history_quota * MIB),
            history_quota_address=int(args.history_quota_per_address * MIB),
        ),
    )
    try:
        server = Server(config)
    except sqlite3.Error as error:
        return _fail(f"cannot open the database {db}: {error}", 1)
    # handlers first: a signal that comes as soon as the log says "listening" still ends the
    # server cleanly
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if hasattr(signal, "SIGHUP"):  # its terminal closed: end as cleanly as on SIGTERM
        signal.signal(signal.SIGHUP, on_signal)
    try:
        server.start()
    except OSError as error:
        ports = " and ".join(str(p) for p in (port, tls_port) if p is not None)
        return _fail(f"cannot listen on {args.host} port {ports}: {error.strerror or error}", 1)
    except ssl.SSLError as error:
        return _fail(f"TLS: cannot use the certificate: {error}", 1)
    stop.wait()
    # the README promises an exit within two seconds of the signal, whatever the server is stuck
    # in (a request under the state lock, SQLite waiting for another process's lock...)
    _exit_if_still_running(time.monotonic() + EXIT_DEADLINE)
    logging.getLogger("tuichat.server").info("shutting down")
    server.stop()
    if server.stalled:
        # a thread is stuck inside a request: the interpreter's own exit could wait for it (or
        # for SQLite's lock, closing its connection), so leave now; everything delivered was
        # committed before it went out, and SQLite's WAL survives an exit at any point
        _exit_now()
    return 0


def _exit_if_still_running(deadline: float) -> None:
    """A watchdog: at `deadline`, if the process has not exited in an orderly way, it exits
    (status 0) after flushing the logs."""

    def watch() -> None:
        threading.Event().wait(max(0.0, deadline - time.monotonic()))
        logging.getLogger("tuichat.server").warning("shutdown too slow: exiting now")
        _exit_now()

    threading.Thread(target=watch, name="tuichat-exit-watchdog", daemon=True).start()


def _exit_now() -> NoReturn:
    """os._exit(0) after flushing the log handlers and the standard streams; a handler whose
    lock another thread holds (stuck writing to a full pipe, say) is skipped."""
    for handler in logging.getLogger().handlers + logging.getLogger("tuichat.server").handlers:
        lock = handler.lock
        if lock is None or not lock.acquire(timeout=0.1):
            continue
        try:
            with contextlib.suppress(Exception):
                handler.flush()
        finally:
            lock.release()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(0)


def connect(args: argparse.Namespace, *, embedded: bool = False) -> int:
    from tuichat import config as cfg

    try:
        settings = cfg.load(args.config)
        if embedded:
            nick, host, port = None, settings.host, settings.port
        else:
            use_tls = args.tls or args.fingerprint is not None or args.insecure
            default = DEFAULT_TLS_PORT if use_tls else DEFAULT_PORT
            nick, host, port = cfg.parse_target(args.target, default)
        nick = nick or settings.nick or cfg.default_nick()
        if args.fingerprint is not None:
            from tuichat.tls import normalize_fingerprint

            digits = normalize_fingerprint(args.fingerprint).replace(":", "")
            if len(digits) != 64 or any(ch not in "0123456789ABCDEF" for ch in digits):
                raise cfg.ConfigError(
                    f"--fingerprint {args.fingerprint!r} is not a SHA-256 fingerprint "
                    "(64 hex digits, with or without colons)"
                )
        channels = args.channel or settings.channels or ["#general"]
        channels = [name if name[:1] in "#&" else "#" + name for name in channels]
        password = _password(args)
    except cfg.ConfigError as error:
        return _fail(str(error))
    except OSError as error:
        return _fail(f"cannot read {args.password_file}: {error.strerror or error}")
    greeting: list[str] = []
    server = None
    if embedded:
        server, greeting = _embedded_server(host, port)
    from tuichat.app import TuichatApp
    from tuichat.net.client import ClientConfig

    config = ClientConfig(
        host=host,
        port=port,
        nick=nick,
        username=cfg.default_username(),
        realname=args.realname or settings.realname or nick,
        password=password or settings.password,
        tls=args.tls or args.fingerprint is not None or args.insecure,
        fingerprint=args.fingerprint,
        insecure=args.insecure,
        known_servers=str(default_db_path().parent / "known_servers"),
        sts_policies=str(default_db_path().parent / "sts_policies"),
        client_cert=str(args.tls_client_cert) if args.tls_client_cert else None,
    )
    if config.insecure:
        greeting.append("--insecure: the server's certificate is NOT checked; do not trust this.")
    app = TuichatApp(config, channels=channels, greeting=greeting)
    if settings.theme is not None:
        if settings.theme not in app.available_themes:
            names = ", ".join(sorted(app.available_themes))
            if server is not None:
                server.stop()
            return _fail(f"unknown theme {settings.theme!r} in the config file (one of: {names})")
        app.theme = settings.theme
    try:
        app.run()
    finally:
        if server is not None:
            server.stop()
    return 0


def _embedded_server(host: str, port: int) -> tuple[Server | None, list[str]]:
    """Start a server in this process if nothing listens at `host:port` and it is this machine."""
    import socket

    if host not in ("localhost", "127.0.0.1", "::1"):
        return None, []
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None, []
    except ConnectionRefusedError:
        pass
    except OSError:
        return None, []
    from tuichat.server import Server, ServerConfig

    data = default_db_path().parent
    files.private_dir(data)
    files.private_file(data / "server.log")
    handler = logging.FileHandler(data / "server.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    server_log = logging.getLogger("tuichat.server")
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    server_log.propagate = False
    server = Server(ServerConfig(host="0.0.0.0", port=port, db=str(default_db_path())))
    try:
        server.start()
    except OSError as error:
        return None, [f"could not start a local server on port {port}: {error.strerror}"]
    name = socket.gethostname()
    return server, [
        f"No server was running on {host}:{port}, so tuichat started one in this window.",
        f"Others on your network can join with:  tuichat connect THEIR_NICK@{name}",
        f"It stops when you quit. Its log: {data / 'server.log'}",
    ]


# glibc's malloc keeps freed memory in a cache per thread (tcache) and in up to 8 arenas per
# core. With a thread per client, what a burst frees (a thousand JOINs, say) stays in each
# client's cache: measured, 40 KB of RSS per idle client instead of 20.
MALLOC_TUNABLES = "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1"


def _tune_malloc() -> None:
    """Run the server again with glibc's malloc tuned for many threads (glibc reads these
    settings only when a process starts). Nothing happens if GLIBC_TUNABLES is already set,
    which is also how the second run knows it is the second."""
    import os

    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        glibc = None
    if not glibc or "GLIBC_TUNABLES" in os.environ or not sys.executable:
        return
    env = dict(os.environ, GLIBC_TUNABLES=MALLOC_TUNABLES)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None when started with the descriptor closed
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    except OSError:
        return  # run untuned
