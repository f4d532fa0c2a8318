"""A real OpenAI-compatible server on localhost (the default model), and Wren pointed at it.

`model_server` is parametrized over both servers tests/remote/servers.py starts: the stdlib
one written here and llama-cpp-python's (third-party, from `.peer-venv`). A test that needs
only one of them says so with `@pytest.mark.parametrize("model_server", [...], indirect=True)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import init_params, server_config, wait_ready

from .servers import KINDS, ModelServer, start_server

HERE = Path(__file__).parent
WORKSPACE = HERE.parent / "lsp" / "workspace"


@pytest.fixture(scope="session", params=KINDS)
def model_server(request: pytest.FixtureRequest) -> Iterator[ModelServer]:
    server = start_server(request.param)
    yield server
    server.kill()


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
