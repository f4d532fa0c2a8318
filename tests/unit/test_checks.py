"""Safe loading: the weight-file checks (model/checks.py) and what the loader refuses.

- A truncated or corrupt GGUF / safetensors file, or a header claiming absurd sizes (counts,
  a 2^60-byte tensor, a 2^60-byte string), fails fast with a ModelLoadError naming the file,
  and with bounded memory (the checks never allocate what a header claims).
- Pickle checkpoints (.bin/.pt/.pth/.ckpt/.pkl) are refused, naming the file and the safe
  alternative; nothing is unpickled.
- A model folder's own code (modeling_*.py, tokenization_*.py) never runs, with or without an
  `auto_map` asking for it.
"""

from __future__ import annotations

import json
import pickle
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wren.errors import ModelLoadError, UnsafeCheckpointError
from wren.model.checks import check_gguf_file, check_gguf_header, check_safetensors_header
from wren.model.loading import resolve_source

MEMORY_BOUND = 32 * 1024 * 1024  # far below anything a claimed size would need


def expect_load_error(check: Callable[[Path], None], path: Path, *words: str) -> str:
    """`check(path)` raises ModelLoadError naming the file, within MEMORY_BOUND of allocations."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadError) as err:
            check(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert path.name in message, message
    assert any(w in message for w in words) if words else True, message
    assert peak < MEMORY_BOUND, f"peak allocation {peak} bytes"
    return message


# -- GGUF -------------------------------------------------------------------------------------


def tiny_gguf(path: Path) -> bytes:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("tok_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def _after(data: bytes, key: bytes) -> int:
    return data.index(key) + len(key)


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def test_valid_gguf_passes(tmp_path: Path, gguf_bytes: bytes) -> None:
    path = tmp_path / "ok.gguf"
    path.write_bytes(gguf_bytes)
    check_gguf_file(path)


CUTS = (24, 40, 100, 200, 300, -1)  # truncations (-1: all but the last byte)
GGUF_VARIANTS = [
    "tensor-2^60-elements",
    "tensor-data-offset-2^60",
    "tensor-2^31-dims",
    "tensor-bad-type",
    "tensor-name-2^60-bytes",
    "string-2^60-bytes",
    "array-2^60-items",
    "kv-count-too-high",
    "tensor-count-too-high",
    *(f"cut-at-{cut}" for cut in CUTS),
]


def gguf_variant(data: bytes, name: str) -> bytes:
    """The tiny GGUF with one field damaged (offsets found by searching for the key names)."""
    dims = _after(data, b"tok_embd.weight")  # u32 n_dims, u64 dims..., u32 type, u64 offset
    if name.startswith("cut-at-"):
        return data[: int(name.removeprefix("cut-at-"))]
    return {
        "tensor-2^60-elements": lambda: _patched(data, dims + 4, "<QQ", 2**30, 2**30),
        "tensor-data-offset-2^60": lambda: _patched(data, dims + 4 + 16 + 4, "<Q", 2**60),
        "tensor-2^31-dims": lambda: _patched(data, dims, "<I", 2**31),
        "tensor-bad-type": lambda: _patched(data, dims + 4 + 16, "<I", 999),
        "tensor-name-2^60-bytes": lambda: _patched(
            data, data.index(b"tok_embd.weight") - 8, "<Q", 2**60
        ),
        "string-2^60-bytes": lambda: _patched(data, _after(data, b"general.name") + 4, "<Q", 2**60),
        "array-2^60-items": lambda: _patched(
            data, _after(data, b"tokenizer.ggml.tokens") + 8, "<Q", 2**60
        ),
        "kv-count-too-high": lambda: _patched(data, 16, "<Q", 50),
        "tensor-count-too-high": lambda: _patched(data, 8, "<Q", 5),
    }[name]()


@pytest.mark.parametrize("name", GGUF_VARIANTS)
def test_corrupt_gguf_fails_fast_with_a_clear_error(
    tmp_path: Path, gguf_bytes: bytes, name: str
) -> None:
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(gguf_variant(gguf_bytes, name))
    expect_load_error(check_gguf_file, path, "damaged", "truncated", "corrupt", "not a valid")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ("not a valid GGUF",)),
        (b"GGUF\x03\x00", ("not a valid GGUF",)),
        (b"PK\x03\x04" + b"\0" * 40, ("not a valid GGUF",)),
        (b"GGUF" + struct.pack("<IQQ", 99, 1, 1), ("unsupported GGUF version 99",)),
        (b"GGUF" + struct.pack("<IQQ", 3, 2**60, 1), ("corrupt",)),
        (b"GGUF" + struct.pack("<IQQ", 3, 1, 2**60), ("corrupt",)),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1), ("corrupt",)),
    ],
    ids=["empty", "short", "zip", "version", "2^60-tensors", "2^60-entries", "no-tensors"],
)
def test_gguf_header_check(tmp_path: Path, content: bytes, words: tuple[str, ...]) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    expect_load_error(check_gguf_header, path, *words)
    expect_load_error(check_gguf_file, path, *words)


# -- safetensors ------------------------------------------------------------------------------


def safetensors_file(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def test_valid_safetensors_passes(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "ok.safetensors"
    save_file({"w": np.zeros((4, 8), dtype=np.float32)}, str(path))
    check_safetensors_header(path)


F32_4 = {"dtype": "F32", "shape": [4]}


@pytest.mark.parametrize(
    ("header", "length", "data", "words"),
    [
        ({"w": F32_4}, 2**60, b"", ("claims",)),  # header length 2^60
        ({"w": F32_4}, 10_000, b"", ("claims",)),  # header past the end of the file
        ({"w": {**F32_4, "data_offsets": [0, 2**60]}}, None, b"\0" * 16, ("truncated",)),
        ({"w": {**F32_4, "data_offsets": [0, 32]}}, None, b"\0" * 16, ("truncated",)),
        ({"w": {**F32_4, "data_offsets": [16, 0]}}, None, b"\0" * 16, ("truncated",)),
    ],
    ids=["header-2^60", "header-past-end", "tensor-2^60-bytes", "tensor-past-end", "end<start"],
)
def test_corrupt_safetensors_fails_fast(
    tmp_path: Path, header: Any, length: int | None, data: bytes, words: tuple[str, ...]
) -> None:
    path = safetensors_file(tmp_path / "model.safetensors", header, data, length)
    expect_load_error(check_safetensors_header, path, *words)


@pytest.mark.parametrize(
    "raw",
    [b"\x01\x02", struct.pack("<Q", 5) + b"{{{{{", struct.pack("<Q", 4) + b"\xff\xfe\xfd\xfc"],
    ids=["too-short", "not-json", "not-utf8"],
)
def test_unreadable_safetensors_header(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(raw)
    expect_load_error(check_safetensors_header, path, "not a valid", "unreadable")


# Headers that are JSON but not the safetensors shape: today check_safetensors_header raises
# AttributeError / TypeError / ValueError (the model load still fails and is reported, but as
# "Wren could not load the model: AttributeError: ..."), or lets them through to the loader.
@pytest.mark.parametrize(
    "header",
    [
        [1, 2, 3],
        "abc",
        {"w": 5},
        {"w": {**F32_4, "data_offsets": "ab"}},
        {"w": {**F32_4, "data_offsets": [0]}},
        {"w": {**F32_4, "data_offsets": [-16, 0]}},
        {"w": F32_4},
        {"w": {"dtype": "F32", "shape": [2**30, 2**30], "data_offsets": [0, 16]}},
    ],
    ids=[
        "list",
        "string",
        "entry-not-object",
        "offsets-not-ints",
        "one-offset",
        "negative-offset",
        "no-offsets",
        "shape-2^60-vs-16-bytes",
    ],
)
def test_malformed_safetensors_header_is_a_clear_error(tmp_path: Path, header: Any) -> None:
    path = safetensors_file(tmp_path / "model.safetensors", header, b"\0" * 16)
    try:
        check_safetensors_header(path)
    except ModelLoadError as err:
        assert path.name in str(err)
        return
    except Exception as err:
        pytest.fail(f"{type(err).__name__} instead of ModelLoadError: {err}")
    pytest.fail("accepted")


# -- what resolve_source refuses ----------------------------------------------------------------


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".PT"])
def test_pickle_files_are_refused_by_name(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    path.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UnsafeCheckpointError) as err:
        resolve_source(str(path))
    message = str(err.value)
    assert path.name in message and "pickle" in message
    assert "safetensors" in message and ".gguf" in message  # the safe alternatives
    assert not (tmp_path / "PWNED_BY_PICKLE").exists() and not Path("PWNED_BY_PICKLE").exists()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "consolidated.pth"])
def test_folder_with_only_pickle_weights_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / name).write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(UnsafeCheckpointError, match=name.replace(".", r"\.")):
        resolve_source(str(tmp_path))


def test_other_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(ModelLoadError, match=r"weights\.onnx"):
        resolve_source(str(path))


# -- a model folder's code never runs ----------------------------------------------------------


def tiny_llama_folder(folder: Path) -> None:
    """A real (tiny, random) Llama model in safetensors with a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", "def", "return", "x", "(", ")"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)


def plant_code(folder: Path, marker: Path) -> None:
    """Python files that would leave `marker` behind if anything imported them."""
    code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for name in ("modeling_llama.py", "modeling_evil.py", "tokenization_evil.py", "__init__.py"):
        (folder / name).write_text(code)
    (folder / "configuration_evil.py").write_text(code)


def test_code_in_a_model_folder_never_runs(tmp_path: Path) -> None:
    from wren.model.loading import load_model

    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    tiny_llama_folder(folder)
    marker = tmp_path / "RAN"
    plant_code(folder, marker)
    loaded = load_model(str(folder), "cpu")
    assert type(loaded.model).__module__.startswith("transformers.")
    assert type(loaded.tokenizer).__module__.startswith("transformers.")
    assert not marker.exists(), marker.read_text()


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json"])
def test_auto_map_never_runs_code(tmp_path: Path, where: str) -> None:
    from wren.model.loading import load_model

    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    tiny_llama_folder(folder)
    marker = tmp_path / "RAN"
    plant_code(folder, marker)
    cfg_path = folder / where
    cfg = json.loads(cfg_path.read_text())
    cfg["auto_map"] = {
        "AutoConfig": "configuration_evil.EvilConfig",
        "AutoModelForCausalLM": "modeling_evil.Evil",
        "AutoTokenizer": ["tokenization_evil.EvilTokenizer", None],
    }
    cfg_path.write_text(json.dumps(cfg))
    try:
        loaded = load_model(str(folder), "cpu")
    except ModelLoadError as err:  # refusing is fine; running the code is not
        assert where == "config.json" and "custom model code" in str(err)
    else:
        assert type(loaded.tokenizer).__module__.startswith("transformers.")
    assert not marker.exists(), marker.read_text()
