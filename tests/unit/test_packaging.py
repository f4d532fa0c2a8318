"""A non-editable install has the model cards (issue 10, item 9).

The cards (`models/*.toml`, now `server/wren/model_cards/*.toml` with `models/` linking there)
were not package data: `pip install .` built a wheel without them and every card was lost
silently. This builds the wheel the way pip does (from a copy of the sources, so the checkout
gets no build/ folder), checks its file list, and runs `wren models` from the unpacked wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CARDS = sorted((ROOT / "models").glob("*.toml"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "server",
        src / "server",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("wren-*.whl")
    return built


def test_the_repository_has_cards() -> None:
    assert len(CARDS) >= 5, f"models/ holds {CARDS}"
    for card in CARDS:
        assert "family" in tomllib.loads(card.read_text(encoding="utf-8")), card


def test_wheel_contains_every_model_card(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [c.name for c in CARDS if f"wren/model_cards/{c.name}" not in names]
    assert not missing, f"{wheel.name} lacks the cards {missing}"


def test_wheel_contains_the_kernel_source(wheel: Path) -> None:
    # `python -m wren.model.kernels` compiles it after a wheel install.
    assert "wren/model/kernels.cpp" in set(zipfile.ZipFile(wheel).namelist())


def test_wren_models_from_the_installed_wheel_lists_every_card(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {k: v for k, v in os.environ.items() if k not in ("WREN_MODELS_DIR", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), COLUMNS="200", NO_COLOR="1")
    # -P and a neutral cwd: the wheel's wren, not the checkout's (the editable install comes
    # after PYTHONPATH on sys.path).
    where = subprocess.run(
        [sys.executable, "-P", "-c", "import wren; print(wren.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "wren", "models"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    families = [tomllib.loads(c.read_text(encoding="utf-8"))["family"] for c in CARDS]
    # The first cell of each table row (rich draws "│"; "|" in ASCII mode).
    first_cells = {
        re.split(r"[│|]", line.strip())[1].strip()
        for line in proc.stdout.splitlines()
        if line.strip().startswith(("│", "|"))
    }
    missing = [f for f in families if f not in first_cells]
    assert not missing, f"`wren models` from the wheel lists no card for {missing}:\n{proc.stdout}"
    assert "No model cards" not in proc.stderr
