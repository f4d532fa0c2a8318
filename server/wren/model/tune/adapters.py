"""Find and check a `wren tune` adapter for the model Wren serves.

An adapter folder holds `adapter_model.safetensors` + `adapter_config.json` (peft's LoRA
format) and Wren's `manifest.json` (base model digest, data digest, settings, metrics).
`apply_adapter` checks one against the loaded model and keeps its update per module on
`LoadedModel.low_rank` (B scaled by alpha / r). The fast decoder serves it beside the packed
4-bit weights (`fast_decode.LowRankLinear`: merged, the update would be off the 4-bit grid and
re-packing would round it away); the transformers path merges it (W += B @ A) when the
backend is built. Nothing here runs code from the folder: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wren.errors import ModelLoadError
from wren.model.checks import check_safetensors_header
from wren.model.loading import LoadedModel, ModelSource, cache_root, file_digest

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


class AdapterError(ModelLoadError):
    """An adapter Wren refuses to load; the message says why. The base model is used."""


@dataclass(frozen=True)
class AdapterChoice:
    path: Path | None  # the folder to serve, or None: the base model
    note: str = ""  # why none was chosen, when the user should know


@dataclass(frozen=True)
class CheckedAdapter:
    path: Path
    modules: int
    heldout_loss_before: float | None
    heldout_loss_after: float | None

    def describe(self) -> str:
        b, a = self.heldout_loss_before, self.heldout_loss_after
        gain = f", held-out loss {b:.3f} → {a:.3f}" if b is not None and a is not None else ""
        return f"adapter {self.path.name} ({self.modules} layers{gain})"


def workspace_key(root: str | Path) -> str:
    """A stable name for a workspace folder (its resolved path, hashed)."""
    resolved = str(Path(os.path.expanduser(str(root))).resolve())
    return hashlib.sha256(resolved.encode()).hexdigest()[:16]


def workspace_adapter_dir(root: str | Path) -> Path:
    return cache_root() / "adapters" / workspace_key(root)


def base_digest(source: ModelSource) -> str:
    """The identity of the base weights an adapter is trained on (and only fits)."""
    if source.kind == "gguf":
        return file_digest(source.path)
    h = hashlib.sha256()
    for weights in sorted(source.path.glob("*.safetensors")):
        h.update(weights.name.encode() + b"\0" + file_digest(weights).encode())
    return h.hexdigest()


def choose_adapter(setting: str, workspace_root: str | None, trusted: bool) -> AdapterChoice:
    """Turn `wren.model.adapter` (auto | off | a path) into the folder to load, if any.

    In Restricted Mode a path never loads (the value may come from the workspace's own
    settings); `auto` only looks in Wren's cache, where `wren tune` wrote it.
    """
    value = setting.strip()
    if value in ("", "off"):
        return AdapterChoice(None)
    if value == "auto":
        if not workspace_root:
            return AdapterChoice(None)
        folder = workspace_adapter_dir(workspace_root)
        if not (folder / MANIFEST).is_file():
            return AdapterChoice(None)
        try:
            manifest = read_manifest(folder)
        except AdapterError as err:
            return AdapterChoice(None, str(err))
        if not manifest.get("enabled", False):
            why = manifest.get("reason") or "it did not do better on held-out code"
            return AdapterChoice(
                None, f"The tuned adapter for this workspace is not enabled: {why}."
            )
        return AdapterChoice(folder)
    if not trusted:
        return AdapterChoice(
            None,
            "Wren does not load an adapter from a path in Restricted Mode; trust the workspace "
            "or set `wren.model.adapter` to auto.",
        )
    return AdapterChoice(Path(os.path.expanduser(value)))


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise AdapterError(f"{folder} is not a Wren adapter: it has no {MANIFEST}.") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterError(
            f"The adapter in {folder} is damaged: {MANIFEST} is unreadable."
        ) from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise AdapterError(
            f"The adapter in {folder} has an unknown manifest format; run `wren tune` again."
        )
    return manifest


def _read_config(folder: Path) -> tuple[float, list[str]]:
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        rank = int(config["r"])
        alpha = float(config["lora_alpha"])
        rslora = bool(config.get("use_rslora", False))
        targets = list(config.get("target_modules") or [])
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
    ) as err:
        raise AdapterError(
            f"The adapter in {folder} is damaged: {ADAPTER_CONFIG} is missing or unreadable."
        ) from err
    if rank <= 0:
        raise AdapterError(f"The adapter in {folder} is damaged: rank {rank}.")
    return (alpha / math.sqrt(rank) if rslora else alpha / rank), targets


def _lora_pairs(folder: Path) -> dict[str, tuple[Any, Any]]:
    """Module name -> (A, B) from the adapter weights, checked before anything is read."""
    from safetensors import SafetensorError, safe_open

    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise AdapterError(f"The adapter in {folder} has no {ADAPTER_WEIGHTS}.")
    try:
        check_safetensors_header(weights)
        found: dict[str, dict[str, Any]] = {}
        with safe_open(str(weights), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                module, sep, which = key.rpartition(".lora_")
                if not sep or which not in ("A.weight", "B.weight"):
                    raise AdapterError(
                        f"The adapter in {folder} holds {key!r}, which is not a LoRA weight."
                    )
                found.setdefault(module.removeprefix("base_model.model."), {})[which[0]] = (
                    fh.get_tensor(key)
                )
    except AdapterError:
        raise
    except (ModelLoadError, SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise AdapterError(f"The adapter in {folder} is damaged: {err}") from err
    pairs = {}
    for module, ab in found.items():
        if set(ab) != {"A", "B"}:
            raise AdapterError(
                f"The adapter in {folder} is damaged: {module} lacks half its update."
            )
        pairs[module] = (ab["A"], ab["B"])
    if not pairs:
        raise AdapterError(f"The adapter in {folder} holds no weights.")
    return pairs


def merge_low_rank(model: Any, low_rank: dict[str, tuple[Any, Any]]) -> None:
    """W += B @ A for each module named in `low_rank` (B already scaled)."""
    import torch

    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, (a, b) in low_rank.items():
            weight = modules[name].weight
            weight.add_((b.float() @ a.float()).to(device=weight.device, dtype=weight.dtype))


# The update is served in half precision (fast_decode.LowRankLinear): its largest value.
HALF_MAX = 65504.0


def read_adapter(
    model: Any, folder: Path, digest: str
) -> tuple[CheckedAdapter, dict[str, tuple[Any, Any]]]:
    """The adapter in `folder`, checked against `model`: its update per module name, as
    (A [r, in], B [out, r] scaled by alpha / r)."""
    if not folder.is_dir():
        raise AdapterError(f"Adapter folder {folder} does not exist.")
    manifest = read_manifest(folder)
    if manifest.get("base_digest") != digest:
        raise AdapterError(
            f"The adapter in {folder} was trained for another model "
            f"({manifest.get('base_name', 'unknown')}, digest "
            f"{str(manifest.get('base_digest', ''))[:12]}), not the one loaded "
            f"({digest[:12]}); run `wren tune` again."
        )
    scale, _targets = _read_config(folder)
    pairs = _lora_pairs(folder)
    modules = dict(model.named_modules())
    low_rank: dict[str, tuple[Any, Any]] = {}
    for name, (a, b) in pairs.items():
        layer = modules.get(name)
        weight = getattr(layer, "weight", None)
        if weight is None or a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
            raise AdapterError(f"The adapter in {folder} does not fit this model (layer {name}).")
        if (b.shape[0], a.shape[1]) != tuple(weight.shape):
            raise AdapterError(
                f"The adapter in {folder} does not fit this model: {name} is "
                f"{tuple(weight.shape)}, the update is {(b.shape[0], a.shape[1])}."
            )
        a, b = a.float(), b.float() * scale
        if not all(t.isfinite().all() and t.abs().max() <= HALF_MAX for t in (a, b)):
            raise AdapterError(
                f"The adapter in {folder} holds values Wren cannot serve (layer {name}: not "
                "finite, or beyond half precision); run `wren tune` again."
            )
        low_rank[name] = (a, b)
    metrics = manifest.get("metrics") or {}
    adapter = CheckedAdapter(
        folder, len(low_rank), metrics.get("heldout_loss_before"), metrics.get("heldout_loss_after")
    )
    return adapter, low_rank


def apply_adapter(loaded: LoadedModel, folder: Path | None) -> LoadedModel:
    """Check `folder` and put its update on `loaded.low_rank`, before a backend is built.

    One Wren refuses (damaged, trained for another model, missing) leaves the base model, and
    `loaded.adapter_note` says why; `loaded.adapter` describes the adapter in use.
    """
    if folder is None:
        return loaded
    try:
        if loaded.quantized:
            raise AdapterError("A tuned adapter needs `wren.model.quantize` none.")
        if loaded.model is None:
            raise AdapterError("The model was loaded for decoding only; reload it to tune.")
        adapter, low_rank = read_adapter(loaded.model, folder, base_digest(loaded.source))
    except AdapterError as err:
        loaded.adapter_note = f"{err} Using the base model."
        log.warning("adapter refused: %s", err)
        return loaded
    loaded.low_rank = low_rank
    loaded.adapter = adapter.describe()
    loaded.adapter_note = ""
    return loaded


def write_adapter_atomically(target: Path, write: Any) -> None:
    """Run `write(tmp_folder)`, then swap the folder in; any failure leaves `target` as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    for stale in target.parent.glob(f"{target.name}.partial-*"):  # a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        if target.exists():
            target.replace(old)
        tmp.replace(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            old.replace(target)
        raise
    shutil.rmtree(old, ignore_errors=True)
