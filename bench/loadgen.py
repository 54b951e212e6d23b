"""A load generator for any IRC server on a loopback address.

One process, non-blocking sockets, thousands of connections. N clients register and join one
channel (or spread over several); S of them send M PRIVMSGs each, as fast as possible or at a
fixed total rate. Every message carries its sender, a sequence number and its send time, so the
generator counts deliveries, losses, duplicates and per-sender order, and measures latency. It
answers PING, and stops by itself (--duration bounds every phase).

    python bench/loadgen.py --port 6667 --clients 100 --senders 10 --messages 2000
    python bench/loadgen.py --port 6667 --clients 100 --senders 10 --rate 1000 --seconds 10

Prints one JSON object (see `Result`), for bench/run.py to put in a table.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import statistics
import time
from dataclasses import asdict, dataclass, field

HOST = "127.0.0.1"


@dataclass
class Result:
    clients: int
    senders: int
    sent: int = 0
    expected: int = 0  # deliveries expected (each message to every other member)
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    seconds: float = 0.0
    deliveries_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    register_s: float = 0.0
    errors: list[str] = field(default_factory=list)


def _is_error(command: bytes) -> bool:
    """ERROR or an error numeric (a missing MOTD is none)."""
    numeric = command.isdigit() and command[:1] in b"45" and command != b"422"
    return command == b"ERROR" or numeric


class Conn:
    __slots__ = ("channel", "inbuf", "last_seq", "nick", "outbuf", "registered", "sock", "joined")

    def __init__(self, nick: str, channel: str) -> None:
        self.nick = nick
        self.channel = channel
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbuf = b""
        self.outbuf = bytearray()
        self.registered = False
        self.joined = False
        self.last_seq: dict[str, int] = {}


def run(args: argparse.Namespace) -> Result:
    result = Result(clients=args.clients, senders=args.senders)
    selector = selectors.DefaultSelector()
    channels = [f"#load{i}" for i in range(max(1, args.channels))]
    conns: list[Conn] = []
    # the senders and the measured channel's members come first: channel 0 gets `--members`
    for i in range(args.clients):
        channel = (
            channels[0] if i < args.members or len(channels) == 1 else channels[i % len(channels)]
        )
        conns.append(Conn(f"u{i}", channel))
    measured = [c for c in conns if c.channel == channels[0]]
    senders = measured[: args.senders]
    deadline = time.monotonic() + args.duration

    def write(conn: Conn, data: bytes) -> None:
        conn.outbuf += data
        flush(conn)

    def flush(conn: Conn) -> None:
        if not conn.outbuf:
            return
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        del conn.outbuf[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        selector.modify(conn.sock, events, conn)

    latencies: list[float] = []

    def handle(conn: Conn, line: bytes) -> None:
        if line.startswith(b"PING"):
            write(conn, b"PONG" + line[4:] + b"\r\n")
            return
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return
        command = parts[1]
        if command == b"001":
            conn.registered = True
        elif command == b"366":
            conn.joined = True
        elif command == b"PRIVMSG" and len(parts) == 4:
            text = parts[3]
            if text.startswith(b":"):
                text = text[1:]
            fields = text.split(b" ")
            if len(fields) < 4 or fields[0] != b"LOAD":
                return
            sender, seq, stamp = fields[1].decode(), int(fields[2]), float(fields[3])
            latencies.append(time.time() - stamp)
            last = conn.last_seq.get(sender, -1)
            if seq == last:
                result.duplicates += 1
            elif seq < last:
                result.out_of_order += 1
            else:
                conn.last_seq[sender] = seq
            result.delivered += 1
        elif _is_error(command) and len(result.errors) < 10:
            result.errors.append(line.decode("utf-8", "replace"))

    def pump(timeout: float) -> None:
        for key, mask in selector.select(timeout):
            conn: Conn = key.data
            if mask & selectors.EVENT_WRITE:
                flush(conn)
            if mask & selectors.EVENT_READ:
                try:
                    data = conn.sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as error:
                    result.errors.append(f"{conn.nick}: {error}")
                    selector.unregister(conn.sock)
                    continue
                if not data:
                    if len(result.errors) < 10:
                        result.errors.append(f"{conn.nick}: connection closed")
                    selector.unregister(conn.sock)
                    continue
                data = conn.inbuf + data
                lines = data.split(b"\r\n")
                conn.inbuf = lines.pop()
                for line in lines:
                    handle(conn, line)

    # connect and register, a few hundred at a time so the server's backlog never overflows
    start = time.monotonic()
    pending = list(conns)
    while pending or not all(c.joined for c in conns):
        if time.monotonic() > deadline:
            raise SystemExit(f"registration did not finish: {sum(c.joined for c in conns)} joined")
        opened = sum(1 for c in conns if c not in pending and not c.registered)
        while pending and opened < 200:
            conn = pending.pop(0)
            conn.sock.connect_ex((HOST, args.port))
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            hello = f"NICK {conn.nick}\r\nUSER {conn.nick} 0 * :load\r\nJOIN {conn.channel}\r\n"
            write(conn, hello.encode())
            opened += 1
        pump(0.05)
    result.register_s = time.monotonic() - start

    # the load
    members = len(measured)
    total = args.messages if args.rate <= 0 else int(args.rate * args.seconds)
    per_sender = max(1, total // len(senders))
    result.sent = per_sender * len(senders)
    result.expected = result.sent * (members - 1)
    start = time.monotonic()
    if args.rate <= 0:
        for conn in senders:
            batch = bytearray()
            for seq in range(per_sender):
                batch += b"PRIVMSG %s :LOAD %s %d %.6f pad\r\n" % (
                    conn.channel.encode(),
                    conn.nick.encode(),
                    seq,
                    time.time(),
                )
            write(conn, bytes(batch))
        while result.delivered < result.expected and time.monotonic() < deadline:
            pump(0.05)
    else:
        interval = 1.0 / args.rate
        next_send = time.monotonic()
        sent = 0
        while (
            sent < result.sent or result.delivered < result.expected
        ) and time.monotonic() < deadline:
            now = time.monotonic()
            while sent < result.sent and next_send <= now:
                conn = senders[sent % len(senders)]
                seq = sent // len(senders)
                write(
                    conn,
                    b"PRIVMSG %s :LOAD %s %d %.6f pad\r\n"
                    % (conn.channel.encode(), conn.nick.encode(), seq, time.time()),
                )
                sent += 1
                next_send += interval
            pump(max(0.0, min(0.01, next_send - time.monotonic())))
        # wait briefly for the tail
        tail = time.monotonic() + 2
        while result.delivered < result.expected and time.monotonic() < tail:
            pump(0.05)
    result.seconds = time.monotonic() - start
    result.lost = max(0, result.expected - result.delivered)
    result.deliveries_per_s = result.delivered / result.seconds if result.seconds else 0.0
    if latencies:
        latencies.sort()
        result.p50_ms = statistics.median(latencies) * 1000
        result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    for conn in conns:
        conn.sock.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument(
        "--members", type=int, default=0, help="clients in the measured channel (default: all)"
    )
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20000, help="total, when --rate is 0")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second in total")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send at --rate")
    parser.add_argument("--duration", type=float, default=120.0, help="hard bound on the whole run")
    args = parser.parse_args()
    if args.members <= 0:
        args.members = args.clients
    print(json.dumps(asdict(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
