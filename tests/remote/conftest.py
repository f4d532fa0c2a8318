"""A real OpenAI-compatible server on localhost (the default model), and Wren pointed at it.

`remote` (Wren over stdio with wren.model.endpoint set) is parametrized over both servers
tests/remote/servers.py starts: the stdlib one written here and llama-cpp-python's
(third-party, from `.peer-venv`); `model_server` is the server of the test's `remote`. A test
that needs one of them says so: `@pytest.mark.parametrize("remote", ["llama-cpp"],
indirect=True)`. Each server starts once per session, when a test first needs it.
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


class ServerPool:
    def __init__(self) -> None:
        self.servers: dict[str, ModelServer] = {}

    def get(self, kind: str) -> ModelServer:
        if kind not in self.servers:
            self.servers[kind] = start_server(kind)
        return self.servers[kind]


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    for server in pool.servers.values():
        server.kill()


@pytest.fixture(scope="session")
def llama_cpp_server(server_pool: ServerPool) -> ModelServer:
    return server_pool.get("llama-cpp")


@pytest.fixture
def model_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> ModelServer:
    """The server the test's `remote` is pointed at."""
    return server_pool.get(request.node.callspec.params["remote"])


def remote_settings(url: str, **model: Any) -> dict[str, Any]:
    return {"model": {"endpoint": url, **model}, "completion": {"timeBudgetMs": 20000}}


@pytest_lsp.fixture(scope="session", params=KINDS, config=server_config())
async def remote(
    lsp_client: LanguageClient, request: pytest.FixtureRequest, server_pool: ServerPool
) -> AsyncIterator[None]:
    """Wren (`python -m wren serve`) with wren.model.endpoint set to the model server."""
    server = server_pool.get(request.param)
    await lsp_client.initialize_session(init_params(remote_settings(server.url), root=WORKSPACE))
    st = await wait_ready(lsp_client, timeout=120)
    assert st["state"] == "ready", st
    yield
    await lsp_client.shutdown_session()
