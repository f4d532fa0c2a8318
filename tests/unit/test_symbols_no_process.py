"""Symbol lookup (jedi) starts no process, even when $VIRTUAL_ENV points into the workspace.

jedi's default environment inspects compiled modules in a Python subprocess (the
interpreter of $VIRTUAL_ENV when it is set); Wren gives jedi an in-process environment.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from wren.context import symbols
from wren.context.symbols import symbol_snippets
from wren.types import Snapshot

HELPER = '''\
def compute_total(items: list[float], tax: float = 0.2) -> float:
    """Sum the items and add tax."""
    return sum(items) * (1 + tax)
'''

MAIN = """\
import json
import math
from helper import compute_total

total = compute_total([1.0, 2.0])
json.dumps(math.floor(total))
"""


def test_symbol_lookup_starts_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A planted interpreter: if jedi ran it, the marker would appear.
    marker = tmp_path / "planted-python-ran"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name in ("python", "python3"):
        planted = venv_bin / name
        planted.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
        planted.chmod(0o755)
    (tmp_path / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "helper.py").write_text(HELPER)
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / ".venv"))
    monkeypatch.setattr(symbols, "_environments", {})  # fresh, as in a new server
    monkeypatch.setattr(symbols, "_projects", {})

    started: list[Any] = []
    real_init = subprocess.Popen.__init__

    def spy(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        started.append(args)
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", spy)
    path = tmp_path / "main.py"
    snapshot = Snapshot(path.as_uri(), MAIN, len(MAIN), "python", path=str(path))
    snippets = symbol_snippets(snapshot, str(tmp_path), budget_s=60)

    assert any("def compute_total" in s.text for s in snippets)  # the lookup did work
    assert started == []
    assert not marker.exists()
