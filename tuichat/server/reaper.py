"""The reaper: one thread for everything that happens with time rather than with a line. Every
round (a quarter of the shortest timeout, at most a second): registration and ping timeouts and
nick-grace renames; hourly, the pruning of old history and of accounts never used (retried with
back-off when the store fails); and the server's address bookkeeping. Each job is guarded, so the
reaper outlives any one failure."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from tuichat import gc_tuning
from tuichat.failures import Failures
from tuichat.state import Outbox

if TYPE_CHECKING:
    from tuichat.server import Server

log = logging.getLogger("tuichat.server")

FULL_GC_EVERY = 3600.0  # seconds between full collections of frozen objects (gc_tuning)
PRUNE_EVERY = 3600.0  # seconds between prunings of old history
PRUNE_RETRY = 60.0  # after a failed pruning, the first wait; it doubles up to PRUNE_EVERY


class Reaper:
    """The jobs of the reaper thread, on `server`'s state (`run` is the thread's loop)."""

    def __init__(self, server: Server, stopping: threading.Event) -> None:
        self.server = server
        self.stopping = stopping

    def run(self, pruned: bool) -> None:
        """The reaper thread's loop, until the server stops; `pruned`: start() pruned already."""
        server = self.server
        c = server.config.state
        interval = max(
            0.05, min(1.0, c.ping_interval / 4, c.ping_timeout / 4, c.registration_timeout / 4)
        )
        # pruned at start: the next one in an hour; else now, and after failures, less often
        next_prune = server.clock() + PRUNE_EVERY if pruned else 0.0
        retry = PRUNE_RETRY
        next_collect = time.monotonic() + FULL_GC_EVERY
        # every job is guarded (socketserver's handle_error): the reaper outlives any one failure,
        # or registration and ping timeouts would end for good
        failures = Failures("reaper", log)
        while not self.stopping.wait(interval):
            if time.monotonic() >= next_collect:
                # cycles among frozen objects (see gc_tuning): one full collection an hour
                next_collect = time.monotonic() + FULL_GC_EVERY
                failures.run("full collection", gc_tuning.collect_all)
            now = server.clock()
            failures.run("timeouts", self.tick, now)
            if now >= next_prune:
                if failures.run(
                    "pruning history",
                    self.prune,
                    now,
                    retry=f" (retrying in {retry:g} s)",
                ) and failures.run(
                    "expiring accounts",
                    self.expire_accounts,
                    now,
                    retry=f" (retrying in {retry:g} s)",
                ):
                    next_prune = now + PRUNE_EVERY
                    retry = PRUNE_RETRY
                else:
                    next_prune = now + retry
                    retry = min(retry * 2, PRUNE_EVERY)
            failures.run("address bookkeeping", self.forget_quiet_addresses)

    def tick(self, now: float) -> None:
        """Registration and ping timeouts, nick-grace renames: under the state lock, delivered
        even if one of them fails."""
        out = Outbox()
        with self.server.lock:
            try:
                self.server.state.tick(now, out)
            finally:
                self.server.dispatch(out)

    def expire_accounts(self, now: float) -> None:
        """Delete the accounts nobody logged in to within --account-expiry-days of registering
        them (under the state lock), then their private history (outside it, a little at a
        time, as their names wait to be registered again)."""
        expiry = self.server.config.account_expiry_days
        if self.server.store is None or expiry <= 0:
            return
        with self.server.lock:
            names = self.server.state.expire_accounts(now - expiry * 86400)
        if not names:
            return
        try:
            removed = self.server.store.forget_conversations(set(names))
        finally:
            with self.server.lock:
                self.server.state.expired(names)
        log.info(
            "accounts: removed %d never used after registration, and %d private messages",
            len(names),
            removed,
        )

    def prune(self, now: float) -> None:
        """Forget history older than --history-days: the messages outside the state lock (a
        chunk at a time: an hour's worth of a busy server's history takes seconds to delete,
        and nobody waits for it), then the channels unused since, under it."""
        days = self.server.config.history_days
        if self.server.store is not None and days > 0:
            removed = self.server.store.prune(int((now - days * 86400) * 1000))
            if removed:
                log.info("history: removed %d messages older than %g days", removed, days)
            with self.server.lock:
                forgotten = self.server.state.forget_idle_channels(now, now - days * 86400)
            if forgotten:
                log.info("forgot %d channels unused for %g days", len(forgotten), days)

    def forget_quiet_addresses(self) -> None:
        with self.server.lock:
            self.server.admission.forget_quiet()
