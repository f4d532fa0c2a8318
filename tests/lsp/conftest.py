"""pytest-lsp fixtures: the real server over stdio, the real default model, no network."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

HERE = Path(__file__).parent
NETBLOCK_LOG = Path(tempfile.gettempdir()) / f"wren-netblock-{os.getpid()}.log"


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE / "netblock"), env.get("PYTHONPATH", "")])
    env["WREN_NETBLOCK_LOG"] = str(NETBLOCK_LOG)
    env.update(extra)
    return env


def server_config(**extra_env: str) -> ClientServerConfig:
    return ClientServerConfig(
        server_command=[sys.executable, "-m", "wren", "serve"], server_env=server_env(**extra_env)
    )


def init_params(
    settings: dict[str, Any] | None = None,
    root: Path | None = None,
    encodings: list[str] | None = None,
    trusted: bool = True,
) -> types.InitializeParams:
    caps = client_capabilities("visual-studio-code")
    if encodings is not None:
        caps.general = types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind(e) for e in encodings]
        )
    return types.InitializeParams(
        capabilities=caps,
        root_uri=root.as_uri() if root else None,
        initialization_options={"settings": settings or {}, "workspaceTrusted": trusted},
    )


async def status(client: LanguageClient) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="wren.server.status", arguments=[])
    )
    return dict(result)


async def wait_ready(client: LanguageClient, timeout: float = 600) -> dict[str, Any]:
    """Poll until the model is ready (first conversion of the GGUF can take ~30 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        st = await status(client)
        if st["state"] in ("ready", "error"):
            return st
        if loop.time() > deadline:
            raise TimeoutError(f"model not ready: {st}")
        await asyncio.sleep(0.2)


@pytest_lsp.fixture(scope="session", config=server_config())
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    """One real server with the default model for the whole session."""
    # Correctness, not speed: a generous time budget so a loaded CI machine can't cut a
    # suggestion short (latency is measured by scripts/bench_latency.py instead).
    settings = {"completion": {"timeBudgetMs": 20000}}
    await lsp_client.initialize_session(init_params(settings, root=HERE / "workspace"))
    st = await wait_ready(lsp_client)
    assert st["state"] == "ready", st
    yield
    await lsp_client.shutdown_session()


_EXPLAIN_CHUNKS: dict[str, list[dict[str, Any]]] = {}


@pytest.fixture(scope="session")
def explain_chunks(client: LanguageClient) -> dict[str, list[dict[str, Any]]]:
    """`wren/explainChunk` notifications by id, for every module of the session (a client takes
    one handler per notification, so there is exactly one collector)."""

    def on_chunk(ls: LanguageClient, params: Any) -> None:
        chunk = plain(params)
        _EXPLAIN_CHUNKS.setdefault(chunk["id"], []).append(chunk)

    with contextlib.suppress(Exception):  # registered once per client
        client.feature("wren/explainChunk")(on_chunk)
    return _EXPLAIN_CHUNKS


@pytest.fixture(scope="session")
def netblock_log() -> Path:
    return NETBLOCK_LOG


_counter = 0


def open_doc(
    client: LanguageClient,
    text: str,
    language: str = "python",
    name: str | None = None,
    uri: str | None = None,
) -> str:
    """didOpen a document (at `uri`, else a fresh file URI in the workspace); returns the URI."""
    global _counter
    _counter += 1
    uri = uri or (HERE / "workspace" / (name or f"doc_{_counter}.py")).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )
    return uri


def items_of(result: object) -> list[types.InlineCompletionItem]:
    """The items of an inline completion answer (a list, an InlineCompletionList or None)."""
    if result is None:
        return []
    if isinstance(result, types.InlineCompletionList):
        return list(result.items)
    return list(result)  # type: ignore[call-overload]


async def inline(
    client: LanguageClient, uri: str, line: int, character: int
) -> types.InlineCompletionList | list[types.InlineCompletionItem] | None:
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )


def inline_request(
    client: LanguageClient, uri: str, line: int, character: int
) -> tuple[str, asyncio.Future[Any]]:
    """Send an inline completion request with a known id, so a test can cancel it on the wire.

    (Cancelling the client-side future instead makes pygls's client fail when the server's
    RequestCancelled answer arrives, so tests send `$/cancelRequest` themselves.)
    """
    msg_id = f"req-{uuid.uuid4().hex[:12]}"
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )
    fut = client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    return msg_id, asyncio.wrap_future(fut)


def cancel_request(client: LanguageClient, msg_id: str) -> None:
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))


REQUEST_CANCELLED = -32800


async def outcome(fut: asyncio.Future[Any]) -> tuple[str, Any]:
    """("result", value) or ("error", code) for a request future."""
    try:
        return "result", await fut
    except JsonRpcException as err:
        return "error", err.code


async def last_details(client: LanguageClient, uri: str) -> dict[str, Any]:
    result = await client.protocol.send_request_async(
        "wren/lastCompletion", {"textDocument": {"uri": uri}}
    )
    return plain(result)


def plain(obj: Any) -> Any:
    """pygls hands custom results back as namespace objects; make them dicts."""
    if isinstance(obj, list):
        return [plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return {k: plain(v) for k, v in vars(obj).items()}
    return obj
