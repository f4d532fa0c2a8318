"""Responsiveness, bounds and edge input, through the real server and model (session client).

- A long explanation does not block completion or any other request (ordering, not timing).
- A typing flood runs at most one generation at a time, and the last answer is for the final
  document version.
- A 5 MB one-line file does not stall other requests, and travels intact in both directions.
- Edge positions and URIs never crash the server: end of file, past the end of a line, inside a
  surrogate pair, empty documents, `untitled:` and notebook-cell URIs, unknown URIs, changes
  for closed documents.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import Future
from typing import Any

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

LONG_FUNCTION = '''import csv
import statistics


def summarize_sales(path, region=None, min_amount=0.0):
    """Read a CSV of sales and summarise them per product."""
    totals = {}
    counts = {}
    amounts = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            if region is not None and row["region"] != region:
                continue
            amount = float(row["amount"])
            if amount < min_amount:
                continue
            product = row["product"].strip().lower()
            totals[product] = totals.get(product, 0.0) + amount
            counts[product] = counts.get(product, 0) + 1
            amounts.append(amount)
    if not amounts:
        return {"products": {}, "mean": 0.0, "median": 0.0, "count": 0}
    summary = {}
    for product, total in sorted(totals.items(), key=lambda kv: -kv[1]):
        summary[product] = {
            "total": round(total, 2),
            "count": counts[product],
            "average": round(total / counts[product], 2),
        }
    return {
        "products": summary,
        "mean": statistics.mean(amounts),
        "median": statistics.median(amounts),
        "count": len(amounts),
    }
'''

SMALL = "import os\n\n\ndef home():\n    return os."


def send(client: LanguageClient, method: str, params: Any) -> tuple[str, Future[Any]]:
    """A request with a known id; the concurrent future resolves in message-arrival order."""
    msg_id = f"rb-{uuid.uuid4().hex[:12]}"
    return msg_id, client.protocol.send_request(method, params, msg_id=msg_id)


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def document_text(client: LanguageClient, uri: str) -> Any:
    result = await client.protocol.send_request_async("wren/documentText", {"uri": uri})
    return None if result is None else {"text": result.text, "version": result.version}


def end_position(text: str) -> tuple[int, int]:
    line = text.count("\n")
    tail = text[text.rfind("\n") + 1 :]
    return line, len(tail.encode("utf-16-le")) // 2


def insert_at_end(client: LanguageClient, uri: str, text: str, version: int, new: str) -> None:
    line, col = end_position(text)
    pos = types.Position(line=line, character=col)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=pos, end=pos), text=new
                )
            ],
        )
    )


def close(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


# -- responsiveness -----------------------------------------------------------------------------


async def test_requests_are_answered_during_a_long_explanation(client: LanguageClient) -> None:
    uri = open_doc(client, LONG_FUNCTION)
    small = open_doc(client, SMALL)
    arrivals: list[str] = []
    explain_id, explain = send(
        client,
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(
            command="wren.server.explain",
            arguments=[{"uri": uri, "range": _rng(4, 0, 36, 0)}],
        ),
    )
    explain.add_done_callback(lambda _f: arrivals.append("explain"))
    cheap: list[Future[Any]] = []
    for round_ in range(4):
        requests = {
            "status": (
                types.WORKSPACE_EXECUTE_COMMAND,
                types.ExecuteCommandParams(command="wren.server.status", arguments=[]),
            ),
            "completion": (types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(small, 4, 14)),
            "lastCompletion": ("wren/lastCompletion", {"textDocument": {"uri": small}}),
            "documentText": ("wren/documentText", {"uri": uri}),
            "codeAction": (
                types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    range=types.Range(
                        start=types.Position(line=6, character=0),
                        end=types.Position(line=6, character=0),
                    ),
                    context=types.CodeActionContext(diagnostics=[]),
                ),
            ),
        }
        for name, (method, params) in requests.items():
            _, fut = send(client, method, params)
            fut.add_done_callback(lambda _f, n=f"{name}-{round_}": arrivals.append(n))
            cheap.append(fut)
        await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, cheap)), timeout=300)
        assert "explain" not in arrivals, (
            f"the explanation ended too soon to prove anything: {arrivals}"
        )
        await asyncio.sleep(0.3)
    # Every cheap request was answered while the long generation was still going.
    assert len(arrivals) == len(cheap) and "explain" not in arrivals
    cancel_request(client, explain_id)
    kind, value = await outcome(asyncio.wrap_future(explain))
    assert kind == "result" or value == REQUEST_CANCELLED
    assert arrivals[-1] == "explain"
    close(client, uri)
    close(client, small)


def _rng(l0: int, c0: int, l1: int, c1: int) -> dict[str, Any]:
    return {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}


async def test_typing_flood_one_generation_at_a_time_last_answer_is_current(
    client: LanguageClient,
) -> None:
    """200 keystrokes, each a didChange plus a completion request, in ~2 s; all but the last
    request are cancelled on the wire (as VS Code does when the next keystroke arrives)."""
    text = "import os\n\n\ndef tree_size(root):\n    total = 0\n    "
    typed = (
        "for dirpath, dirnames, filenames in os.walk(root):\n"
        "        for name in filenames:\n"
        "            path = os.path.join(dirpath, name)\n"
        "            if os.path.isfile(path):\n"
        "                total += os.path.getsize(path)\n"
        "    return total\n\n\ndef count_files(root):\n    "
    )
    typed = (typed * 2)[:200]
    uri = open_doc(client, text)
    version = 1
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ids: list[str] = []
    futures = []
    for i, ch in enumerate(typed):
        version += 1
        insert_at_end(client, uri, text, version, ch)
        text += ch
        msg_id, fut = inline_request(client, uri, *end_position(text))
        if ids:
            cancel_request(client, ids[-1])
        ids.append(msg_id)
        futures.append(fut)
        await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.01 - loop.time()))
    results = [await asyncio.wait_for(outcome(f), timeout=300) for f in futures]
    for kind, value in results[:-1]:
        # Cancelled; or answered before its cancel arrived (allowed: one response either way).
        assert kind == "result" or value == REQUEST_CANCELLED, (kind, value)
    kind, last = results[-1]
    assert kind == "result", results[-1]
    assert sum(1 for k, _ in results[:-1] if k == "error") >= 150
    details = await last_details(client, uri)
    assert details["version"] == version == 201
    assert details["decision"] in ("complete", "skip"), details
    assert await document_text(client, uri) == {"text": text, "version": 201}
    items = items_of(last)
    line, col = end_position(text)
    for item in items:
        assert item.range is not None
        assert (item.range.start.line, item.range.start.character) == (line, col)
    st = await status(client)
    assert st["stats"]["max_concurrent_generations"] == 1, st
    close(client, uri)


async def test_five_megabyte_line_does_not_block_other_requests(client: LanguageClient) -> None:
    text = "var b=" + ",".join(f"y{i}" for i in range(700_000)) + ";"
    assert len(text) > 5_000_000
    uri = open_doc(client, text, language="javascript", name="huge_robustness.min.js")
    _, big = inline_request(client, uri, 0, len(text))
    # Cheap requests sent right behind it are answered.
    st = await asyncio.wait_for(status(client), timeout=300)
    assert st["state"] == "ready"
    small = open_doc(client, SMALL)
    await asyncio.wait_for(inline(client, small, 4, 14), timeout=300)
    assert (await last_details(client, small))["decision"] in ("complete", "skip")
    kind, _ = await asyncio.wait_for(outcome(big), timeout=300)
    assert kind == "result"
    assert (await last_details(client, uri))["decision"] in ("complete", "skip")
    # 5 MB each way, intact (a raw pipe read would truncate it to 64 KiB).
    assert await document_text(client, uri) == {"text": text, "version": 1}
    insert_at_end(client, uri, text, 2, "var c=1;")
    assert await document_text(client, uri) == {"text": text + "var c=1;", "version": 2}
    close(client, uri)
    close(client, small)


# -- edge input ---------------------------------------------------------------------------------


FUNCTION = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    "


@pytest.mark.parametrize(
    "uri",
    [
        "untitled:Untitled-1",
        "vscode-notebook-cell:/work/notebooks/analysis.ipynb#W2sZmlsZQ%3D%3D",
        "vscode-vfs://github/owner/repo/src/module.py",
        "file:///no/such/folder/with%20space/%E4%B8%AD.py",
    ],
    ids=["untitled", "notebook-cell", "virtual", "missing-file"],
)
async def test_uris_without_a_file_behind_them(client: LanguageClient, uri: str) -> None:
    open_doc(client, FUNCTION, uri=uri)
    items = await inline(client, uri, 5, 4)
    details = await last_details(client, uri)
    assert details["decision"] in ("complete", "skip"), details
    for item in items_of(items):
        assert item.range is not None and item.range.start == types.Position(line=5, character=4)
    assert await document_text(client, uri) == {"text": FUNCTION, "version": 1}
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=1, character=0), end=types.Position(line=1, character=0)
            ),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None
    close(client, uri)
    assert await document_text(client, uri) is None


@pytest.mark.parametrize(
    ("text", "line", "character"),
    [
        ("x = 1\ny = ", 1, 4),  # exactly the end of the file
        ("x = 1\ny = \n", 2, 0),  # the empty last line
        ("x = 1\ny = ", 1, 99),  # past the end of the last line
        ("x = 1\ny = ", 7, 3),  # past the last line
        ("", 0, 0),  # empty document
        ("", 3, 9),  # empty document, past everything
        ('label = "😋', 0, 10),  # inside a surrogate pair (UTF-16)
        ("a = 1\r\nb = 2\rc = ", 2, 4),  # CRLF and lone CR line ends
        ("a = 1\r\n", 0, 6),  # between CR and LF
    ],
    ids=[
        "eof",
        "empty-last-line",
        "past-eol",
        "past-eof",
        "empty",
        "empty-past-end",
        "mid-surrogate",
        "cr-lines",
        "inside-crlf",
    ],
)
async def test_edge_positions(client: LanguageClient, text: str, line: int, character: int) -> None:
    uri = open_doc(client, text)
    result = await inline(client, uri, line, character)
    details = await last_details(client, uri)
    assert details["decision"] in ("complete", "skip"), details
    n_lines = text.count("\n") + text.count("\r") - text.count("\r\n") + 1
    for item in items_of(result):
        assert item.range is not None
        assert item.range.start.line < n_lines  # clamped into the document
    close(client, uri)


async def test_changes_for_closed_and_unknown_documents(client: LanguageClient) -> None:
    uri = open_doc(client, "x = 1\n")
    close(client, uri)
    insert_at_end(client, uri, "x = 1\n", 2, "y = 2\n")  # closed: ignored
    assert await document_text(client, uri) is None
    insert_at_end(client, "file:///never/opened.py", "", 2, "z")  # never opened: ignored
    client.text_document_did_change(  # a whole-document change for a closed document
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="w = 0\n")],
        )
    )
    close(client, "file:///never/opened/either.py")  # closing an unknown document
    # Re-opening starts from the client's text, not from anything sent while closed.
    open_doc(client, "fresh = True\n", uri=uri)
    assert await document_text(client, uri) == {"text": "fresh = True\n", "version": 1}
    # A change whose range lies past the end is clamped to the end.
    far = types.Position(line=50, character=7)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=far, end=far), text="tail = 1\n"
                )
            ],
        )
    )
    assert await document_text(client, uri) == {"text": "fresh = True\ntail = 1\n", "version": 2}
    # Re-opening an open document replaces it.
    open_doc(client, "again = 2\n", uri=uri)
    assert await document_text(client, uri) == {"text": "again = 2\n", "version": 1}
    close(client, uri)
    # Requests about unknown documents are answered, not failed.
    unknown = "file:///nowhere/unknown.py"
    assert (await inline(client, unknown, 0, 0)) is not None
    assert (await last_details(client, unknown))["decision"] == "error"
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="wren.server.explain", arguments=[{"uri": unknown}])
    )
    assert result is not None
    assert (await status(client))["state"] == "ready"


async def test_lone_surrogates_in_a_document_get_an_answer(client: LanguageClient) -> None:
    """JSON can carry a lone UTF-16 surrogate (`"\\ud800"`); JavaScript strings can hold one."""
    text = 'broken = "\ud800"\nvalue = '
    uri = open_doc(client, text)
    _, fut = inline_request(client, uri, 1, 8)
    kind, value = await asyncio.wait_for(outcome(fut), timeout=300)
    assert kind == "result" or isinstance(value, int), (kind, value)
    assert await document_text(client, uri) == {"text": text, "version": 1}
    insert_at_end(client, uri, text, 2, "1")
    assert await document_text(client, uri) == {"text": text + "1", "version": 2}
    assert (await status(client))["state"] == "ready"
    close(client, uri)


def _items(result: Any) -> list[types.InlineCompletionItem]:
    return list(result.items) if isinstance(result, types.InlineCompletionList) else []


async def test_a_lone_surrogate_before_the_cursor_on_its_line(client: LanguageClient) -> None:
    """The answer's range is computed over the cursor line's text, surrogate included: one
    UTF-16 unit for the lone surrogate, and a completion rather than an internal error."""
    line = 'names = ["\ud800", "b"]; count = len('
    text = "import sys\n" + line
    uri = open_doc(client, text)
    _, fut = inline_request(client, uri, 1, len(line))  # every character is one UTF-16 unit
    kind, value = await asyncio.wait_for(outcome(fut), timeout=300)
    assert kind == "result", (kind, value)
    details = await last_details(client, uri)
    assert details["decision"] in ("complete", "skip"), details
    items = _items(value)
    assert items, details  # the model does complete this line (`names)`)
    for item in items:
        assert item.range is not None
        assert (item.range.start.line, item.range.start.character) == (1, len(line))
    close(client, uri)


async def test_the_range_refers_to_the_text_the_completion_was_made_for(
    client: LanguageClient,
) -> None:
    """Lines inserted above the cursor while the model runs don't move the answer: its range
    is the position in the text the request was made for (the client maps it, or discards
    an answer for an older version)."""
    body = "".join(f"def helper_{i}(value):\n    return value * {i} + 1\n\n\n" for i in range(120))
    text = body + "def add(a, b):\n    return "
    line, character = text.count("\n"), len("    return ")
    uri = open_doc(client, text)
    _, fut = inline_request(client, uri, line, character)
    await asyncio.sleep(0.3)  # the request has its snapshot; the long prompt is still running
    top = types.Position(line=0, character=0)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=top, end=top), text="# one\n# two\n# three\n"
                )
            ],
        )
    )
    kind, value = await asyncio.wait_for(outcome(fut), timeout=300)
    assert kind == "result", (kind, value)
    details = await last_details(client, uri)
    assert details["version"] == 1, details  # made for the text before the edit
    items = _items(value)
    assert items, details
    for item in items:
        assert item.range is not None
        assert (item.range.start.line, item.range.start.character) == (line, character)
    assert (await document_text(client, uri))["version"] == 2
    close(client, uri)
