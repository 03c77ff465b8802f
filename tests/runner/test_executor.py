"""The one papermill executor: how it starts kernels (real kernels, real notebooks)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from labsession.runner.executor import Execution, execute
from labsession.runner.registry import HealthNotebook

pytestmark = [pytest.mark.notebook]

_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(path: Path, *cells: str) -> Path:
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    book.metadata["kernelspec"] = _KERNELSPEC
    nbformat.write(book, str(path))
    return path


@pytest.mark.skipif(os.name != "posix", reason="IPC transport is POSIX only")
def test_kernels_talk_over_private_unix_sockets_not_tcp(tmp_path: Path) -> None:
    # Over TCP the kernel warns, on every run, that it "is running over TCP without encryption".
    source = notebook(
        tmp_path / "transport.ipynb",
        "from ipykernel.kernelapp import IPKernelApp\napp = IPKernelApp.instance()\nprint(app.transport, app.ip)",
    )
    execution = Execution(HealthNotebook("transport", str(source)))
    done = execute(source, tmp_path / "out.ipynb", {}, cell_timeout=60, execution=execution)
    assert done.error is None, done.error
    printed = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4).cells[0].outputs[0]["text"]
    transport, ip = printed.split()
    assert transport == "ipc"
    assert Path(ip).parent.name.startswith("labsession-kernel-")
    assert not Path(ip).parent.exists()  # the socket folder is removed with the kernel
