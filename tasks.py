#!/usr/bin/env python3
"""Bootstrap and run labsession's two everyday jobs with nothing but Python 3.11+.

    python3 tasks.py health   # the health run on an embedded Redis (the main job)
    python3 tasks.py test     # lint, type-check and the whole test suite
    python3 tasks.py mutation # mutation testing of the costly modules (tools/mutation.py; a habit, not CI)

Each creates ``.venv`` on first use and reinstalls only when ``pyproject.toml`` changes.
Extra arguments after the job are passed on (to ``labsession health``, to pytest or to tools/mutation.py).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LABSESSION_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _say(message: str) -> None:
    print(f"[tasks] {message}", flush=True)


def bootstrap() -> None:
    """Create the virtual environment and install labsession with its test extra, if needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script must run on old Pythons to say so
        sys.exit(f"labsession needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / ".labsession-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and PY.exists():
        return
    if not PY.exists():
        _say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    _say("installing labsession and its test dependencies (first run takes a minute)")
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # The build backend's advice about editable installs is for package authors, not for you.
    quiet = dict(os.environ, PYTHONWARNINGS="ignore")
    subprocess.run([*pip, "--upgrade", "pip"], check=True, env=quiet)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True, env=quiet)
    subprocess.run(
        [str(PY), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    stamp.write_text(want)


def _run(argv: list[str]) -> int:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=ROOT, env=env).returncode


def health(extra: list[str]) -> int:
    return _run([str(BIN / "labsession"), "health", "--embedded", *extra])


def test(extra: list[str]) -> int:
    sources = ["labsession", "tests", "bench", "tools", "tasks.py", "conftest.py"]
    steps = [
        ("ruff", [str(BIN / "ruff"), "check", *sources]),
        ("ruff format", [str(BIN / "ruff"), "format", "--check", *sources]),
        ("mypy", [str(BIN / "mypy"), "--strict", "labsession"]),
    ]
    if not extra:
        for name, argv in steps:
            _say(f"{name} ...")
            if code := _run(argv):
                _say(f"{name} failed (exit {code})")
                return code
    _say("pytest ...")
    return _run([str(PY), "-m", "pytest", *extra])


def mutation(extra: list[str]) -> int:
    return _run([str(PY), str(ROOT / "tools" / "mutation.py"), *extra])


def main(argv: list[str]) -> int:
    jobs = {"health": health, "test": test, "mutation": mutation}
    if not argv or argv[0] not in jobs:
        print(__doc__)
        return 2
    bootstrap()
    return jobs[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
