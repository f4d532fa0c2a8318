"""RemoteBackend against a fault-injecting server: every failure is a clear error, never a hang."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from wren.config import ModelSettings
from wren.errors import GenerationCancelled, GenerationError, ModelLoadError
from wren.remote import RemoteBackend, parse_endpoint
from wren.remote import http as remote_http
from wren.remote.backend import drop_repeated_opening
from wren.types import CancelToken, GenerationParams

from .fault_server import MODEL, FaultServer

PARAMS = GenerationParams(max_new_tokens=32, time_budget_s=30.0)


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultServer]:
    server = FaultServer(slow_s=3.0)
    yield server
    server.close()


def backend(server: FaultServer, fault: str, **settings: object) -> RemoteBackend:
    return RemoteBackend.connect(ModelSettings(endpoint=server.url(fault), **settings))  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_healthy_stream_gives_the_text(faults: FaultServer) -> None:
    b = backend(faults, "ok")
    seen: list[str] = []
    result = b.generate("def add(a, b):\n", PARAMS, CancelToken(), on_text=seen.append)
    assert result.text == "    return a + b\n"
    assert result.stop_reason == "eos"
    assert seen[-1] == result.text and len(seen) == 5  # streamed piece by piece
    assert b.tokens.mode == "chars"  # no tokenizer anywhere: estimated
    assert b.tokenize("abcdefgh") == [0, 0]


def test_stop_at_newline_closes_the_stream_early(faults: FaultServer) -> None:
    b = backend(faults, "ok")
    params = GenerationParams(max_new_tokens=32, stop_at_newline=True)
    result = b.generate("x = ", params, CancelToken())
    assert result.stop_reason == "newline"


def test_server_down_is_a_clear_error_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    ep = parse_endpoint(url)
    sleeps: list[float] = []
    with pytest.raises(remote_http.ServerUnreachable, match="cannot reach the inference server"):
        remote_http.open_request(ep, "GET", "/v1/models", None, "", 2.0, sleep=sleeps.append)
    assert sleeps == list(remote_http.RETRY_DELAYS_S)  # connection errors are retried
    monkeypatch.setattr(remote_http, "RETRY_DELAYS_S", (0.01,))
    with pytest.raises(ModelLoadError, match="is it running"):
        RemoteBackend.connect(ModelSettings(endpoint=url))


def test_http_500_is_reported_with_the_servers_message_and_not_retried(
    faults: FaultServer,
) -> None:
    b = backend(faults, "error500")
    before = faults.requests.get("error500", 0)
    with pytest.raises(GenerationError, match=r"HTTP 500: CUDA out of memory"):
        b.generate("x", PARAMS, CancelToken())
    assert faults.requests["error500"] == before + 1
    # The same backend keeps working once the server does (here: another endpoint).
    assert backend(faults, "ok").generate("x", PARAMS, CancelToken()).text


def test_slow_first_byte_ends_at_the_time_budget(faults: FaultServer) -> None:
    b = backend(faults, "ok")
    b.ep = parse_endpoint(faults.url("slow"))  # /v1/models answered; completions are slow
    params = GenerationParams(max_new_tokens=8, time_budget_s=0.3)
    t0 = time.perf_counter()
    with pytest.raises(GenerationError, match="sent nothing within the time budget"):
        b.generate("x", params, CancelToken())
    assert time.perf_counter() - t0 < faults.slow_s  # it did not wait for the server


def test_first_byte_timeout_for_long_budgets(faults: FaultServer) -> None:
    b = backend(faults, "ok")
    b.ep = parse_endpoint(faults.url("slow"))
    b.first_byte_timeout_s = 0.3
    with pytest.raises(GenerationError, match=r"did not answer within 0.3 s"):
        b.generate("x", PARAMS, CancelToken())


def test_a_stream_that_stalls_is_an_error(faults: FaultServer) -> None:
    b = backend(faults, "stall")
    b.first_byte_timeout_s = 0.3
    with pytest.raises(GenerationError, match=r"stopped sending .* \(nothing for 0.3 s"):
        b.generate("x", PARAMS, CancelToken())


def test_malformed_stream(faults: FaultServer) -> None:
    b = backend(faults, "malformed")
    with pytest.raises(GenerationError, match="malformed stream"):
        b.generate("x", PARAMS, CancelToken())


@pytest.mark.parametrize("fault", ["kill", "reset"])
def test_server_gone_mid_stream(faults: FaultServer, fault: str) -> None:
    b = backend(faults, fault)
    with pytest.raises(GenerationError, match=r"before the answer was complete|broke"):
        b.generate("x", PARAMS, CancelToken())


def test_done_without_a_finish_reason_is_an_interrupted_answer(faults: FaultServer) -> None:
    # llama-cpp-python's server ends a running answer this way when another request arrives:
    # the partial text must not pass for a whole answer.
    b = backend(faults, "interrupt")
    with pytest.raises(GenerationError, match=r"ended the answer early .* --interrupt_requests"):
        b.generate("x", PARAMS, CancelToken())


def test_tokens_through_llama_cpp_pythons_extras_route(faults: FaultServer) -> None:
    b = backend(faults, "extras")
    assert (b.tokens.mode, b.tokens.route) == ("server", "/extras/tokenize")
    assert b.tokenize("abc") == [97, 98, 99]
    # No usage in the stream: the prompt's count comes from the memo (no extra request) ...
    assert b.generate("abc", PARAMS, CancelToken()).prompt_tokens == 3
    # ... and is left at 0 (unknown) rather than paid for with a request.
    assert b.generate("abcd", PARAMS, CancelToken()).prompt_tokens == 0


def test_a_repeated_chat_opening_is_dropped(faults: FaultServer) -> None:
    # Wren opens the answer with a fence and asks the server to continue it; a server that
    # ignores continue_final_message starts a new answer that opens the fence again.
    b = backend(faults, "newturn")
    prompt = b.apply_chat_template([{"role": "user", "content": "x = ?"}]) + "```python\n"
    seen: list[str] = []
    result = b.generate(prompt, PARAMS, CancelToken(), on_text=seen.append)
    assert result.text == "x = 1\n"
    assert seen and all(not t.startswith("`") for t in seen)


@pytest.mark.parametrize(
    ("text", "opening", "shown"),
    [
        ("```python\nx = 1", "```python\n", "x = 1"),  # the repeat is dropped
        ("\n```python\nx = 1", "```python\n", "x = 1"),
        ("``", "```python\n", ""),  # may still become the repeat: nothing yet
        ("x = 1", "```python\n", "x = 1"),  # a real continuation is kept
        ("```python\nx = 1", "", "```python\nx = 1"),  # no opening: untouched
    ],
)
def test_drop_repeated_opening(text: str, opening: str, shown: str) -> None:
    assert drop_repeated_opening(text, opening) == shown


def test_wrong_model_name_is_refused_at_start(faults: FaultServer) -> None:
    with pytest.raises(ModelLoadError, match=r"serves \['other-model-7b'\], not 'fake-coder-1b'"):
        backend(faults, "wrong", servedModel=MODEL)


def test_a_model_swapped_later_is_named(faults: FaultServer) -> None:
    b = backend(faults, "ok", servedModel=MODEL)
    b.name = "gone-model"  # as if the server were restarted with another model
    b.ep = parse_endpoint(faults.url("error404"))
    with pytest.raises(GenerationError, match=r"now serves \['fake-coder-1b'\], not 'gone-model'"):
        b.generate("x", PARAMS, CancelToken())


def test_cancel_closes_the_stream_and_the_server_sees_it(faults: FaultServer) -> None:
    b = backend(faults, "hang")
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel, args=("superseded",)).start()
    t0 = time.perf_counter()
    with pytest.raises(GenerationCancelled, match="superseded"):
        b.generate("x", GenerationParams(max_new_tokens=8, time_budget_s=60), cancel)
    assert time.perf_counter() - t0 < 10  # hang guard only: it returned, the server never ends
    deadline = time.monotonic() + 10
    while faults.disconnects.get("hang", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert faults.disconnects.get("hang", 0) == 1


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8000", "http://gpu-box.internal", "ftp://localhost", "localhost:8000"],
)
def test_insecure_or_odd_endpoints_are_refused(url: str) -> None:
    with pytest.raises(ModelLoadError, match=r"refuses|must be an http"):
        parse_endpoint(url)


@pytest.mark.parametrize(
    "url", ["http://localhost:8000", "http://127.0.0.1:1/v1", "http://[::1]:8000", "https://x.io"]
)
def test_local_and_https_endpoints_are_accepted(url: str) -> None:
    assert parse_endpoint(url).host


def test_opt_in_allows_plain_http_elsewhere() -> None:
    assert parse_endpoint("http://10.0.0.5:8000/v1", allow_insecure=True).base_path == ""


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(ModelLoadError, match="apiKeyEnv"):
        parse_endpoint("https://user:secret@example.com")


def test_api_key_comes_from_the_environment(
    faults: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TEAM_KEY", " sk-123 ")
    b = backend(faults, "ok", apiKeyEnv="MY_TEAM_KEY")
    assert b._key == "sk-123"
    assert remote_http._headers(b._key, b"{}")["Authorization"] == "Bearer sk-123"
