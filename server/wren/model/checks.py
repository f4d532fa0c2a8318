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
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path.name}: the safetensors header is not a JSON object.")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _check_tensor_entry(path, name, info, data_size)


# Bytes per element of the safetensors dtypes.
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


def _check_tensor_entry(path: Path, name: str, info: object, data_size: int) -> None:
    """One tensor's entry: an object with a known dtype, a shape and in-file offsets that agree."""
    bad = f"{path.name} looks corrupt: tensor {name!r}"
    if not isinstance(info, dict):
        raise ModelLoadError(f"{bad} has no description.")
    offsets, shape, dtype = info.get("data_offsets"), info.get("shape"), info.get("dtype")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
    ):
        raise ModelLoadError(f"{bad} has invalid data offsets {offsets!r}.")
    start, end = offsets
    if end < start or end > data_size:
        raise ModelLoadError(f"{path.name} is truncated: tensor {name!r} runs past the end.")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ModelLoadError(f"{bad} has an invalid shape {shape!r}.")
    if dtype not in _DTYPE_BYTES:
        raise ModelLoadError(f"{bad} has an unknown dtype {dtype!r}.")
    count = 1
    for d in shape:
        count *= d
    if count * _DTYPE_BYTES[str(dtype)] != end - start:
        raise ModelLoadError(
            f"{bad} claims shape {shape} of {dtype} but holds {end - start} bytes."
        )
