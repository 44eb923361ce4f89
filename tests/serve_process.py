"""Starts `pplx-kernels serve` in a subprocess on a free loopback port (the
server binds port 0 and prints the one it got) and stops it by pid."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

import pplx_kernels

READY = re.compile(r"ready on (http://127\.0\.0\.1:\d+)")
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
# The subprocess imports the same pplx_kernels as the tests (a source tree
# with its built module, an installed wheel, the sanitized build).
PACKAGE_PARENT = str(Path(pplx_kernels.__file__).resolve().parents[1])


class ServerProcess:
    def __init__(self, *args, env=None, timeout: float = 60.0):
        self.args = [sys.executable, "-m", "pplx_kernels", "serve", "--port", "0", *map(str, args)]
        path = os.pathsep.join(p for p in (PACKAGE_PARENT, os.environ.get("PYTHONPATH")) if p)
        self.env = dict(os.environ, PYTHONPATH=path, **(env or {}))
        self.timeout = timeout
        self.proc = None
        self.url = None
        self.loaded = False  # the ready line was printed
        self.output = []

    def start(self, wait_ready: bool = True) -> "ServerProcess":
        """Starts the server and waits for its ready line, or with
        wait_ready=False only for the address (the model still loading)."""
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=self.env)
        listening, self.ready = threading.Event(), threading.Event()

        def pump():  # read all output (so the pipe never fills), note the address and the ready line
            for line in self.proc.stdout:
                self.output.append(line)
                m = LISTENING.search(line)
                if m:
                    self.url = m.group(1)
                    listening.set()
                if READY.search(line):
                    self.loaded = True
                    self.ready.set()
            listening.set()
            self.ready.set()

        threading.Thread(target=pump, daemon=True).start()
        started = self.ready.wait(self.timeout) and self.loaded if wait_ready else listening.wait(self.timeout)
        if not started or self.url is None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.output))
        return self

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def signal(self, sig) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_until(predicate, timeout: float = 10, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False
