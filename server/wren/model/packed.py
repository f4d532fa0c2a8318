"""The lean decoder's packed 4-bit weights, cached on disk so a restart skips the model load.

The first start de-quantizes the GGUF into fp32 safetensors (loading.py), loads them with
transformers and packs them again for the 4-bit kernels: ~5 s of a cold start on two cores,
and ~0.5 GB of fp32 weights kept in memory beside the packed ones. After that first start the
packed tensors are saved here (one safetensors file per model, kernel layout and torch
version), and `load_model(..., lean_only=True)` builds the decoder from them without loading
the transformers model at all. A damaged file is deleted and rebuilt from the model; once a new
file is saved, the same model's files of other layouts are deleted (`remove_stale`).
A model served with a `wren tune` adapter is never cached (its weights are not the file's).

The tensors stay memory-mapped from the file (safetensors maps it; nothing is copied), so only
the pages a forward pass touches are resident: all 4-bit layers and the 8-bit head (~95 MB for
the default model), but only the embedding rows of tokens seen so far (the fp32 table is
113 MB). The tokenizer is cached beside this file (tokenizer.py), so a lean start imports
neither transformers' model nor its tokenizer code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from wren.model import kernels
from wren.model.cache_dir import cache_root
from wren.model.fast_decode import LeanModel

log = logging.getLogger(__name__)

# 2: block scales and minimums stored 8 output rows a vector (fast_decode.scale_rows).
PACK_VERSION = "2"


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:12]


def packed_file(model_key: str) -> Path:
    """Where the packed weights of the model `model_key` (its converted folder's name) go: one
    file per model and layout (this version, the kernels' availability, torch's version)."""
    layout = _digest(PACK_VERSION, kernels.available(), torch.__version__)
    return cache_root() / "packed" / f"{_digest(model_key)}-{layout}.safetensors"


def remove_stale(current: Path, model_key: str) -> None:
    """Delete the model's packed files of other layouts once `current` is written: an upgrade
    would otherwise leave ~200 MB behind each time. Version 1 named its files differently."""
    folder = current.parent
    stale = [p for p in folder.glob(f"{_digest(model_key)}-*.safetensors") if p != current]
    version_1 = hashlib.sha256(
        json.dumps([model_key, "1", kernels.available(), torch.__version__]).encode()
    ).hexdigest()[:24]
    stale.append(folder / f"{version_1}.safetensors")
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            log.warning("could not delete the stale packed model %s: %s", path, err)


def save(lean: LeanModel, path: Path) -> bool:
    """Write the packed model atomically; False (logged) when it can't or needn't be cached."""
    import safetensors.torch

    if lean.weights != "q4":
        return False
    try:
        tensors, meta = lean.to_state()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        safetensors.torch.save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return True
    except (OSError, ValueError, RuntimeError) as err:
        log.warning("could not cache the packed model in %s: %s", path, err)
        return False


def load(path: Path) -> LeanModel | None:
    """The cached decoder, or None (the file is missing, damaged or from another layout)."""
    import safetensors

    if not path.is_file():
        return None
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        return LeanModel.from_state(tensors, meta)
    except Exception as err:  # any unreadable file: rebuild it from the model
        log.warning("cached packed model %s is unusable (%s); rebuilding it", path, err)
        path.unlink(missing_ok=True)
        return None
