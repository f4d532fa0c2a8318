"""Cheap structural checks on weight files before any library parses them.

Wren loads only safetensors and GGUF. Pickle checkpoints are refused by name, and a
header that is truncated or claims absurd sizes fails fast, before memory is committed.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wren.errors import ModelLoadError, UnsafeCheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_MAX_GGUF_COUNT = 1_000_000  # tensors or metadata entries; real models have a few thousand
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def refuse_pickle(path: Path) -> None:
    raise UnsafeCheckpointError(
        f"Refusing to load {path.name}: it is a pickle checkpoint, and loading a pickle can run "
        "arbitrary code. Convert it to safetensors (for example with "
        "`transformers`' save_pretrained(..., safe_serialization=True) on a trusted machine) "
        "or use a .gguf file."
    )


def check_gguf_header(path: Path) -> None:
    """Validate the GGUF magic, version and counts; raise ModelLoadError when corrupt."""
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError as err:
        raise ModelLoadError(f"Cannot read {path}: {err.strerror}.") from err
    if len(head) < 24 or head[:4] != b"GGUF":
        raise ModelLoadError(
            f"{path.name} is not a valid GGUF file (bad magic bytes or too short, {size} bytes)."
        )
    version = struct.unpack("<I", head[4:8])[0]
    n_tensors, n_kv = struct.unpack("<QQ", head[8:24])
    if version not in (1, 2, 3):
        raise ModelLoadError(f"{path.name}: unsupported GGUF version {version}.")
    if n_tensors > _MAX_GGUF_COUNT or n_kv > _MAX_GGUF_COUNT or n_tensors == 0:
        raise ModelLoadError(
            f"{path.name} looks corrupt: its header claims {n_tensors} tensors and "
            f"{n_kv} metadata entries."
        )


def check_gguf_file(path: Path) -> None:
    """Header check, then a full structural parse with the `gguf` package (memory-mapped)."""
    check_gguf_header(path)
    from gguf import GGUFReader  # local: only needed when a GGUF is offered

    try:
        reader = GGUFReader(str(path))
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as err:  # the reader raises many kinds on damaged files
        raise ModelLoadError(
            f"{path.name} is a damaged or truncated GGUF file ({type(err).__name__}: {err})."
        ) from err
    if end > path.stat().st_size:
        raise ModelLoadError(f"{path.name} is truncated: its tensors extend past the end of file.")


def check_safetensors_header(path: Path) -> None:
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise ModelLoadError(f"{path.name} is not a valid safetensors file (too short).")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_SAFETENSORS_HEADER or n + 8 > size:
            raise ModelLoadError(
                f"{path.name} looks corrupt: its header claims {n} bytes in a {size}-byte file."
            )
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelLoadError(f"{path.name} has an unreadable safetensors header.") from err
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info.get("data_offsets", (0, 0))
        if end < start or 8 + n + end > size:
            raise ModelLoadError(f"{path.name} is truncated: tensor {name} runs past the end.")
