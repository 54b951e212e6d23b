"""A load generator for any IRC server on a loopback address.

One process, non-blocking sockets, thousands of connections. N clients register and join one
channel (or spread over several); S of them send M PRIVMSGs each, as fast as possible or at a
fixed total rate. Every message carries its sender, a sequence number and its send time.

The generator must outrun the server it measures, so it does not parse every line: every
receiver counts the messages it gets (a C-speed `bytes.count` per `recv()`), which gives losses
and duplicates exactly, and one receiver in `--check-every` also parses each message for
per-sender order, duplicates and latency. It answers PING, and stops by itself (`--duration`
bounds every phase).

With `--server-pid` it also reads the server's CPU time over the load (CPU per delivery) and
its resident memory before and after the clients joined (bytes per connection).

    python bench/loadgen.py --port 6667 --clients 100 --senders 10 --messages 20000
    python bench/loadgen.py --port 6667 --clients 100 --senders 10 --rate 1000 --seconds 10

Prints one JSON object (see `Result`), for bench/run.py to put in a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import statistics
import time
from dataclasses import asdict, dataclass, field

HOST = "127.0.0.1"
LAZY = 0.02  # unchecked receivers at a fixed rate: at most LAZY_BATCH of them read every LAZY s
LAZY_BATCH = 200
MARK = b" :LOAD "  # every load message's text starts with this


@dataclass
class Result:
    clients: int
    senders: int
    channels: int
    sent: int = 0
    expected: int = 0  # deliveries expected (each message to every other member)
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0  # more messages than sent, or the same one twice in a checked receiver
    out_of_order: int = 0  # in the checked receivers
    checked: int = 0  # deliveries parsed one by one (order and latency come from these)
    seconds: float = 0.0
    deliveries_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    register_s: float = 0.0
    loadgen_cpu_s: float = 0.0  # this process over the load
    server_cpu_s: float = 0.0  # the server over the load (with --server-pid)
    cpu_us_per_delivery: float = 0.0
    rss_base_kb: float = 0.0  # the server before the clients came
    rss_joined_kb: float = 0.0  # ... with every client registered, joined and idle
    kb_per_client: float = 0.0
    errors: list[str] = field(default_factory=list)


def _is_error(command: bytes) -> bool:
    """ERROR or an error numeric (a missing MOTD is none)."""
    numeric = command.isdigit() and command[:1] in b"45" and command != b"422"
    return command == b"ERROR" or numeric


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid`."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int) -> float:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return float(line.split()[1])
    return 0.0


class Conn:
    __slots__ = (
        "channel",
        "checked",
        "closed",
        "count",
        "expected",
        "fd",
        "inbuf",
        "joined",
        "last_seq",
        "nick",
        "outbuf",
        "poller",
        "registered",
        "sock",
        "writing",
    )

    def __init__(self, nick: str, channel: str, checked: bool, poller: select.epoll) -> None:
        self.nick = nick
        self.channel = channel
        self.checked = checked
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fd = self.sock.fileno()
        self.poller = poller
        self.writing = False
        self.inbuf = b""
        self.outbuf = bytearray()
        self.registered = False
        self.joined = False
        self.closed = False
        self.count = 0  # load messages received
        self.expected = 0
        self.last_seq: dict[bytes, int] = {}


def _assign(args: argparse.Namespace, poll: select.epoll) -> tuple[list[Conn], list[Conn]]:
    """The clients (channel 0 gets the first `--members`, the rest go round the other channels)
    and the senders among them. One member in `--check-every` of each channel is checked."""
    names = [f"#load{i}" for i in range(max(1, args.channels))]
    conns: list[Conn] = []
    by_channel: dict[str, list[Conn]] = {name: [] for name in names}
    for i in range(args.clients):
        if i < args.members or len(names) == 1:
            name = names[0]
        else:
            name = names[1 + (i - args.members) % (len(names) - 1)]
        members = by_channel[name]
        conn = Conn(f"u{i}", name, len(members) % args.check_every == 0, poll)
        members.append(conn)
        conns.append(conn)
    if not args.spread:  # the first members of channel 0
        return conns, conns[: min(args.senders, args.members)]
    # senders spread over the channels in proportion to their members (largest remainder)
    shares = {name: args.senders * len(m) / len(conns) for name, m in by_channel.items()}
    quota = {name: int(share) for name, share in shares.items()}
    left = args.senders - sum(quota.values())
    for name in sorted(shares, key=lambda n: shares[n] - quota[n], reverse=True)[:left]:
        quota[name] += 1
    senders = [c for name, m in by_channel.items() for c in m[: quota[name]]]
    return conns, senders


def run(args: argparse.Namespace) -> Result:
    result = Result(clients=args.clients, senders=args.senders, channels=args.channels)
    poll = select.epoll()
    by_fd: dict[int, Conn] = {}
    conns, senders = _assign(args, poll)
    deadline = time.monotonic() + args.duration
    pid = args.server_pid
    latencies: list[float] = []

    def write(conn: Conn, data: bytes) -> None:
        conn.outbuf += data
        flush(conn)

    def flush(conn: Conn) -> None:
        if not conn.outbuf or conn.closed:
            return
        try:
            sent = conn.sock.send(conn.outbuf)
        except OSError:  # not connected yet, or gone (then the read side finds out)
            sent = 0
        del conn.outbuf[:sent]
        want = bool(conn.outbuf)
        if want != conn.writing:
            conn.writing = want
            conn.poller.modify(conn.fd, select.EPOLLIN | (select.EPOLLOUT if want else 0))

    def error(conn: Conn, text: str) -> None:
        if len(result.errors) < 10:
            result.errors.append(f"{conn.nick}: {text}")

    def handle(conn: Conn, line: bytes) -> None:
        """One line, parsed."""
        if line.startswith(b"PING"):
            write(conn, b"PONG" + line[4:] + b"\r\n")
            return
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return
        command = parts[1]
        if command == b"PRIVMSG" and len(parts) == 4:
            fields = parts[3].split(b" ", 5)
            if len(fields) < 5 or fields[0] != b":LOAD":
                return
            conn.count += 1
            if not conn.checked:
                return
            result.checked += 1
            sender, seq = fields[1], int(fields[2])
            latencies.append(time.time() - float(fields[3]))
            last = conn.last_seq.get(sender, -1)
            if seq == last:
                result.duplicates += 1
            elif seq < last:
                result.out_of_order += 1
            else:
                conn.last_seq[sender] = seq
        elif command == b"001":
            conn.registered = True
        elif command == b"366":
            conn.joined = True
        elif _is_error(command):
            error(conn, line.decode("utf-8", "replace"))

    def receive(conn: Conn) -> None:
        try:
            data = conn.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            data = b""
            error(conn, str(exc))
        if not data:
            if not conn.closed:
                error(conn, "connection closed")
            conn.closed = True
            conn.poller.unregister(conn.fd)
            return
        if conn.inbuf:
            data = conn.inbuf + data
        end = data.rfind(b"\n") + 1
        conn.inbuf = data[end:]
        if not end:
            return
        if conn.checked or not conn.joined or b"PING " in data or b"ERROR " in data:
            for line in data[:end].split(b"\r\n"):
                if line:
                    handle(conn, line)
        else:  # the fast path: count the messages, parse nothing
            conn.count += data.count(MARK, 0, end)

    lazy = select.epoll()  # unchecked receivers at a fixed rate, read in batches
    next_lazy = 0.0

    def pump(timeout: float) -> None:
        nonlocal next_lazy
        events = poll.poll(timeout)
        now = time.monotonic()
        if now >= next_lazy:  # a few at a time, so the checked receivers never wait long
            events += lazy.poll(0, LAZY_BATCH)
            next_lazy = now + LAZY
        for fd, mask in events:
            conn = by_fd[fd]
            if mask & select.EPOLLOUT:
                flush(conn)
            if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                receive(conn)

    def delivered() -> int:
        return sum(c.count for c in conns)

    # connect and register, a few hundred at a time so the server's backlog never overflows
    if pid:
        result.rss_base_kb = _rss_kb(pid)
    start = time.monotonic()
    waiting = iter(conns)
    opened = joined = 0
    while joined < len(conns):
        if time.monotonic() > deadline:
            raise SystemExit(f"registration did not finish: {joined} of {len(conns)} joined")
        while opened < len(conns) and opened - joined < args.connect_at_once:
            conn = next(waiting)
            conn.sock.connect_ex((HOST, args.port))
            by_fd[conn.fd] = conn
            poll.register(conn.fd, select.EPOLLIN)
            hello = f"NICK {conn.nick}\r\nUSER {conn.nick} 0 * :load\r\nJOIN {conn.channel}\r\n"
            write(conn, hello.encode())
            opened += 1
        pump(0.05)
        joined = sum(c.joined for c in conns)
        if any(c.closed for c in conns):
            raise SystemExit(f"a client was disconnected while joining: {result.errors}")
    result.register_s = time.monotonic() - start
    if pid:  # let the join burst drain, then weigh the server with everyone idle
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            pump(0.05)
        result.rss_joined_kb = _rss_kb(pid)
        result.kb_per_client = (result.rss_joined_kb - result.rss_base_kb) / len(conns)

    # what each client should receive
    members: dict[str, int] = {}
    for conn in conns:
        members[conn.channel] = members.get(conn.channel, 0) + 1
    total = args.messages if args.rate <= 0 else int(args.rate * args.seconds)
    per_sender = max(1, total // len(senders))
    result.sent = per_sender * len(senders)
    sending: dict[str, int] = {}
    for conn in senders:
        sending[conn.channel] = sending.get(conn.channel, 0) + 1
    for conn in conns:
        conn.expected = per_sender * (sending.get(conn.channel, 0) - (conn in senders))
    result.expected = sum(c.expected for c in conns)
    for conn in conns:
        conn.count = 0
    if args.rate > 0:
        # the generator must not be what is slow: receivers whose latency is not measured are
        # read in batches (a syscall per message each would saturate this process first)
        for conn in conns:
            if not conn.checked and not conn.closed:
                poll.unregister(conn.fd)
                lazy.register(conn.fd, select.EPOLLIN | (select.EPOLLOUT if conn.writing else 0))
                conn.poller = lazy

    def message(conn: Conn, seq: int) -> bytes:
        return b"PRIVMSG %s :LOAD %s %d %.6f pad\r\n" % (
            conn.channel.encode(),
            conn.nick.encode(),
            seq,
            time.time(),
        )

    # the load
    cpu_start = _cpu_seconds(pid) if pid else 0.0
    own_start = time.process_time()
    start = time.monotonic()
    if args.rate <= 0:
        for conn in senders:
            write(conn, b"".join(message(conn, seq) for seq in range(per_sender)))
        while time.monotonic() < deadline:
            pump(0.05)
            if delivered() >= result.expected:
                break
    else:
        interval = 1.0 / args.rate
        next_send = time.monotonic()
        sent = 0
        while sent < result.sent and time.monotonic() < deadline:
            now = time.monotonic()
            while sent < result.sent and next_send <= now:
                conn = senders[sent % len(senders)]
                write(conn, message(conn, sent // len(senders)))
                sent += 1
                next_send += interval
            pump(max(0.0, min(0.01, next_send - time.monotonic())))
        tail = min(deadline, time.monotonic() + 15)  # the last lines on their way
        while delivered() < result.expected and time.monotonic() < tail:
            pump(0.05)
    result.seconds = time.monotonic() - start
    result.loadgen_cpu_s = time.process_time() - own_start
    result.delivered = delivered()
    if pid:
        result.server_cpu_s = _cpu_seconds(pid) - cpu_start
        if result.delivered:
            result.cpu_us_per_delivery = result.server_cpu_s / result.delivered * 1e6
    result.lost = sum(max(0, c.expected - c.count) for c in conns)
    result.duplicates += sum(max(0, c.count - c.expected) for c in conns if not c.checked)
    result.deliveries_per_s = result.delivered / result.seconds if result.seconds else 0.0
    if latencies:
        latencies.sort()
        result.p50_ms = statistics.median(latencies) * 1000
        result.p99_ms = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        result.max_ms = latencies[-1] * 1000
    for conn in conns:
        conn.sock.close()
    poll.close()
    lazy.close()
    return result


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument(
        "--members", type=int, default=0, help="clients in channel 0 (default: all)"
    )
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument(
        "--spread", action="store_true", help="senders spread over all clients (all channels)"
    )
    parser.add_argument("--messages", type=int, default=20000, help="total, when --rate is 0")
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second in total")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send at --rate")
    parser.add_argument(
        "--check-every",
        type=int,
        default=0,
        help="parse every message of one receiver in this many (default: 1 at a --rate, else 10)",
    )
    parser.add_argument(
        "--connect-at-once",
        type=int,
        default=50,
        help="connections registering at one time (so no listen backlog overflows)",
    )
    parser.add_argument("--server-pid", type=int, default=0, help="for CPU and memory figures")
    parser.add_argument("--duration", type=float, default=120.0, help="hard bound on the whole run")
    args = parser.parse_args()
    if args.members <= 0 or args.members > args.clients:
        args.members = args.clients
    if args.check_every <= 0:
        args.check_every = 1 if args.rate > 0 else 10
    _raise_fd_limit()
    print(json.dumps(asdict(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
