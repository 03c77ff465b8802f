"""The session explorer in a real browser: JupyterLab on loopback, Debian's Chromium via Playwright.

JupyterLab is started from the project's own environment (``--allow-root`` because CI runs as
root) with a known token, on a free port, in a temporary root holding a copy of
``notebooks/05_session_explorer.ipynb``; its kernels get the test's Redis through the
runner's embedded-target variable. The browser opens the notebook, runs all cells, and the
test asserts that the explorer rendered with our sessions; then it searches for one session,
opens it, ends it through the confirmation, and checks Redis. Screenshots go to
``test-artifacts/``. Every wait is bounded; JupyterLab and its kernels are killed at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labsession import EmbeddedRedis, LabSessionService, RedisService, Settings, ValidationReason
from labsession.embedded.redis_server import free_port
from labsession.embedded.target import EMBEDDED_BACKENDS_ENV, EMBEDDED_REDIS_URL_ENV

from support import CANARY, IN_CI, REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = REPO
NOTEBOOK = ROOT / "notebooks" / "05_session_explorer.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
#: Upper bound on each browser wait, milliseconds (a slow CI machine gets the same bound everywhere).
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("no /usr/bin/chromium here (apt-get install chromium)")
    return CHROMIUM


def _prepared_notebook(directory: Path) -> Path:
    """A copy of the explorer notebook that opens read-write (so the test can end a session)
    and writes no demo sessions (so the rows are exactly ours)."""
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            source = source.replace("read_only: bool = True", "read_only: bool = False")
            source = source.replace("demo_sessions: int = 12", "demo_sessions: int = 0")
            assert "read_only: bool = False" in source and "demo_sessions: int = 0" in source
            cell["source"] = source
    target = directory / NOTEBOOK.name
    target.write_text(json.dumps(notebook))
    return target


@pytest.fixture
def jupyterlab(tmp_path: Path, embedded_redis: EmbeddedRedis) -> Iterator[tuple[str, str, Path]]:
    """(base URL, token, root dir) of a JupyterLab whose kernels use ``embedded_redis``."""
    root = tmp_path / "lab"
    root.mkdir()
    _prepared_notebook(root)
    port = free_port()
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "JUPYTER_TOKEN")}
    env.update(
        {
            EMBEDDED_REDIS_URL_ENV: embedded_redis.url,
            EMBEDDED_BACKENDS_ENV: "",
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        }
    )
    log = (tmp_path / "jupyterlab.log").open("wb")
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
    ]
    process = subprocess.Popen(
        command,
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode}: {_tail(tmp_path / 'jupyterlab.log')}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 60 s: {_tail(tmp_path / 'jupyterlab.log')}")
            time.sleep(0.2)
        yield base, token, root
    finally:
        # JupyterLab and the kernels it started share its process group: end them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # kernels that outlived the server
        log.close()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-1500:] if path.exists() else ""


def _seed(url: str) -> dict[str, str]:
    async def main() -> dict[str, str]:
        async with RedisService(Settings.from_url(url)) as redis:
            sessions = LabSessionService(redis)
            made = {}
            for user, lab in (("ada", "lab-redis"), ("ada", "lab-k8s"), ("grace", "lab-linux")):
                session = await sessions.create(
                    user, lab, "p", base_url="ws://demo.invalid", sandbox_account={"iamSecretAccessKey": CANARY}
                )
                made[f"{user}/{lab}"] = session.session_id
            ended = await sessions.create("linus", "lab-git", "p", base_url="ws://demo.invalid")
            await sessions.end(ended.session_id)
            made["linus/lab-git"] = ended.session_id
            return made

    return asyncio.run(main())


def _reason(url: str, session_id: str) -> ValidationReason:
    """What validation says about ``session_id`` now (in a worker thread: Playwright's sync API
    keeps an event loop of its own running in this one)."""

    async def main() -> ValidationReason:
        async with RedisService(Settings.from_url(url)) as redis:
            return (await LabSessionService(redis).validate(session_id)).reason

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result(timeout=30)


def test_session_explorer_renders_and_ends_a_session_in_chromium(
    chromium: Path, embedded_redis: EmbeddedRedis, jupyterlab: tuple[str, str, Path]
) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    made = _seed(embedded_redis.url)
    base, token, _root = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    shot: Callable[[str], Path] = lambda name: ARTIFACTS / f"session_explorer_{name}.png"  # noqa: E731
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            # JupyterLab may ask which kernel to start: take the preferred one (python3, the venv's).
            dialog = page.locator(".jp-Dialog .jp-mod-accept")
            with contextlib.suppress(PlaywrightTimeout):
                dialog.wait_for(state="visible", timeout=5_000)
                dialog.click()
            # The news opt-in toast may cover the lower right corner: decline it when it shows.
            with contextlib.suppress(PlaywrightTimeout):
                page.locator(".jp-Notification-Toast button:has-text('No')").click(timeout=2_000)
            # The kernel must be idle before "Run All".
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
                ".some(e => /Python 3.*\\| Idle/.test(e.textContent))"
            )
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")

            explorer = page.locator(".labsession-explorer")
            explorer.wait_for(state="visible")
            rows = explorer.locator(".labsession-row")
            rows.nth(3).wait_for(state="visible")
            assert rows.count() == 4
            text = explorer.inner_text()
            for user_lab in ("ada · lab-redis", "ada · lab-k8s", "grace · lab-linux", "linus · lab-git"):
                assert user_lab in text
            assert text.count("active") >= 3 and "ended" in text
            assert explorer.locator(".labsession-ttl").count() == 4  # a TTL bar per row
            # The notebook opened the first row: its record is shown redacted.
            detail = explorer.locator(".labsession-detail")
            detail.locator("pre").wait_for(state="visible")
            assert CANARY not in page.content()
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(shot("list")))

            # Search one session by id, open it, end it through the confirmation.
            target = made["grace/lab-linux"]
            query = explorer.locator(".labsession-query input")
            query.fill(target)
            query.press("Enter")
            page.wait_for_function(
                "() => document.querySelectorAll('.labsession-explorer .labsession-row').length === 1"
            )
            explorer.locator(".labsession-row .labsession-open").click()
            page.wait_for_function(
                "sid => document.querySelector('.labsession-explorer .labsession-detail').innerText.includes(sid)",
                arg=target,
            )
            explorer.locator(".labsession-end").click()
            confirm = explorer.locator(".labsession-confirm-yes")
            confirm.wait_for(state="visible")
            assert _reason(embedded_redis.url, target) is ValidationReason.OK  # nothing before the confirmation
            confirm.click()
            page.wait_for_function(
                "() => /ended/.test(document.querySelector('.labsession-explorer .labsession-status').innerText)"
            )
            assert _reason(embedded_redis.url, target) is ValidationReason.ENDED
            explorer.screenshot(path=str(shot("ended")))
            page.screenshot(path=str(shot("page")), full_page=False)
        except Exception:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(shot("failure")))  # what the browser showed when it went wrong
            raise
        finally:
            browser.close()
    assert shot("list").stat().st_size > 10_000
    shutil.copy(shot("list"), ARTIFACTS / "session_explorer.png")
