"""A real OpenAI-compatible server on localhost (the default model), and Wren pointed at it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import init_params, server_config, wait_ready

HERE = Path(__file__).parent
WORKSPACE = HERE.parent / "lsp" / "workspace"


class ModelServer:
    def __init__(self, proc: subprocess.Popen[str], port: int, name: str) -> None:
        self.proc, self.port, self.name = proc, port, name
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as resp:
            return dict(json.loads(resp.read()))


def start_model_server() -> ModelServer:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "openai_server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    port, name = 0, ""
    for line in proc.stdout:  # the model loads first (seconds); then PORT and MODEL lines
        if line.startswith("PORT "):
            port = int(line.split()[1])
        elif line.startswith("MODEL "):
            name = line.split(maxsplit=1)[1].strip()
            break
    if not port:
        proc.kill()
        raise RuntimeError("the test model server did not start")
    return ModelServer(proc, port, name)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    server = start_model_server()
    yield server
    server.proc.kill()
    server.proc.wait(timeout=30)


def remote_settings(url: str, **model: Any) -> dict[str, Any]:
    return {"model": {"endpoint": url, **model}, "completion": {"timeBudgetMs": 20000}}


@pytest_lsp.fixture(scope="session", config=server_config())
async def remote(lsp_client: LanguageClient, model_server: ModelServer) -> AsyncIterator[None]:
    """Wren (`python -m wren serve`) with wren.model.endpoint set to the model server."""
    await lsp_client.initialize_session(
        init_params(remote_settings(model_server.url), root=WORKSPACE)
    )
    st = await wait_ready(lsp_client, timeout=120)
    assert st["state"] == "ready", st
    yield
    await lsp_client.shutdown_session()
