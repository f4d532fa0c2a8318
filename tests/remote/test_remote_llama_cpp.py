"""Faults against the real third-party server: llama-cpp-python 0.3.36's, on the default GGUF.

The server killed in the middle of an answer, a served-model name it does not serve, its
`/extras/tokenize` route, and its habit of cutting a running answer short when another request
arrives (unless started with `--interrupt_requests False`, as tests/remote/servers.py does).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any

import pytest
from pytest_lsp import LanguageClient

from tests.lsp.conftest import open_doc
from tests.lsp.test_actions import FUNCTION, _rng, command
from wren.config import ModelSettings
from wren.errors import GenerationError
from wren.model.loading import converted_dir, resolve_source
from wren.remote import RemoteBackend, parse_endpoint
from wren.remote.tokens import Tokens
from wren.types import CancelToken, GenerationParams

from .conftest import remote_settings
from .servers import ModelServer, start_server
from .test_remote_lsp import _reconfigure

pytestmark = pytest.mark.model
LLAMA_CPP = pytest.mark.parametrize("remote", ["llama-cpp"], indirect=True)

LONG = GenerationParams(max_new_tokens=200, time_budget_s=120.0)


def post(url: str, path: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(
        url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@LLAMA_CPP
async def test_killed_mid_explain_is_a_clear_error_and_wren_serves_after_a_restart(
    remote: LanguageClient, model_server: ModelServer
) -> None:
    server = start_server("llama-cpp")
    try:
        st = await _reconfigure(remote, remote_settings(server.url))
        assert st["state"] == "ready", st
        uri = open_doc(remote, FUNCTION, name="remote_killed.py")
        explain = {"uri": uri, "range": _rng(6, 4, 6, 4)}
        task = asyncio.ensure_future(command(remote, "wren.server.explain", explain))
        deadline = time.monotonic() + 120  # hang guard
        while server.stats()["requests"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # it is streaming the explanation
        assert not task.done()
        server.kill()
        failed = await asyncio.wait_for(task, 120)
        assert failed["ok"] is False, failed
        assert server.url in failed["reason"]
        assert (
            "before the answer was complete" in failed["reason"] or "broke" in failed["reason"]
        ), failed

        server.restart()  # same port: Wren's endpoint setting still points at it
        explained = await command(remote, "wren.server.explain", explain)
        assert explained["ok"] is True and len(explained["markdown"]) > 80, explained
    finally:
        server.kill()
        st = await _reconfigure(remote, remote_settings(model_server.url))
    assert st["state"] == "ready", st


@LLAMA_CPP
async def test_a_model_the_server_does_not_serve_is_refused(
    remote: LanguageClient, model_server: ModelServer
) -> None:
    # llama-cpp-python answers a completion for any model name with the one it serves, so
    # only Wren's check against /v1/models catches the mistake.
    answer = post(
        model_server.url,
        "/v1/completions",
        {"model": "codellama-7b", "prompt": "def f():", "max_tokens": 2},
    )
    assert answer["choices"][0]["finish_reason"] in ("length", "stop")
    try:
        st = await _reconfigure(
            remote, remote_settings(model_server.url, servedModel="codellama-7b")
        )
        assert st["state"] == "error"
        assert f"serves ['{model_server.name}'], not 'codellama-7b'" in st["message"], st
    finally:
        st = await _reconfigure(remote, remote_settings(model_server.url))
    assert st["state"] == "ready", st


def test_tokens_through_extras_tokenize_match_the_local_tokenizer(
    llama_cpp_server: ModelServer,
) -> None:
    model_server = llama_cpp_server
    ep = parse_endpoint(model_server.url)
    served = Tokens(ep, "", model_server.name)
    assert (served.mode, served.route) == ("server", "/extras/tokenize")
    local = Tokens(ep, "", model_server.name, str(converted_dir(resolve_source(""))))
    assert local.mode == "local"
    text = 'def area(r):\n    """Circle."""\n    return 3.14159 * r ** 2\n'
    assert served.tokenize(text) == local.tokenize(text)
    assert len(served.tokenize(text)) > 10


def _generate_while_another_request_arrives(server: ModelServer) -> tuple[Any, int]:
    """Start a long answer, send a tokenize request once it streams; the answer or error."""
    backend = RemoteBackend.connect(ModelSettings(endpoint=server.url))
    streaming = threading.Event()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(
                backend.generate(
                    "Once upon a time", LONG, CancelToken(), on_text=lambda _t: streaming.set()
                )
            )
        except GenerationError as err:
            out.append(err)

    worker = threading.Thread(target=run)
    worker.start()
    assert streaming.wait(60), server.tail()
    ids = post(server.url, "/extras/tokenize", {"input": "def f():"})["tokens"]
    worker.join(120)
    assert not worker.is_alive()
    return out[0], len(ids)


def test_an_answer_cut_short_by_another_request_is_an_error() -> None:
    server = start_server("llama-cpp", extra=("--interrupt_requests", "True"))  # its default
    try:
        result, n = _generate_while_another_request_arrives(server)
    finally:
        server.kill()
    assert n > 0
    assert isinstance(result, GenerationError), result
    assert "ended the answer early" in str(result) and "--interrupt_requests" in str(result)


def test_the_shared_configuration_queues_requests(llama_cpp_server: ModelServer) -> None:
    result, n = _generate_while_another_request_arrives(llama_cpp_server)
    assert n > 0
    assert not isinstance(result, Exception), result
    assert result.stop_reason in ("max_tokens", "eos") and len(result.text) > 100
