"""Who may connect: the server's bounds on connections in total, per address and per minute from
one address, and its K-lines (asked of the state). The counts are kept here; every call is made
under the state lock. No sockets."""

from __future__ import annotations

import collections
import time

from tuichat.limits import address_key
from tuichat.server.config import ServerConfig

QUIET_AFTER = 60.0  # seconds after which an address's connection times are forgotten


class Admission:
    """Connections counted by address (IPv6 by /64, `limits.address_key`)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._per_ip: dict[str, int] = {}
        self._recent: dict[str, collections.deque[float]] = {}

    def refusal(self, host: str, connections: int, banned: str | None) -> str | None:
        """Why a new connection from `host` is refused, if it is (`banned`: the K-line's reason,
        if one matches); else it is counted in."""
        c = self.config
        key = address_key(host)
        if c.max_clients and connections >= c.max_clients:
            return "Server is full"
        if c.max_per_ip and self._per_ip.get(key, 0) >= c.max_per_ip:
            return "Too many connections from your address"
        if c.connects_per_minute:
            now = time.monotonic()
            recent = self._recent.setdefault(key, collections.deque())
            while recent and recent[0] < now - QUIET_AFTER:
                recent.popleft()
            if len(recent) >= c.connects_per_minute:
                return "Connecting too fast; try again in a minute"
            recent.append(now)
        if banned is None:
            self._per_ip[key] = self._per_ip.get(key, 0) + 1
        return banned

    def left(self, host: str) -> None:
        """One connection from `host` fewer."""
        key = address_key(host)
        count = self._per_ip.get(key, 0) - 1
        if count > 0:
            self._per_ip[key] = count
        else:
            self._per_ip.pop(key, None)

    def forget_quiet(self) -> None:
        """Drop the connection times of addresses not seen for a minute (the reaper's job)."""
        cutoff = time.monotonic() - QUIET_AFTER
        for key in [key for key, times in self._recent.items() if not times or times[-1] < cutoff]:
            del self._recent[key]
