"""`tuichat serve` as a real process: it says where it listens and stops cleanly on a signal."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Client, ServeProcess


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeProcess]:
    process = ServeProcess("--db", str(tmp_path / "tuichat.db"))
    try:
        yield process
    finally:
        process.kill()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_the_server_down(serve: ServeProcess, signum: signal.Signals) -> None:
    port = serve.port()
    assert port != 0
    client = Client(port)
    unregistered = Client(port)
    stuck = Client(port, rcvbuf=4096)
    try:
        client.register("alice")
        client.join("#c")
        unregistered.send("NICK notyet")
        unregistered.sync()
        # a client that asks for a lot and reads none of it must not hold up the shutdown
        stuck.register("stuck")
        stuck.join("#c")
        stuck.send_raw(b"LUSERS\r\n" * 3000)
        client.expect(r"^:stuck!\S+ JOIN #c$")
        sent = time.monotonic()
        serve.proc.send_signal(signum)
        client.expect(r"^ERROR :Server shutting down$", timeout=3)
        assert client.expect_closed(timeout=3) == []
        unregistered.expect(r"^ERROR :Server shutting down$", timeout=3)
        assert unregistered.expect_closed(timeout=3) == []
        code = serve.proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        client.close()
        unregistered.close()
        stuck.close()
    assert code == 0
    assert elapsed < 2
    stderr = serve.kill()  # it has exited: this only collects what it wrote
    assert "Traceback" not in stderr
    assert " ERROR " not in stderr


def _glibc() -> bool:
    import os

    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


@pytest.mark.timeout(30)
@pytest.mark.skipif(not Path("/proc/self/environ").exists() or not _glibc(), reason="glibc only")
def test_serve_runs_with_malloc_tuned_for_many_threads(serve: ServeProcess) -> None:
    """`tuichat serve` starts itself again with glibc's per-thread malloc cache off (it is how an
    idle client costs 20 KB, not 40); it stays the same process, so a signal still stops it."""
    port = serve.port()
    environ = Path(f"/proc/{serve.proc.pid}/environ").read_bytes().split(b"\0")
    assert any(item.startswith(b"GLIBC_TUNABLES=glibc.malloc.tcache_count=0") for item in environ)
    client = Client(port)
    try:
        client.register("alice")
    finally:
        client.close()
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(10) == 0


@pytest.mark.timeout(30)
def test_serve_runs_with_stdout_closed() -> None:
    """Daemon wrappers start servers with stdout closed (`>&-`): serving must not need it."""
    import subprocess
    import sys

    command = f'exec "{sys.executable}" -m tuichat serve --port 0 --no-history >&-'
    proc = subprocess.Popen(["sh", "-c", command], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "listening on" in line:
                break
        assert any("listening on" in line for line in seen), seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
