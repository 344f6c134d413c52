"""Start and stop local servers for tests: always on 127.0.0.1, always torn down."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from repo_copy import env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(args: list[str], health_url: str, cwd: Path, log: Path, extra_env: dict[str, str] | None = None,
          timeout: float = 180) -> Iterator[subprocess.Popen]:
    """Run a server in its own process group until ``health_url`` answers; kill the group afterwards."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, cwd=cwd, env={**env(), **(extra_env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(health_url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{health_url} did not answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
