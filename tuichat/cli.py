"""The `tuichat` command line: `tuichat serve`, `tuichat connect`, `tuichat` alone; the parsing
of arguments, while `tuichat.launch` runs what they ask for."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from tuichat import __version__
from tuichat.launch import LIMITS, PASSWORD_ENV, _oper, _tune_malloc, connect, serve
from tuichat.net.protocol import DEFAULT_PORT, DEFAULT_TLS_PORT


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


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line rather than the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tuichat", description="A small self-hosted terminal chat that speaks IRC."
    )
    parser.add_argument("--version", action="version", version=f"tuichat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = commands.add_parser("serve", help="run a chat server in the foreground")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"plain port (default: {DEFAULT_PORT}; with TLS on, none unless given; 0 picks one)",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        help=f"listen with TLS (on --tls-port, default {DEFAULT_TLS_PORT})",
    )
    serve.add_argument(
        "--tls-port", type=_port, default=None, metavar="N", help="TLS port (implies --tls)"
    )
    serve.add_argument("--tls-cert", type=Path, metavar="FILE", help="TLS certificate chain (PEM)")
    serve.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
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
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"read that password from FILE's first line (or set ${PASSWORD_ENV})",
    )
    serve.add_argument(
        "--oper-file",
        type=Path,
        metavar="FILE",
        help="operator logins, one NAME:PASSWORD a line (keeps them off the command line)",
    )
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
        "--no-history", action="store_true", help="keep no history and no accounts (no --db)"
    )
    serve.add_argument(
        "--history-days",
        type=_non_negative,
        default=30.0,
        metavar="DAYS",
        help="keep history this long; 0 keeps everything (default: 30)",
    )
    serve.add_argument(
        "--account-expiry-days",
        type=_non_negative,
        default=7.0,
        metavar="DAYS",
        help="delete accounts nobody logged in to this long after registering them; "
        "0 keeps them (default: 7)",
    )
    serve.add_argument(
        "--join-replay",
        type=int,
        default=50,
        metavar="N",
        help="history lines replayed on JOIN to clients without chathistory (default: 50)",
    )
    serve.add_argument(
        "--open-registration",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="let anyone register an account for their nick (default: on)",
    )
    serve.add_argument(
        "--require-tls-auth",
        action="store_true",
        help="refuse SASL PLAIN on connections without TLS",
    )
    serve.add_argument(
        "--sendq",
        type=_positive(int),
        default=1024 * 1024,
        metavar="BYTES",
        help="output queued per client before it is dropped (default: 1048576)",
    )
    serve.add_argument(
        "--max-output-memory",
        type=_non_negative,
        default=256 * 1024 * 1024,
        metavar="BYTES",
        help="output queued for all clients together; past it the largest queues are dropped "
        "(default: 268435456; 0: no bound)",
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
    limits = serve.add_argument_group("limits (0: no limit)")
    for flag, default, help_text in LIMITS:
        limits.add_argument(
            flag,
            type=_non_negative,
            default=default,
            metavar="N",
            help=f"{help_text} (default: {default:g})",
        )
    serve.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="log detail on stderr (default: info)",
    )
    connect = commands.add_parser("connect", help="open the chat window on a server")
    connect.add_argument(
        "target", metavar="[NICK@]HOST[:PORT]", help="e.g. alice@chat.example:6667"
    )
    _client_options(connect)
    return parser


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--channel",
        action="append",
        metavar="#NAME",
        help="channel to join on connect (repeatable; default: the config's, or #general)",
    )
    parser.add_argument("--password", metavar="PW", help="the server's password (PASS)")
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"read the password from FILE's first line (or set ${PASSWORD_ENV})",
    )
    parser.add_argument("--realname", metavar="TEXT", help="your real name, shown in WHOIS")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config file to read")
    parser.add_argument(
        "--tls", action="store_true", help=f"connect with TLS (default port {DEFAULT_TLS_PORT})"
    )
    parser.add_argument(
        "--fingerprint",
        metavar="SHA256",
        help="trust the server certificate with this SHA-256 fingerprint (implies --tls)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="TLS without checking the certificate: UNSAFE, anyone can read along (tests only)",
    )
    parser.add_argument(
        "--tls-client-cert",
        type=Path,
        metavar="FILE",
        help="a client certificate with its key (PEM)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    from_command_line = argv is None
    if argv is None:
        argv = sys.argv[1:]
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        bare = _Parser(prog="tuichat", add_help=False)
        _client_options(bare)
        args, unknown = bare.parse_known_args(argv)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        return connect(args, embedded=True)
    args = parser.parse_args(argv)
    if args.command == "serve":
        if from_command_line:
            _tune_malloc()
        return serve(args)
    if args.command == "connect":
        return connect(args)
    parser.print_help()
    return 2
