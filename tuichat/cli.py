"""The `tuichat` command line: `tuichat serve`, `tuichat connect` (later), `tuichat` alone."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from tuichat import __version__

DEFAULT_PORT = 6667


def default_db_path() -> Path:
    """Where history and accounts live unless `--db` says otherwise."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("tuichat", appauthor=False)) / "tuichat.db"


def _oper(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuichat", description="A small self-hosted terminal chat that speaks IRC."
    )
    parser.add_argument("--version", action="version", version=f"tuichat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run a chat server in the foreground")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="port (default: 6667; 0 picks one)"
    )
    serve.add_argument(
        "--server-name", default="tuichat", help="the server's name (default: tuichat)"
    )
    serve.add_argument(
        "--network", default="tuichat", help="the network name in ISUPPORT (default: tuichat)"
    )
    serve.add_argument(
        "--motd", type=Path, metavar="FILE", help="message of the day, read from FILE"
    )
    serve.add_argument("--password", metavar="PW", help="password every client must send (PASS)")
    serve.add_argument(
        "--oper",
        type=_oper,
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="an operator login for OPER (repeatable)",
    )
    serve.add_argument(
        "--db", type=Path, metavar="PATH", help="SQLite file for history and accounts"
    )
    serve.add_argument(
        "--sendq",
        type=_positive(int),
        default=1024 * 1024,
        metavar="BYTES",
        help="output queued per client before it is dropped (default: 1048576)",
    )
    serve.add_argument(
        "--ping-interval",
        type=_positive(float),
        default=90.0,
        metavar="SECONDS",
        help="PING a client idle this long (default: 90)",
    )
    serve.add_argument(
        "--ping-timeout",
        type=_positive(float),
        default=120.0,
        metavar="SECONDS",
        help="drop a client that does not answer a PING within this (default: 120)",
    )
    serve.add_argument(
        "--registration-timeout",
        type=_positive(float),
        default=60.0,
        metavar="SECONDS",
        help="close a connection that has not registered within this (default: 60)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="log detail on stderr (default: info)",
    )
    return parser


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
    db = args.db if args.db is not None else default_db_path()
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        sendq=args.sendq,
        db=str(db),
        state=Config(
            server_name=args.server_name,
            network=args.network,
            motd=motd,
            password=args.password,
            opers=dict(args.oper),
            ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout,
            registration_timeout=args.registration_timeout,
        ),
    )
    server = Server(config)
    try:
        server.start()
    except OSError as error:
        return _fail(f"cannot listen on {args.host} port {args.port}: {error.strerror or error}", 1)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stop.wait()
    logging.getLogger("tuichat.server").info("shutting down")
    server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    parser.print_help()
    return 0
