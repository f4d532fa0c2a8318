"""Inline completion through the real server with the real default model."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import (
    REQUEST_CANCELLED,
    cancel_request,
    inline,
    inline_request,
    items_of,
    last_details,
    open_doc,
    outcome,
    status,
)

pytestmark = pytest.mark.model

PREFIX = '''import os


def list_python_files(root):
    """Return the paths of the .py files directly inside root."""
    result = []
    for name in os.listdir(root):
        '''


async def test_completion_is_code_at_the_cursor(client: LanguageClient) -> None:
    text = PREFIX + "\n    return result\n"
    uri = open_doc(client, text)
    line, col = 7, 8
    items = items_of(await inline(client, uri, line, col))
    assert items, await last_details(client, uri)
    item = items[0]
    assert isinstance(item.insert_text, str) and item.insert_text.strip()
    assert item.range is not None
    assert (item.range.start.line, item.range.start.character) == (line, col)
    assert item.range.start == item.range.end
    # The suggestion must not repeat what already follows the cursor.
    assert "return result" not in item.insert_text
    details = await last_details(client, uri)
    assert details["decision"] == "complete"
    assert details["prompt_tokens"] > 10
    assert {"trigger", "prompt", "prefill", "decode", "postprocess"} <= set(details["timings_ms"])


async def test_completion_does_not_duplicate_auto_closed_bracket(client: LanguageClient) -> None:
    # Cursor inside `len(` with the editor's auto-inserted `)` after it.
    text = "import os\n\nfiles = os.listdir()\nnames = sorted(files)\nprint(len()\n"
    uri = open_doc(client, text)
    items = items_of(await inline(client, uri, 4, 10))
    for item in items:
        line = "print(len(" + str(item.insert_text).split("\n")[0] + ")"
        # Brackets balance: nothing the editor already closed is closed twice.
        assert line.count("(") >= line.count(")"), line


async def test_second_request_reuses_kv_cache(client: LanguageClient) -> None:
    # Its own text: an identical prefix would be answered from the completion cache.
    text = PREFIX.replace("list_python_files", "python_files_in")
    lines = text.split("\n")
    uri = open_doc(client, text)
    await inline(client, uri, len(lines) - 1, 8)
    # Type a character, as the user would, and ask again.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=len(lines) - 1, character=8),
                        end=types.Position(line=len(lines) - 1, character=8),
                    ),
                    text="i",
                )
            ],
        )
    )
    await inline(client, uri, len(lines) - 1, 9)
    details = await last_details(client, uri)
    assert details["version"] == 2
    assert details["source"] in ("model", "cache"), details
    if details["source"] == "model":
        assert details["cached_tokens"] > 0.8 * details["prompt_tokens"], details


async def test_cancel_returns_request_cancelled_and_next_request_works(
    client: LanguageClient,
) -> None:
    text = (
        "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
        "    def push(self, item):\n        "
    )
    uri = open_doc(client, text)
    msg_id, fut = inline_request(client, uri, 5, 8)
    await asyncio.sleep(0.05)
    cancel_request(client, msg_id)
    kind, value = await outcome(fut)
    assert (kind, value) == ("error", REQUEST_CANCELLED)
    items = items_of(await inline(client, uri, 5, 8))
    details = await last_details(client, uri)
    assert details["decision"] in ("complete", "skip"), details
    assert items or details["decision"] == "skip"


async def test_newer_request_supersedes_older(client: LanguageClient) -> None:
    uri = open_doc(client, PREFIX)
    n = len(PREFIX.split("\n")) - 1
    _, first = inline_request(client, uri, n, 8)
    _, second = inline_request(client, uri, n, 8)
    results = [await outcome(first), await outcome(second)]
    # The newer request is answered; the older one is cancelled (or had already finished).
    assert results[1][0] == "result", results
    assert results[0] == ("error", REQUEST_CANCELLED) or results[0][0] == "result", results


async def test_the_newest_request_is_never_superseded_by_an_older_one(
    client: LanguageClient,
) -> None:
    """While typing fast the server waits a little before each request (adaptive debounce),
    and a later request can wait less: 0.05 s after a 0.1 s gap, 0.035 s after a 1 ms one. The
    older request, submitted last, must not cancel the newer one: the newest is answered."""
    uri = open_doc(client, PREFIX)
    n = len(PREFIX.split("\n")) - 1
    _, first = inline_request(client, uri, n, 8)
    await asyncio.sleep(0.1)
    _, older = inline_request(client, uri, n, 8)
    await asyncio.sleep(0.001)
    _, newest = inline_request(client, uri, n, 8)
    assert (await outcome(newest))[0] == "result"
    await outcome(first)
    await outcome(older)


async def test_no_completion_in_the_middle_of_a_word(client: LanguageClient) -> None:
    uri = open_doc(client, "result = compute_total(values)\n")
    items = items_of(await inline(client, uri, 0, 12))  # inside `compute_total`
    assert items == []
    details = await last_details(client, uri)
    assert details["decision"] == "skip" and details["reason"]


async def prefills_reach(client: LanguageClient, count: int) -> None:
    for _ in range(900):
        if (await status(client))["stats"]["prefills"] >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"background prefill #{count} never finished")


async def test_a_cancelled_request_keeps_prefilling_its_place(client: LanguageClient) -> None:
    """The editor cancels a request when the user types on; the place's prompt goes on being
    computed in the background, so the next request there finds it in the KV cache. Without
    that, a cold place in a large file advanced only between a request and the next key."""
    lines = [f"reading_{i} = sample_channel(port={i % 5}, scale={i})" for i in range(400)]
    lines[150] = ""
    body = "\n".join(lines) + "\n"
    before = (await status(client))["stats"]["prefills"]
    uri = open_doc(client, body)
    # At once: the request cancels didOpen's prefill (the end of the file, another window).
    msg_id, fut = inline_request(client, uri, 150, 0)
    await asyncio.sleep(0.1)  # mid-prefill of a ~1,000-token window (or before it starts)
    cancel_request(client, msg_id)
    assert (await outcome(fut)) == ("error", REQUEST_CANCELLED)
    await prefills_reach(client, before + 1)
    await inline(client, uri, 150, 0)
    details = await last_details(client, uri)
    assert details["source"] == "model", details
    assert details["prompt_tokens"] > 600, details
    assert details["cached_tokens"] >= details["prompt_tokens"] - 2, details


async def test_cursor_pause_prefills_the_kv_cache(client: LanguageClient) -> None:
    # Long enough that the prompt window for line 200 starts far from the end-of-file
    # window that didOpen prefills: only the cursor notification can make it warm.
    lines = [f"measurement_{i} = read_sensor(channel={i % 7}, gain={i})" for i in range(400)]
    lines[200] = ""  # the cursor rests on this empty line
    body = "\n".join(lines) + "\n"
    before = (await status(client))["stats"]["prefills"]
    uri = open_doc(client, body)
    await prefills_reach(client, before + 1)  # the didOpen prefill (end of file)
    line = 200
    position = {"line": line, "character": 0}
    client.protocol.notify("wren/cursorMoved", {"textDocument": {"uri": uri}, "position": position})
    await prefills_reach(client, before + 2)
    await inline(client, uri, line, 0)
    details = await last_details(client, uri)
    assert details["source"] in ("model", "cache"), details
    if details["source"] == "model":
        assert details["cached_tokens"] >= 0.9 * details["prompt_tokens"], details
