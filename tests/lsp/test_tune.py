"""`wren tune` end to end with the real default model: a few LoRA steps on a tiny repository
write an adapter; the server serves it (and refuses broken or foreign ones); cancel writes
nothing; Restricted Mode never loads an adapter from a path."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient
from safetensors.torch import load_file, save_file

from wren.model.tune.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    MANIFEST,
    AdapterError,
    apply_adapter,
    base_digest,
    read_adapter,
)
from wren.model.tune.train import TuneCancelled, TuneProgress, TuneSettings, tune_workspace

from .conftest import init_params, inline, items_of, open_doc, server_config, status, wait_ready

pytestmark = pytest.mark.model

HANDLER = '''from .bus import wibblewump_dispatch, wibblewump_register


@wibblewump_register("{name}")
def handle_{name}(event):
    """Handle the {name} event."""
    return wibblewump_dispatch(event, "{name}", retries=3)
'''
NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
PROMPT = HANDLER.format(name="omega").split("return ")[0] + "return "

# Small and fast; a high learning rate so four steps visibly move the model.
FAST = TuneSettings(
    minutes=30,
    max_steps=4,
    learning_rate=1e-2,
    window_tokens=128,
    eval_windows=2,
    threads=1,
    eval_every_s=10_000,
)


def make_repo(root: Path) -> Path:
    for name in NAMES:
        (root / "handlers").mkdir(parents=True, exist_ok=True)
        (root / "handlers" / f"{name}.py").write_text(HANDLER.format(name=name))
    return root


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    root = make_repo(tmp_path_factory.mktemp("repo"))
    out = tmp_path_factory.mktemp("adapters") / "handlers"
    result = tune_workspace(root, FAST, output=out)
    yield out, result


def test_tuning_writes_safetensors_adapter_and_manifest(tuned: tuple[Path, Any]) -> None:
    folder, result = tuned
    assert sorted(p.name for p in folder.iterdir()) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS, MANIFEST]
    manifest = json.loads((folder / MANIFEST).read_text())
    from wren.model.loading import resolve_source

    assert manifest["base_digest"] == base_digest(resolve_source(""))
    assert len(manifest["data_digest"]) == 64
    assert manifest["files"]["train"] + manifest["files"]["heldout"] == len(NAMES)
    metrics = manifest["metrics"]
    assert metrics["steps"] == 4 and metrics["tokens_seen"] > 0
    assert {"heldout_loss_before", "heldout_loss_after"} <= set(metrics)
    improved = (
        metrics["heldout_loss_after"] < metrics["heldout_loss_before"]
        and metrics["heldout_top1_after"] >= metrics["heldout_top1_before"]
    )
    assert manifest["enabled"] == improved
    assert result.enabled == manifest["enabled"]
    assert not list(folder.parent.glob("*.partial-*"))


def _served(adapter: Path | None, lean: bool) -> tuple[Any, Any, str]:
    """(loaded, logits after the prompt, greedy text) as a backend serves `adapter`."""
    import torch

    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model
    from wren.types import CancelToken, GenerationParams

    loaded = apply_adapter(load_model("", "cpu"), adapter)
    backend = TransformersBackend(loaded, lean=lean, speculative=False)
    prompt = "<filename>omega.py\n" + PROMPT
    params = GenerationParams(max_new_tokens=12, time_budget_s=120.0)
    text = backend.generate(prompt, params, CancelToken()).text
    ids = backend.tokenize(prompt)
    with torch.inference_mode():
        if backend.lean is not None:
            logits = backend.lean.forward(ids, backend.lean.new_cache())
        else:
            logits = backend.model(torch.tensor([ids])).logits[0, -1]
    return loaded, logits.float(), text


def test_the_fast_decoder_serves_the_adapter_as_trained(tuned: tuple[Path, Any]) -> None:
    """4-bit weights + the update beside them (lean) give the trained model's output: the
    merged fp32 model's (transformers), as near as the 4-bit base is to the fp32 base."""
    from wren.model.fast_decode import LowRankLinear

    folder, _ = tuned
    base, base_lean, base_text = _served(None, lean=True)
    tuned_lean_loaded, tuned_lean, tuned_text = _served(folder, lean=True)
    _, base_fp32, _ = _served(None, lean=False)
    _, tuned_fp32, tuned_fp32_text = _served(folder, lean=False)
    assert base.adapter == "" and tuned_lean_loaded.adapter.startswith("adapter ")
    assert tuned_lean_loaded.adapter_note == ""
    # The adapter changes the model, and the 4-bit decoder shows it.
    effect = (tuned_fp32 - base_fp32).abs().max().item()
    assert effect > 1.0
    assert tuned_text != base_text, (base_text, tuned_text)
    assert tuned_text == tuned_fp32_text
    # What the 4-bit decoder adds to the trained update is its own rounding, no more.
    rounding = (base_lean - base_fp32).abs().max().item()
    assert (tuned_lean - tuned_fp32).abs().max().item() < rounding + 0.05 * effect
    # ... and it is served beside the 4-bit weights, not merged into fp32 ones.
    from wren.model.generation import TransformersBackend

    lean = TransformersBackend(tuned_lean_loaded, speculative=False).lean
    assert lean is not None and lean.weights == "q4"
    assert all(isinstance(layer.qkv, LowRankLinear) for layer in lean.layers)


def test_corrupt_and_foreign_adapters_are_refused(tuned: tuple[Path, Any], tmp_path: Path) -> None:

    from wren.model.loading import load_model, resolve_source

    folder, _ = tuned
    digest = base_digest(resolve_source(""))
    loaded = load_model("", "cpu")

    truncated = tmp_path / "truncated"
    shutil.copytree(folder, truncated)
    data = (truncated / ADAPTER_WEIGHTS).read_bytes()
    (truncated / ADAPTER_WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterError, match="damaged"):
        read_adapter(loaded.model, truncated, digest)

    foreign = tmp_path / "foreign"
    shutil.copytree(folder, foreign)
    manifest = json.loads((foreign / MANIFEST).read_text())
    manifest["base_digest"] = "0" * 64
    (foreign / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(AdapterError, match="trained for another model"):
        read_adapter(loaded.model, foreign, digest)

    no_manifest = tmp_path / "nomanifest"
    shutil.copytree(folder, no_manifest)
    (no_manifest / MANIFEST).unlink()
    with pytest.raises(AdapterError, match="not a Wren adapter"):
        read_adapter(loaded.model, no_manifest, digest)

    # Served in half precision: a value beyond it (or not finite) would turn into inf/NaN.
    for name, value in (("huge", 1e6), ("nan", float("nan"))):
        bad = tmp_path / name
        shutil.copytree(folder, bad)
        tensors = load_file(str(bad / ADAPTER_WEIGHTS))
        key = next(k for k in sorted(tensors) if k.endswith("lora_B.weight"))
        tensors[key] = tensors[key].clone()
        tensors[key][0, 0] = value
        save_file(tensors, str(bad / ADAPTER_WEIGHTS))
        with pytest.raises(AdapterError, match="beyond half precision"):
            read_adapter(loaded.model, bad, digest)

    fallback = apply_adapter(load_model("", "cpu"), foreign)  # the base model serves on
    assert fallback.adapter == "" and "another model" in fallback.adapter_note
    assert fallback.low_rank == {}


def test_cancel_leaves_no_half_written_adapter(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    out = tmp_path / "adapters" / "repo"
    out.mkdir(parents=True)
    (out / MANIFEST).write_text('{"format": 1, "previous": true}')

    def cancel_in(phase: str) -> Any:
        seen: list[str] = []

        def progress(p: TuneProgress) -> None:
            seen.append(p.phase)

        return progress, (lambda: phase in seen)

    progress, cancel = cancel_in("training")
    with pytest.raises(TuneCancelled):
        tune_workspace(root, FAST, progress, cancel, output=out)
    progress, cancel = cancel_in("writing")  # at the last moment, while writing
    with pytest.raises(TuneCancelled):
        tune_workspace(root, FAST, progress, cancel, output=out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["repo"]  # no partial folder
    assert json.loads((out / MANIFEST).read_text()) == {"format": 1, "previous": True}


@asynccontextmanager
async def started(settings: dict[str, Any], trusted: bool = True) -> AsyncIterator[LanguageClient]:
    client = await server_config().start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(init_params(settings, trusted=trusted))
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


async def completion(client: LanguageClient) -> tuple[dict[str, Any], str]:
    st = await wait_ready(client)
    assert st["state"] == "ready", st
    uri = open_doc(client, PROMPT, name="omega.py")
    lines = PROMPT.split("\n")
    items = items_of(await inline(client, uri, len(lines) - 1, len(lines[-1])))
    text = items[0].insert_text if items else ""
    return await status(client), str(text)


SETTINGS = {"completion": {"timeBudgetMs": 20000}}


async def test_server_serves_the_adapter_and_refuses_a_foreign_one(
    tuned: tuple[Path, Any], tmp_path: Path
) -> None:
    folder, _ = tuned
    async with started({**SETTINGS, "model": {"adapter": "off"}}) as client:
        base_status, base_text = await completion(client)
    async with started({**SETTINGS, "model": {"adapter": str(folder)}}) as client:
        tuned_status, tuned_text = await completion(client)
    assert base_status["adapter"] == ""
    assert tuned_status["adapter"].startswith("adapter ")
    assert tuned_text != base_text, (base_text, tuned_text)

    foreign = tmp_path / "foreign"
    shutil.copytree(folder, foreign)
    manifest = json.loads((foreign / MANIFEST).read_text())
    manifest["base_digest"] = "f" * 64
    (foreign / MANIFEST).write_text(json.dumps(manifest))
    async with started({**SETTINGS, "model": {"adapter": str(foreign)}}) as client:
        st, text = await completion(client)
        messages = [m.message for m in client.messages]
    assert st["adapter"] == "" and text == base_text  # the base model serves
    assert any("trained for another model" in m for m in messages), messages


async def test_restricted_mode_never_loads_an_adapter_path(tuned: tuple[Path, Any]) -> None:
    folder, _ = tuned
    async with started({**SETTINGS, "model": {"adapter": str(folder)}}, trusted=False) as client:
        st, _text = await completion(client)
        messages = [m.message for m in client.messages]
    assert st["adapter"] == ""
    assert any("Restricted Mode" in m and "adapter" in m for m in messages), messages
