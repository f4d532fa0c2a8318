"""The `wren` command line with the real default model, run as a user runs it (a subprocess).

Token limits are kept small; what the model writes is not pinned, what the command does with
it is: exit status, where results and messages go, the file left unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

HANG_GUARD_S = 600  # not a performance bound: a generous limit so a hang fails the test

COMPLETE_ME = 'def area_of_rectangle(width, height):\n    """The area."""\n    return \n'

BODY_TO_WRITE = '''def area_of_rectangle(width, height):
    """Return the area of a rectangle: width times height.

    >>> area_of_rectangle(2, 3)
    6
    """
'''


def wren(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wren", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        check=False,
    )


def test_complete_prints_the_completion_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "area.py"
    path.write_text(COMPLETE_ME, encoding="utf-8")
    result = wren(
        "complete", str(path), "--line", "2", "--max-tokens", "16", "--details", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    completion = result.stdout
    assert completion.strip() and completion.count("\n") == 1, completion  # one line, then "\n"
    assert "decision: complete (single-line)" in result.stderr
    assert "model load" in result.stderr and "Loading weights" not in result.stderr
    assert path.read_text(encoding="utf-8") == COMPLETE_ME


def test_explain_prints_markdown(tmp_path: Path) -> None:
    path = tmp_path / "area.py"
    path.write_text(BODY_TO_WRITE + "    return width * height\n", encoding="utf-8")
    result = wren("explain", str(path), "--line", "0", "--max-tokens", "32", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("**Lines 1–7 of area.py**"), result.stdout
    assert len(result.stdout.strip().splitlines()) > 1, "a header and no explanation"
    assert "1 model call(s)" in result.stderr


def test_generate_prints_a_diff_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "area.py"
    path.write_text(BODY_TO_WRITE, encoding="utf-8")
    result = wren(
        "generate", str(path), "--line", "1", "--max-tokens", "48", "--max-rounds", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert "Generate the body of area_of_rectangle(): 1 round(s), 1 model call(s)" in (
        " ".join(result.stderr.split())
    )
    if result.returncode == 0:  # a verified body: a diff that only adds lines
        assert result.stdout.startswith(f"--- {path}\n+++ {path} (proposed)\n")
        added = [ln for ln in result.stdout.splitlines()[3:] if ln.startswith("+")]
        removed = [ln for ln in result.stdout.splitlines()[3:] if ln.startswith("-")]
        assert added and not removed
    else:
        assert result.returncode == 1 and result.stdout.count("\n---") <= 1
    assert path.read_text(encoding="utf-8") == BODY_TO_WRITE


def test_bad_line_is_reported_without_loading_the_model(tmp_path: Path) -> None:
    path = tmp_path / "area.py"
    path.write_text(COMPLETE_ME, encoding="utf-8")
    result = wren("fix", str(path), "--line", "99", cwd=tmp_path)
    assert result.returncode == 2
    assert "--line 99 is outside" in " ".join(result.stderr.split())
    assert "model" not in result.stderr.lower()
