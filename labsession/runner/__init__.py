"""Running notebooks headless: the health run, runbook runs, the library-only check, the registry
of what runs, and the reports they write. The command line (:mod:`labsession.cli`) only parses."""

from __future__ import annotations

__all__: list[str] = []
