"""The packed-decoder cache (model/packed.py) with the real default model.

A first load packs the 4-bit weights and saves them; the next `load_model(lean_only=True)`
builds the decoder from that file without loading the transformers model, and decodes exactly
the same tokens. A damaged file is rebuilt; a model with an adapter merged is never cached.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wren.model import packed
from wren.model.generation import TransformersBackend
from wren.model.loading import load_model
from wren.types import CancelToken, GenerationParams

pytestmark = pytest.mark.model

PROMPT = "def fibonacci(n):\n    "
PARAMS = GenerationParams(max_new_tokens=24, time_budget_s=60, stop_at_newline=False)


@pytest.fixture
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "packed" / "model.safetensors"
    monkeypatch.setattr(packed, "packed_file", lambda _key: target)
    return target


def greedy(backend: TransformersBackend) -> str:
    return backend.generate(PROMPT, PARAMS, CancelToken(), cache_slot="t").text


def test_second_start_loads_the_packed_decoder_and_decodes_the_same(cache_file: Path) -> None:
    full = load_model("", lean_only=True)  # nothing cached yet: the whole model
    assert full.model is not None and full.lean is None
    first = TransformersBackend(full)
    assert first.lean is not None and first.lean.weights == "q4"
    assert first.model is None, "the fp32 transformers weights should be released"
    assert cache_file.is_file()
    want = greedy(first)

    fast = load_model("", lean_only=True)
    assert fast.model is None and fast.lean is not None
    second = TransformersBackend(fast)
    assert greedy(second) == want
    assert len(want) > 10

    with pytest.raises(ValueError, match="lean"):
        TransformersBackend(fast, lean=False)


def test_a_damaged_packed_file_is_rebuilt(cache_file: Path) -> None:
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"not a safetensors file")
    loaded = load_model("", lean_only=True)
    assert loaded.model is not None and loaded.lean is None  # fell back to the full load
    assert not cache_file.exists()
    TransformersBackend(loaded)
    assert cache_file.is_file()
    assert load_model("", lean_only=True).lean is not None


def test_a_model_with_an_adapter_is_not_cached(cache_file: Path) -> None:
    loaded = load_model("")
    loaded.adapter = "tuned on some workspace"  # what tune.adapters.apply_adapter records
    TransformersBackend(loaded)
    assert not cache_file.exists()


def test_without_the_kernels_a_second_start_warms_up_and_decodes_the_same(tmp_path: Path) -> None:
    """A machine without the AVX2 kernels (another CPU, or not built yet) caches torch's
    layout; the next start builds the decoder from that memory-mapped file and warms up
    (a scoring pass over several rows). Run in a child process: the failure was a crash."""
    target = tmp_path / "packed" / "model.safetensors"
    code = f"""
from pathlib import Path
from wren.model import kernels, packed
from wren.model.generation import TransformersBackend
from wren.model.loading import load_model
from wren.types import CancelToken, GenerationParams
assert not kernels.available()
packed.packed_file = lambda _key: Path({str(target)!r})
params = GenerationParams(max_new_tokens=24, time_budget_s=60, stop_at_newline=False)
def greedy(b):
    return b.generate({PROMPT!r}, params, CancelToken(), cache_slot="t").text
first = TransformersBackend(load_model("", lean_only=True))
first.warm_up()
want = greedy(first)
again = load_model("", lean_only=True)
assert again.model is None and again.lean is not None, "not built from the packed file"
second = TransformersBackend(again)
second.warm_up()
assert greedy(second) == want and len(want) > 10, (greedy(second), want)
print("ok")
"""
    env = {**os.environ, "WREN_KERNELS": "off"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
