"""``labsession serve --workers N``: N worker processes on one port, each a whole backend.

The model is pre-fork with ``SO_REUSEPORT`` (Linux, the BSDs): the supervisor checks the port
is free (an ordinary bind, so a port in use fails at once with exit 1), keeps it reserved, and
forks the workers before it has an event loop, a thread or a connection. Each worker binds its
own listening socket with ``SO_REUSEPORT`` and builds its own state, Redis pool and access log
(nothing is shared in memory; the sessions live in Redis), and the kernel spreads new
connections over the workers' sockets, so kept-alive clients are spread too (a socket shared by
all workers lets the first one awake take a whole burst).

- **Readiness, per worker.** Each worker is named ``<instance id>-w<k>`` (``/health`` and
  ``/health/ready`` say which one answered) and tells the supervisor when it serves; the
  supervisor logs ``event=worker_ready`` for each and ``event=ready workers=N`` once all serve.
  A worker is in the kernel's rotation only from the moment it listens.
- **Graceful shutdown of every worker.** SIGTERM or SIGINT to the supervisor is passed to every
  worker as SIGTERM; each closes its WebSockets with 1001 and finishes its requests within
  ``shutdown_timeout``. The supervisor exits 0 when all did, and kills any worker still running
  ``shutdown_timeout + 10`` seconds later (exit 1). A worker whose supervisor died (SIGKILL)
  notices at once (its end of a pipe closes) and stops the same graceful way.
- **A worker that dies** after it served is replaced (``event=worker_exited`` …
  ``event=worker_ready``); one that fails before it ever served stops the whole server (exit 1,
  the same as a single process that cannot start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..masking import get_logger
from .config import BackendConfig

__all__ = ["bind_reuseport", "serve_workers", "watch_supervisor", "worker_ready"]

log = get_logger(__name__)

#: Environment variable naming a worker's pipe to its supervisor (set in the worker only).
_READY_FD = "LABSESSION_WORKER_READY_FD"
_LIFELINE_FD = "LABSESSION_WORKER_LIFELINE_FD"


def _address(host: str, port: int) -> tuple[int, Any]:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family, address


def bind_reuseport(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` (not listening yet).

    Made with ``IPPROTO_TCP`` named: asyncio sets ``TCP_NODELAY`` on accepted connections only
    when the listening socket says TCP, and without it Nagle's algorithm meets delayed ACKs
    (40 ms a response on kept-alive connections)."""
    family, address = _address(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _reserve(host: str, port: int) -> tuple[socket.socket, int]:
    """Check ``host:port`` is free with an ordinary bind, then hold it with ``SO_REUSEPORT``.

    The held socket never listens: it keeps other programs off the port while the workers,
    which set ``SO_REUSEPORT`` too, bind beside it. Port 0 picks a free port.
    """
    family, address = _address(host, port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind(address)  # OSError (address already in use) if anything holds the port
        port = int(probe.getsockname()[1])
    return bind_reuseport(host, port), port


@dataclass
class _Worker:
    index: int
    pid: int = 0
    ready_fd: int = -1  # the supervisor's end: the worker writes one byte once it serves
    lifeline_fd: int = -1  # the supervisor's end: closes when the supervisor dies
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


def worker_ready() -> None:
    """Tell the supervisor this worker serves (nothing outside a worker)."""
    raw = os.environ.pop(_READY_FD, "")
    if raw:
        with contextlib.suppress(OSError):
            os.write(int(raw), b"R")
            os.close(int(raw))


def watch_supervisor(on_gone: Callable[[], None]) -> None:
    """In a worker: call ``on_gone`` on the running loop when the supervisor dies (nothing elsewhere)."""
    raw = os.environ.pop(_LIFELINE_FD, "")
    if not raw:
        return
    fd = int(raw)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        with contextlib.suppress(OSError):
            if os.read(fd, 1):
                return
        loop.remove_reader(fd)
        log.warning("event=supervisor_gone pid=%d", os.getpid())
        on_gone()

    loop.add_reader(fd, readable)


class _Supervisor:
    def __init__(self, config: BackendConfig, count: int, run: Callable[[BackendConfig, socket.socket], int]) -> None:
        self.config = config
        self.count = count
        self.run = run
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.failed = False
        self.announced = False

    # -- starting ------------------------------------------------------------------------------

    def spawn(self, index: int, reserved: socket.socket, port: int) -> _Worker:
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        keep = {w.ready_fd for w in self.workers.values()} | {w.lifeline_fd for w in self.workers.values()}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for fd in (ready_r, life_w, reserved.fileno(), *keep):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.environ[_READY_FD] = str(ready_w)
                os.environ[_LIFELINE_FD] = str(life_r)
                name = f"{self.config.instance_id[:58]}-w{index}"
                config = self.config.with_changes(instance_id=name, port=port)
                sock = bind_reuseport(config.host, port)
                code = self.run(config, sock)
            except BaseException as exc:  # never let a worker run the supervisor's code
                log.error("event=worker_failed worker=%d error=%s", index, type(exc).__name__)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(ready_w)
        os.close(life_r)
        worker = _Worker(index, pid, ready_r, life_w)
        self.workers[pid] = worker
        log.info("event=worker_started worker=%d pid=%d", index, pid)
        return worker

    # -- running -------------------------------------------------------------------------------

    def on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping:
            log.info("event=stopping workers=%d signal=%s", len(self.workers), signal.Signals(signum).name)
        self.stopping = True
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def reap(self, reserved: socket.socket, port: int) -> None:
        for pid in list(self.workers):  # ours only: an embedded redis-server is a child too
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done == 0:
                continue
            worker = self.workers.pop(pid)
            for fd in (worker.ready_fd, worker.lifeline_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                if code != 0:
                    self.failed = True
                log.info("event=worker_stopped worker=%d pid=%d code=%d", worker.index, pid, code)
                continue
            log.warning("event=worker_exited worker=%d pid=%d code=%d", worker.index, pid, code)
            if not worker.ready:  # failed before it ever served: the server cannot start
                self.failed = True
                self.on_signal(signal.SIGTERM, None)
                continue
            time.sleep(0.1)  # a crash loop must not spin
            self.spawn(worker.index, reserved, port)

    def read_ready(self, timeout: float) -> None:
        waiting = {w.ready_fd: w for w in self.workers.values() if not w.ready and w.ready_fd >= 0}
        try:
            readable, _, _ = select.select(list(waiting), [], [], timeout) if waiting else ([], [], [])
        except InterruptedError:  # pragma: no cover - PEP 475 retries; a handler may still cut it short
            return
        if not waiting:
            time.sleep(timeout)
        for fd in readable:
            worker = waiting[fd]
            with contextlib.suppress(OSError):
                if os.read(fd, 1) == b"R":
                    worker.ready = True
                    log.info("event=worker_ready worker=%d pid=%d", worker.index, worker.pid)
        if not self.announced and len(self.workers) == self.count and all(w.ready for w in self.workers.values()):
            self.announced = True
            log.info("event=ready workers=%d listen=http://%s:%d", self.count, self.config.host, self.config.port)

    def supervise(self) -> int:
        try:
            reserved, port = _reserve(self.config.host, self.config.port)
        except OSError as exc:
            log.error("event=bind_failed listen=%s:%d error=%s", self.config.host, self.config.port, exc.strerror)
            print(
                f"labsession serve: cannot listen on {self.config.host}:{self.config.port}: "
                f"{exc.strerror or exc} (address already in use?)",
                file=sys.stderr,
            )
            return 1
        self.config = self.config.with_changes(port=port)
        log.info(
            "event=starting workers=%d instance=%s listen=http://%s:%d",
            self.count,
            self.config.instance_id,
            self.config.host,
            port,
        )
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for sig in previous:
                signal.signal(sig, self.on_signal)
            for index in range(1, self.count + 1):
                if not self.stopping:
                    self.spawn(index, reserved, port)
            deadline: float | None = None
            while self.workers:
                self.read_ready(0.1)
                self.reap(reserved, port)
                if self.stopping and deadline is None:
                    deadline = time.monotonic() + self.config.shutdown_timeout + 10
                if deadline is not None and time.monotonic() > deadline:
                    for pid in list(self.workers):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                    log.warning("event=workers_killed count=%d", len(self.workers))
                    self.failed = True
                    deadline = time.monotonic() + 10
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reserved.close()
        log.info("event=stopped workers=%d code=%d", self.count, 1 if self.failed else 0)
        return 1 if self.failed else 0


def serve_workers(
    config: BackendConfig,
    count: int,
    serve_one: Callable[[BackendConfig, socket.socket], Coroutine[Any, Any, int]],
    run_loop: Callable[[Coroutine[Any, Any, int], str], int],
) -> int:
    """Run ``count`` workers, each ``run_loop(serve_one(config, sock), config.loop)``; returns the exit code.

    Call it from a process with no running event loop, no threads and no open connection.
    """
    if count < 1:
        raise ConfigError("--workers", f"must be 1 or more, got {count}")
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers", "needs SO_REUSEPORT, which this platform lacks; run one process per port")

    def run(worker_config: BackendConfig, sock: socket.socket) -> int:
        return run_loop(serve_one(worker_config, sock), worker_config.loop)

    return _Supervisor(config, count, run).supervise()
