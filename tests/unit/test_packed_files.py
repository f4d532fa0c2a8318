"""Where the packed-decoder cache (model/packed.py) keeps its files, and what it deletes.

An upgrade that changes the packed layout (PACK_VERSION, torch, the kernels) writes a new file;
the model's files of other layouts, including version 1's differently named one, go once the
new one is saved. Other models' files stay.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from wren.model import kernels, packed


def test_saving_a_new_layout_removes_only_this_models_older_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packed, "cache_root", lambda: tmp_path)
    current = packed.packed_file("model-a")
    assert current.parent == tmp_path / "packed"
    current.parent.mkdir()
    other_layout = current.with_name(current.name.split("-")[0] + "-0123456789ab.safetensors")
    version_1 = hashlib.sha256(
        json.dumps(["model-a", "1", kernels.available(), torch.__version__]).encode()
    ).hexdigest()[:24]
    legacy = current.parent / f"{version_1}.safetensors"
    other_model = packed.packed_file("model-b")
    tokenizer = current.parent / "0123456789abcdef01234567.tokenizer"
    for path in (current, other_layout, legacy, other_model):
        path.write_bytes(b"x")
    tokenizer.mkdir()

    packed.remove_stale(current, "model-a")

    assert current.is_file() and other_model.is_file() and tokenizer.is_dir()
    assert not other_layout.exists() and not legacy.exists()


def test_each_layout_has_its_own_file(monkeypatch: pytest.MonkeyPatch) -> None:
    now = packed.packed_file("model-a")
    monkeypatch.setattr(packed, "PACK_VERSION", packed.PACK_VERSION + "-next")
    later = packed.packed_file("model-a")
    assert later != now
    assert later.name.split("-")[0] == now.name.split("-")[0]  # same model, same prefix
