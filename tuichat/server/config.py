"""What `tuichat serve` is configured with: `ServerConfig` and its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuichat.net.protocol import (
    DEFAULT_PORT,
)
from tuichat.state import Config

DEFAULT_SENDQ = 1024 * 1024

# output held for all clients together; past it the largest queues are cut off until they hold
# TRIM_TO of it (1,000 clients that stop reading would otherwise hold 1 MiB each)
DEFAULT_MAX_OUTPUT_MEMORY = 256 * 1024 * 1024


@dataclass
class ServerConfig:
    """Where to listen and how much to queue; `state` holds the protocol-level settings."""

    host: str = "127.0.0.1"
    port: int | None = DEFAULT_PORT  # plain listener; None for none
    tls_port: int | None = None  # TLS listener; needs tls_cert and tls_key
    tls_cert: str | None = None
    tls_key: str | None = None
    # flood control ("fakelag"): a token bucket per client; lines beyond it wait, and a client
    # with more than flood_queue lines waiting is cut off ("Excess Flood"); rate 0 turns it off
    flood_burst: int = 10
    flood_rate: float = 2.0  # lines per second, after the burst
    flood_queue: int = 100
    # connection limits (0: no limit)
    max_clients: int = 10000
    max_per_ip: int = 100
    connects_per_minute: int = 60  # new connections per IP address per minute
    # advertise STS (clients then insist on TLS with a certificate they can verify): only for a
    # certificate from a CA, never for the self-signed one
    sts: bool = False
    sendq: int = DEFAULT_SENDQ
    max_output_memory: int = DEFAULT_MAX_OUTPUT_MEMORY  # all clients' output together; 0: none
    db: str | None = None  # SQLite file for history and accounts; None keeps no history
    history_days: float = 30.0  # 0 keeps everything
    # accounts nobody logged in to after registering them are deleted this long after (0: never)
    account_expiry_days: float = 7.0
    state: Config = field(default_factory=Config)
