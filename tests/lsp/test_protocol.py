"""Protocol guarantees, checked at the transport level.

- Every request gets exactly one response; cancelled ones get RequestCancelled (-32800).
- stdout carries only LSP frames, even when libraries print from Python, C and threads.
- The server's text stays identical to the client's after any incremental edits (UTF-16 and
  UTF-8), and completions land at the cursor.
- shutdown + exit during a generation exits 0 within 2 s; exit without shutdown exits 1;
  closing stdin ends the server within 5 s.
- Out of memory and a model that never stops are bounded per request.

Most of it runs against one server started with `-v` and the fault-injection sitecustomize
(tests/lsp/faults): noise on stdout, OOM and no-stop faults keyed by document URI.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import init_params, items_of, open_doc, server_config, wait_ready
from .rawclient import REQUEST_CANCELLED, RawServer, file_uri

pytestmark = pytest.mark.model

SETTINGS: dict[str, Any] = {"completion": {"timeBudgetMs": 20000}}
NOISE = {"WREN_FAULT_NOISE": "1", "WREN_FAULT_INJECT": "1"}
NOISE_MARKERS = (
    "WREN-NOISE-PRINT",
    "WREN-NOISE-SYS-STDOUT",
    "WREN-NOISE-FD1",
    "WREN-NOISE-PRINTF",
    "WREN-NOISE-THREAD",
    "WREN-NOISE-PRINT after importing tokenizers",  # the serving path's tokenizer library
)

STORM_TEXTS = [
    "import os\n\n\ndef list_files(root):\n    result = []\n    for name in os.listdir(root):\n"
    "        ",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"
    "        ",
    "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n    return ",
    "import json\n\n\ndef load(path):\n    with open(path) as fh:\n        ",
]

# A code-shaped document whose first completion is known to be non-empty (test_completion).
GOOD_TEXT = '''import os


def list_python_files(root):
    """Return the paths of the .py files directly inside root."""
    result = []
    for name in os.listdir(root):
        '''


def end_position(text: str) -> tuple[int, int]:
    """The LSP position (UTF-16) of the end of `text` (line breaks: \\n only here)."""
    line = text.count("\n")
    tail = text[text.rfind("\n") + 1 :]
    return line, len(tail.encode("utf-16-le")) // 2


async def set_settings(server: RawServer, completion: dict[str, Any]) -> None:
    server.notify(
        "workspace/didChangeConfiguration", {"settings": {"wren": {"completion": completion}}}
    )
    await server.status()  # a round trip: the notification has been handled


@pytest.fixture(scope="module")
def forward_stats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults") / "forward.json"


@pytest_asyncio.fixture(scope="module")
async def raw(forward_stats: Path) -> AsyncIterator[RawServer]:
    """One real server with verbose logs, stdout noise and fault injection, seen raw."""
    server = await RawServer.start("-v", env={**NOISE, "WREN_FAULT_STATS": str(forward_stats)})
    try:
        await server.initialize(SETTINGS)
        st_ = await server.wait_ready()
        assert st_["state"] == "ready", st_
        yield server
    finally:
        await server.kill()


# -- exactly one response per request ---------------------------------------------------------


async def test_every_request_gets_exactly_one_response(raw: RawServer) -> None:
    """500 completion requests over 4 documents, with edits and random $/cancelRequest."""
    rng = random.Random(20240611)
    docs = []
    for k, text in enumerate(STORM_TEXTS):
        uri = file_uri(f"storm_{k}.py")
        raw.open(uri, text)
        docs.append({"uri": uri, "text": text, "version": 1})
    uri_of: dict[str, str] = {}
    order: list[str] = []
    cancelled: set[str] = set()
    futures = []
    for i in range(500):
        doc = rng.choice(docs)
        if rng.random() < 0.3:  # the user typed a character
            line, col = end_position(doc["text"])
            pos = {"line": line, "character": col}
            ch = rng.choice("abcxyz_ (")
            doc["text"] += ch
            doc["version"] += 1
            raw.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": doc["uri"], "version": doc["version"]},
                    "contentChanges": [{"range": {"start": pos, "end": pos}, "text": ch}],
                },
            )
        msg_id = f"storm-{i}"
        _, fut = raw.inline_request(doc["uri"], *end_position(doc["text"]), msg_id=msg_id)
        futures.append(fut)
        uri_of[msg_id] = doc["uri"]
        order.append(msg_id)
        roll = rng.random()
        if roll < 0.35:
            raw.cancel(msg_id)  # right away
            cancelled.add(msg_id)
        elif roll < 0.6:
            victim = rng.choice(order)  # an earlier one, possibly answered already
            raw.cancel(victim)
            cancelled.add(victim)
        if i % 10 == 9:
            await raw.drain()
            await asyncio.sleep(rng.uniform(0, 0.05))
    raw.cancel("never-sent")  # a cancel for an unknown id is ignored
    await asyncio.wait_for(asyncio.gather(*futures), timeout=900)
    await raw.status()  # anything still in flight (a late duplicate) arrives before this answer
    await asyncio.sleep(0.5)

    assert raw.pending_ids() == [], "requests never answered"
    assert raw.answered_twice() == {}, "requests answered more than once"
    results, errors = 0, 0
    for msg_id in order:
        (response,) = raw.responses[msg_id]
        assert ("result" in response) != ("error" in response), response
        if "error" in response:
            errors += 1
            assert response["error"]["code"] == REQUEST_CANCELLED, response
            if msg_id not in cancelled:
                # Not cancelled by us: superseded by a newer request for the same document.
                later = order[order.index(msg_id) + 1 :]
                assert any(uri_of[j] == uri_of[msg_id] for j in later), msg_id
        else:
            results += 1
    assert results > 0 and errors > 0, (results, errors)
    for doc in docs:
        raw.notify("textDocument/didClose", {"textDocument": {"uri": doc["uri"]}})
    assert (await raw.status())["state"] == "ready"


async def test_malformed_requests_still_get_one_response(raw: RawServer) -> None:
    """Unknown methods and commands, params that do not deserialize, junk arguments."""
    uri = file_uri("x.py")
    cases: dict[str, tuple[str, Any, int | None]] = {  # method, params, expected error code
        "unknown-method": ("wren/noSuchMethod", {}, -32601),
        "unknown-command": ("workspace/executeCommand", {"command": "wren.noSuch"}, -32602),
        "missing-position": (
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": uri}},
            -32602,
        ),
        "no-params": ("textDocument/inlineCompletion", None, -32602),
        "wrong-types": (
            "textDocument/inlineCompletion",
            {"textDocument": {"uri": 5}, "position": {"line": "a"}, "context": {}},
            -32602,
        ),
        "codeAction-junk": ("textDocument/codeAction", {"textDocument": {"uri": uri}}, -32602),
        "lastCompletion-junk": ("wren/lastCompletion", [1, 2], None),
        "documentText-junk": ("wren/documentText", "x", None),
        "explain-junk": (
            "workspace/executeCommand",
            {"command": "wren.server.explain", "arguments": [5]},
            None,
        ),
        "fix-junk": (
            "workspace/executeCommand",
            {"command": "wren.server.fix", "arguments": [{"uri": 3, "range": "x"}]},
            None,
        ),
    }
    futures = {name: raw.request(method, params)[1] for name, (method, params, _) in cases.items()}
    for name, fut in futures.items():
        response = await asyncio.wait_for(fut, 120)
        code = cases[name][2]
        if code is None:
            assert "result" in response, (name, response)
        else:
            assert response.get("error", {}).get("code") == code, (name, response)
    await raw.status()
    assert raw.answered_twice() == {}
    assert (await raw.status())["state"] == "ready"


# -- bounded failures -------------------------------------------------------------------------


async def test_out_of_memory_fails_that_request_and_the_next_succeeds(raw: RawServer) -> None:
    uri = file_uri("wren-fault-oom.py")
    raw.open(uri, "def area(width, height):\n    ")
    before = len(raw.notifications)
    result = await raw.call(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": uri},
            "position": {"line": 1, "character": 4},
            "context": {"triggerKind": 2},
        },
    )
    assert result == {"items": []}
    details = await raw.last_completion(uri)
    assert details is not None
    assert details["decision"] == "error"
    assert "ran out of memory" in details["reason"], details
    messages = [
        n["params"]["message"]
        for n in raw.notifications[before:]
        if n["method"] == "window/showMessage"
    ]
    assert any("ran out of memory" in m for m in messages), messages
    raw.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    good = file_uri("after_oom.py")
    raw.open(good, GOOD_TEXT)
    await raw.call(
        "textDocument/inlineCompletion",
        {
            "textDocument": {"uri": good},
            "position": {"line": 7, "character": 8},
            "context": {"triggerKind": 2},
        },
    )
    details = await raw.last_completion(good)
    assert details is not None
    assert details["decision"] in ("complete", "skip"), details
    assert details["generated_tokens"] > 0 and details["stop_reason"], details
    st_ = await raw.status()
    assert st_["state"] == "ready" and st_["stats"]["errors"] >= 1


@pytest.mark.parametrize(
    ("completion", "expected_stop"),
    [({"timeBudgetMs": 60000, "maxTokens": 12}, "max_tokens"), ({"timeBudgetMs": 1}, "time")],
    ids=["token-limit", "time-limit"],
)
async def test_a_model_that_never_stops_ends_at_the_limits(
    raw: RawServer, completion: dict[str, Any], expected_stop: str
) -> None:
    """No end-of-sequence token, no stop string, no newline stop: only the limits remain."""
    await set_settings(raw, completion)
    try:
        uri = file_uri(f"wren-fault-no-stop-{expected_stop}.py")
        # Its own text: the completion cache answers a context it has seen, in any document.
        raw.open(uri, f"def fibonacci_{expected_stop}(n):\n    ")
        await raw.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": 1, "character": 4},
                "context": {"triggerKind": 2},
            },
        )
        details = await raw.last_completion(uri)
        assert details is not None
        assert details["stop_reason"] == expected_stop, details
        if expected_stop == "max_tokens":
            assert details["generated_tokens"] == 12, details
        else:
            assert 1 <= details["generated_tokens"] < 160, details
        raw.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    finally:
        await set_settings(raw, SETTINGS["completion"])


async def test_one_forward_pass_at_a_time_and_never_on_the_event_loop(
    raw: RawServer, forward_stats: Path
) -> None:
    """Counted outside the scheduler (the fault sitecustomize wraps the model's forward pass),
    over everything this server did so far: warm-up, the cancel storm, faults, limits."""
    st_ = await raw.status()
    assert st_["stats"]["max_concurrent_generations"] == 1
    stats = json.loads(forward_stats.read_text())
    assert stats["passes"] > 0
    assert stats["max_active"] == 1, stats
    assert "MainThread" not in stats["threads"], stats  # the asyncio loop runs no forward pass
    assert set(stats["threads"]) <= {"wren-inference", "wren-load"}, stats


# -- stdout, shutdown and exit ----------------------------------------------------------------


async def test_stdout_carries_only_frames_while_libraries_print(raw: RawServer) -> None:
    st_ = await raw.status()
    assert st_["state"] == "ready"
    err = raw.stderr_text()
    markers = list(NOISE_MARKERS)
    if "after importing transformers" in err:  # a load that needed transformers: its logger too
        markers.append("WREN-NOISE-HF-WARNING")
    missing = [m for m in markers if m not in err]
    assert not missing, f"the noise did not happen (so it proves nothing): {missing}"
    assert " DEBUG " in err, "verbose logging was not on"
    assert raw.stray == [], raw.stray[:5]
    assert raw.frames > 100


async def test_shutdown_then_exit_during_a_generation_exits_0_within_2s(raw: RawServer) -> None:
    await set_settings(raw, {"timeBudgetMs": 120000, "maxTokens": 500})
    # A long document (prefill) and no stop token (decode to the limit): a long generation.
    body = "".join(f"def helper_{i}(x):\n    return x * {i} + {i * i}\n\n\n" for i in range(60))
    text = body + "def fibonacci(n):\n    "
    line = text.count("\n")
    running = None
    for attempt in range(3):
        uri = file_uri(f"wren-fault-no-stop-exit-{attempt}.py")
        raw.open(uri, text)
        _, fut = raw.inline_request(uri, line, 4)
        await asyncio.sleep(0.5)
        if not fut.done():
            running = fut
            break
    assert running is not None, "could not catch a generation in flight"
    _, shutdown = raw.request("shutdown")
    assert (await asyncio.wait_for(shutdown, 30)).get("result", "missing") is None
    # The request in flight is answered too (cancelled by the shutdown, or finished).
    response = await asyncio.wait_for(running, 30)
    assert "result" in response or response["error"]["code"] == REQUEST_CANCELLED, response
    # Requests after shutdown are answered with InvalidRequest (LSP), not dropped.
    _, late = raw.request("workspace/executeCommand", {"command": "wren.server.status"})
    assert (await asyncio.wait_for(late, 30))["error"]["code"] == -32600
    t0 = time.monotonic()
    raw.notify("exit")
    await raw.drain()
    code = await raw.wait_exit(30)
    elapsed = time.monotonic() - t0
    assert code == 0
    assert elapsed < 2.0, f"exit took {elapsed:.2f}s"
    # Everything the process ever wrote to stdout, exit included, was a frame.
    assert raw.stray == [], raw.stray[:5]
    assert raw.pending_ids() == [] and raw.answered_twice() == {}


async def test_exit_without_shutdown_exits_1() -> None:
    server = await RawServer.start(env=NOISE)
    try:
        await server.initialize(SETTINGS)  # the model starts loading in the background
        await server.status()
        t0 = time.monotonic()
        server.notify("exit")
        await server.drain()
        code = await server.wait_exit(30)
        assert code == 1
        assert time.monotonic() - t0 < 2.0
        assert server.stray == []
    finally:
        await server.kill()


async def test_closing_stdin_ends_the_server_within_5s() -> None:
    server = await RawServer.start(env=NOISE)
    try:
        await server.initialize(SETTINGS)
        server.open(file_uri("eof.py"), "x = 1\n")
        await server.status()
        assert server.proc.stdin is not None
        t0 = time.monotonic()
        server.proc.stdin.close()
        await server.wait_exit(30)
        assert time.monotonic() - t0 < 5.0
        assert server.stray == []
    finally:
        await server.kill()


# -- text sync: the server's document is the client's -----------------------------------------

_EOL = re.compile(r"\r\n|\r|\n")
PIECES = ["a", "b", "x", " ", "\t", "\n", "\r", "\r\n", "😋", "𝔘", "中", "文", "é", "e\u0301"]
PIECES += ["\u0301", "\x0c", "\u2028", "🏳️‍🌈", "def f():", "    "]


def lsp_position(text: str, offset: int, encoding: str) -> types.Position:
    """An independent reference: LSP lines end at \\r\\n, \\r or \\n; characters count units."""
    line, start = 0, 0
    for m in _EOL.finditer(text):
        if m.end() > offset:
            break
        line, start = line + 1, m.end()
    chunk = text[start:offset]
    if encoding == "utf-16":
        units = len(chunk.encode("utf-16-le")) // 2
    else:
        units = len(chunk.encode("utf-8"))
    return types.Position(line=line, character=units)


def _valid_offset(text: str, offset: int) -> int:
    """Snap an offset out of the middle of a CRLF pair (no LSP position points there)."""
    offset = min(offset, len(text))
    if 0 < offset < len(text) and text[offset - 1 : offset + 1] == "\r\n":
        offset -= 1
    return offset


async def document_text(client: LanguageClient, uri: str) -> dict[str, Any]:
    result = await client.protocol.send_request_async("wren/documentText", {"uri": uri})
    return {"text": result.text, "version": result.version}


async def replay_edits(
    client: LanguageClient, encoding: str, start: str, events: list[list[tuple[int, int, str]]]
) -> None:
    uri = open_doc(client, start, language="plaintext")
    text, version = start, 1
    got = await document_text(client, uri)
    assert got == {"text": text, "version": 1}
    try:
        for event in events:
            changes: list[types.TextDocumentContentChangeEvent] = []
            for a, b, new in event:  # applied in order, each to the result of the previous
                a, b = sorted((_valid_offset(text, a), _valid_offset(text, b)))
                rng = types.Range(
                    start=lsp_position(text, a, encoding), end=lsp_position(text, b, encoding)
                )
                changes.append(types.TextDocumentContentChangePartial(range=rng, text=new))
                text = text[:a] + new + text[b:]
            version += 1
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=changes,
                )
            )
            got = await document_text(client, uri)
            assert got == {"text": text, "version": version}, (events, encoding)
    finally:
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )


_texts = st.lists(st.sampled_from(PIECES), max_size=25).map("".join)
_events = st.lists(
    st.lists(
        st.tuples(st.integers(0, 80), st.integers(0, 80), _texts.map(lambda s: s[:12])),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=8,
)


def check_sync_property(
    loop: asyncio.AbstractEventLoop, client: LanguageClient, encoding: str, examples: int
) -> None:
    """Hypothesis drives the examples on this (worker) thread; the client runs on `loop`."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(start=_texts, events=_events)
    def prop(start: str, events: list[list[tuple[int, int, str]]]) -> None:
        coro = replay_edits(client, encoding, start, events)
        asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    prop()


@pytest_asyncio.fixture(scope="module")
async def client_utf8() -> AsyncIterator[LanguageClient]:
    """A second server whose client offers UTF-8 positions (the session client uses UTF-16)."""
    lsp = await server_config().start()
    assert isinstance(lsp, LanguageClient)
    result = await lsp.initialize_session(init_params(SETTINGS, encodings=["utf-8", "utf-16"]))
    assert result.capabilities.position_encoding == "utf-8"
    try:
        yield lsp
    finally:
        await lsp.shutdown_session()
        await lsp.stop()


async def test_text_sync_matches_the_client_utf16(client: LanguageClient) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check_sync_property, loop, client, "utf-16", 60)


async def test_text_sync_matches_the_client_utf8(client_utf8: LanguageClient) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check_sync_property, loop, client_utf8, "utf-8", 60)


# Astral chars, CJK, a combining mark and CRLF / lone CR line ends before the cursor, and on
# the cursor's own line, so UTF-16 and UTF-8 columns differ from code points.
LANDING = (
    "# -*- coding: utf-8 -*-\r\n"
    '"""Greetings 😋 for 中文 users, café (e\u0301), 𝔘 and 🏳️‍🌈."""\r\r\n'
    "import os\r\n\r\n\r\n"
    "def list_python_files(root):\r\n"
    '    """Return the .py files in root 😋𝔘."""\r\n'
    "    result = []  # 中文 é 𝔘\r\n"
    "    for name in os.listdir(root):\r\n"
    '        label = "😋𝔘中e\u0301" + name; '
)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_completions_land_at_the_cursor(
    client: LanguageClient, client_utf8: LanguageClient, encoding: str
) -> None:
    lsp = client if encoding == "utf-16" else client_utf8
    await wait_ready(lsp)
    uri = open_doc(lsp, LANDING)
    cursor = lsp_position(LANDING, len(LANDING), encoding)
    assert cursor.character != len(LANDING) - LANDING.rfind("\n") - 1  # columns are not chars
    result = await lsp.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=cursor,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    items = items_of(result)
    details = await lsp.protocol.send_request_async(
        "wren/lastCompletion", {"textDocument": {"uri": uri}}
    )
    assert details.decision in ("complete", "skip"), details
    for item in items:
        assert item.range is not None
        assert item.range.start == cursor and item.range.end == cursor
    # The server's cursor offset is the client's: the prompt ends exactly at the cursor.
    got = await document_text(lsp, uri)
    assert got["text"] == LANDING
