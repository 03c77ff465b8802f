"""BackendProcess: ``labsession serve`` as a child process on a free loopback port, for tests and notebooks.

::

    with EmbeddedRedis() as redis, BackendProcess(redis.url) as backend:
        httpx.get(backend.url + "/health")          # http://127.0.0.1:<port>
        websockets.connect(backend.ws_url + "/terminal/<id>")

:meth:`BackendProcess.start` blocks until ``/health/ready`` answers 200 (or raises
:class:`~labsession.backend.errors.BackendError` with the tail of the output, masked). The
child's stdout and stderr go to a temporary file (:meth:`output`), so a chatty server can never
block on a full pipe. :meth:`stop` sends SIGTERM, then SIGKILL after a bound; leaving the
``with`` block always stops it, also when the block raised.

With ``workers=N`` the child is ``labsession serve --workers N``: N worker processes on one port.
Start then waits until every worker has answered ``/health/ready`` itself (each names itself
``<instance id>-w<k>``; new connections are spread over the workers, so a few polls reach all).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..backend.config import DEFAULT_ALLOWED_ORIGINS
from ..backend.errors import BackendError
from ..masking import get_logger, mask_text, register_secret
from .processes import ChildProcess, spawn, stop_process
from .redis_server import free_port

__all__ = ["BackendProcess"]

log = get_logger(__name__)


def _command() -> list[str]:
    script = Path(sys.executable).parent / "labsession"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "labsession"]


class BackendProcess(ChildProcess):
    """One ``labsession serve`` child process bound to ``host`` (127.0.0.1) on ``port`` (a free one).

    ``env`` adds or overrides environment variables (``REDIS_URL`` is set from ``redis_url``);
    ``args`` are extra command-line arguments. Times are seconds. Start waits until the server is
    ready (``/health/ready``: it has reached its Redis), or with ``wait_for_store=False`` only
    until it answers (``/health``), for a server whose Redis is down on purpose.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        allowed_origins: Sequence[str] = DEFAULT_ALLOWED_ORIGINS,
        instance_id: str | None = None,
        args: Sequence[str] = (),
        startup_timeout: float = 30.0,
        log_level: str = "info",
        wait_for_store: bool = True,
        workers: int = 1,
    ) -> None:
        self.redis_url = redis_url
        self.wait_for_store = wait_for_store
        from urllib.parse import urlsplit

        with contextlib.suppress(ValueError):
            register_secret(urlsplit(redis_url).password)
        self.host = host
        self._fixed_port = port
        self.port = port or free_port(host)
        self.extra_env = dict(env or {})
        self.allowed_origins = tuple(allowed_origins)
        self.instance_id = instance_id
        self.args = list(args)
        self.startup_timeout = startup_timeout
        self.log_level = log_level
        self.workers = workers
        self._ready_workers: set[str] = set()
        self._process = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None
        self.returncode: int | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``"""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>``"""
        return f"ws://{self.host}:{self.port}"

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far (the server masks its own logs)."""
        if self._log is None:
            return ""
        return Path(self._log.name).read_bytes().decode("utf-8", "replace")

    # -- lifecycle -----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "ALLOWED_ORIGINS": ",".join(self.allowed_origins),
                "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": self.log_level,
            }
        )
        if self.instance_id:
            env["INSTANCE_ID"] = self.instance_id
        env.update(self.extra_env)
        return env

    def start(self) -> BackendProcess:
        """Start the server and wait until it is ready (see :meth:`ready`); raises :class:`BackendError`.

        When no port was given and the chosen one was taken meanwhile, tries again on another.
        """
        if self.running:
            return self
        for attempt in range(3):
            try:
                return self._start_once()
            except BackendError:
                if self._fixed_port is not None or attempt == 2 or "address already in use" not in self.output():
                    raise
                self.port = free_port(self.host)
        raise BackendError("unreachable")  # pragma: no cover

    def _start_once(self) -> BackendProcess:
        if self._log is None:
            # Lives as long as this object (closed in close()), so no with-block.
            self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
                prefix="labsession-serve-", suffix=".log", delete=False
            )
        else:
            self._log.truncate(0)
        command = [*_command(), "serve", "--host", self.host, "--port", str(self.port), *self.args]
        if self.workers != 1:
            command += ["--workers", str(self.workers)]
        self._ready_workers.clear()
        self._process = spawn(
            command,
            env=self._environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self.returncode = code
                self._process = None
                raise BackendError(
                    f"labsession serve exited with {code} at start on port {self.port}: "
                    f"{mask_text(self.output().strip()[-600:])}"
                )
            if self._all_workers_ready():
                log.info("backend ready at %s (pid %s, %d workers)", self.url, self.pid, self.workers)
                return self
            time.sleep(0.05)
        tail = mask_text(self.output().strip()[-600:])
        self.kill()
        raise BackendError(f"labsession serve was not ready within {self.startup_timeout} s: {tail}")

    def ready(self, timeout: float = 1.0) -> bool:
        """True when ``GET /health/ready`` (``/health`` without ``wait_for_store``) answers 200
        within ``timeout`` seconds (from whichever worker took the connection)."""
        return self._ready_instance(timeout) is not None

    def _ready_instance(self, timeout: float = 1.0) -> str | None:
        """The ``instanceId`` that answered 200 to the readiness check, or ``None``."""
        path = "/health/ready" if self.wait_for_store else "/health"
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
                if response.status != 200:
                    return None
                body = json.loads(response.read())
                return str(body.get("instanceId", "")) if isinstance(body, dict) else ""
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _all_workers_ready(self) -> bool:
        instance = self._ready_instance()
        if instance is None:
            return False
        self._ready_workers.add(instance)
        return len(self._ready_workers) >= self.workers

    def terminate(self) -> None:
        """Send SIGTERM (a graceful stop) without waiting."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit and return its exit code; raises ``subprocess.TimeoutExpired``."""
        if self._process is None:
            if self.returncode is None:
                raise BackendError("the backend process was never started")
            return self.returncode
        self.returncode = self._process.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code. Safe to call twice."""
        if self._process is not None:
            self.returncode = stop_process(self._process, timeout)
            self._process = None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL at once (a crash, as far as clients can tell)."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.kill()
            self.returncode = process.wait(10)

    def close(self) -> None:
        """Stop the process and delete its output file."""
        self.stop()
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"BackendProcess({self.url!r}, {state})"
