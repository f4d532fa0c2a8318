"""Broken model settings and the not-yet-ready window, each on its own server process."""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient

from .conftest import init_params, inline, last_details, open_doc, server_config, status, wait_ready
from .test_completion import items_of


@asynccontextmanager
async def started(settings: dict[str, Any], **env: str) -> AsyncIterator[LanguageClient]:
    client = await server_config(**env).start()
    assert isinstance(client, LanguageClient)
    await client.initialize_session(init_params(settings))
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


async def wait_messages(client: LanguageClient) -> list[str]:
    """The window/showMessage texts the server sent (pytest-lsp's client records them)."""
    for _ in range(50):
        if client.messages:
            break
        await asyncio.sleep(0.1)
    return [m.message for m in client.messages]


async def assert_still_serving(client: LanguageClient) -> None:
    uri = open_doc(client, "def f():\n    return 1\n")
    assert items_of(await inline(client, uri, 1, 12)) == []
    details = await last_details(client, uri)
    assert details["decision"] == "not-ready"


async def test_missing_model_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.gguf"
    async with started({"model": {"path": str(missing)}}) as client:
        st = await wait_ready(client)
        assert st["state"] == "error"
        assert "does not exist" in st["message"] and str(missing) in st["message"]
        assert any("does not exist" in m for m in await wait_messages(client))
        await assert_still_serving(client)


class _Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


@pytest.mark.parametrize("layout", ["file", "folder"])
async def test_pickle_checkpoint_is_refused(tmp_path: Path, layout: str) -> None:
    if layout == "file":
        target = tmp_path / "model.bin"
        target.write_bytes(pickle.dumps(_Payload()))
        setting = str(target)
    else:
        (tmp_path / "config.json").write_text('{"model_type": "llama"}')
        (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload()))
        setting = str(tmp_path)
    async with started({"model": {"path": setting}}) as client:
        st = await wait_ready(client)
        assert st["state"] == "error"
        assert "pickle" in st["message"] and ".bin" in st["message"]
        assert "safetensors" in st["message"]
        await assert_still_serving(client)
    assert not list(tmp_path.rglob("PWNED_BY_PICKLE")) and not Path("PWNED_BY_PICKLE").exists()


async def test_modeling_file_in_folder_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    (tmp_path / "config.json").write_text(
        '{"model_type": "llama", "auto_map": {"AutoModelForCausalLM": "modeling_evil.Evil"}}'
    )
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")
    (tmp_path / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    async with started({"model": {"path": str(tmp_path)}}) as client:
        st = await wait_ready(client)
        assert st["state"] == "error"
        assert "custom model code" in st["message"]
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"not a gguf at all", b"GGUF" + struct.pack("<IQQ", 3, 2**60, 2**60), b"GGUF\x03\x00"],
    ids=["garbage", "absurd-counts", "truncated"],
)
async def test_corrupt_gguf(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(content)
    async with started(
        {"model": {"path": str(bad)}}, WREN_CACHE_DIR=str(tmp_path / "cache")
    ) as client:
        st = await wait_ready(client)
        assert st["state"] == "error"
        assert "broken.gguf" in st["message"]
        assert any(w in st["message"] for w in ("not a valid GGUF", "corrupt", "truncated"))
        await assert_still_serving(client)


@pytest.mark.model
async def test_requests_before_ready_return_at_once() -> None:
    async with started({}) as client:
        uri = open_doc(client, "def f():\n    return 1\n")
        result = items_of(await inline(client, uri, 1, 12))
        details = await last_details(client, uri)
        st = await status(client)
        # Answered while the model was still loading, with an explanation.
        assert result == [] and details["decision"] == "not-ready", (details, st)
        assert "not ready" in details["reason"]
        assert st["state"] == "loading"
        assert (await wait_ready(client))["state"] == "ready"
