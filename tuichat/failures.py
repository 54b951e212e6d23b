"""socketserver's `handle_error` for the jobs of a long-lived thread, shared by the server's
threads (reaper, writers, accept loops) and the client's connection thread: a job that raises is
logged and the thread goes on. No Textual, no sockets: `tuichat.net` may import it."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

REPEAT_LOG = 600.0  # a job that keeps failing is logged again at most this often


class Failures:
    """The failures of one thread's jobs.

    The first failure of a job is logged with its traceback; while it keeps failing, a line with
    the count at most every REPEAT_LOG seconds (a job of every second must not fill the log);
    when it works again, one line says so."""

    __slots__ = ("_failing", "_log", "_thread")

    def __init__(self, thread: str, log: logging.Logger) -> None:
        self._thread = thread
        self._log = log
        # job -> [failures, when last logged (monotonic)]
        self._failing: dict[str, list[float]] = {}

    def failed(self, job: str, retry: str = "") -> None:
        """Log the exception being handled, unless this job's failure was logged lately."""
        now = time.monotonic()
        state = self._failing.get(job)
        if state is None:
            self._failing[job] = [1, now]
            self._log.exception("%s: %s failed%s", self._thread, job, retry)
            return
        state[0] += 1
        if now - state[1] >= REPEAT_LOG:
            state[1] = now
            error = sys.exc_info()[1]
            self._log.error(
                "%s: %s still failing (%d times): %r%s", self._thread, job, state[0], error, retry
            )

    def succeeded(self, job: str) -> None:
        state = self._failing.pop(job, None) if self._failing else None
        if state is not None:
            self._log.warning(
                "%s: %s works again after %d failures", self._thread, job, int(state[0])
            )

    def run(self, job: str, work: Callable[..., object], *args: object, retry: str = "") -> bool:
        """Do `work(*args)`; False (logged as above) if it raised."""
        try:
            work(*args)
        except Exception:
            self.failed(job, retry)
            return False
        self.succeeded(job)
        return True
