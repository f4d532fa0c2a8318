"""Listing a workspace's files: git only when the caller allows it (a trusted workspace)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from wren import workspace_files
from wren.workspace_files import list_candidate_files


def _repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()  # looks like a repository: git would be asked if allowed
    (tmp_path / "app.ts").write_text("export const a = 1;\n", encoding="utf-8")
    (tmp_path / "ignored.ts").write_text("export const b = 2;\n", encoding="utf-8")
    (tmp_path / ".gitignore").write_text("ignored.ts\n", encoding="utf-8")
    return tmp_path


def test_an_untrusted_workspace_is_walked_and_git_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []

    def no_process(*args: Any, **kwargs: Any) -> Any:
        started.append(args)
        raise AssertionError("git must not run for an untrusted workspace")

    monkeypatch.setattr(workspace_files.subprocess, "run", no_process)
    files = list_candidate_files(_repo(tmp_path), use_git=False)
    assert started == []
    assert "app.ts" in files and "ignored.ts" not in files  # the walk honours .gitignore basics


def test_a_trusted_workspace_asks_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_git(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=b"app.ts\0", stderr=b"")

    monkeypatch.setattr(workspace_files.subprocess, "run", fake_git)
    assert list_candidate_files(_repo(tmp_path), use_git=True) == ["app.ts"]
    assert calls and calls[0][0] == "git" and "ls-files" in calls[0]
