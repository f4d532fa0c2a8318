"""Explain / Fix / Generate through the real server (`python -m wren serve`), real default model."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import textwrap
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCResponseMessage
from pytest_lsp import LanguageClient

from wren.context.syntax import parse
from wren.engine.actions.change_checks import unchanged_reason

from .conftest import open_doc, status
from .conftest import plain as _plain

pytestmark = pytest.mark.model

REQUEST_CANCELLED = -32800

FUNCTION = '''import os


def count_words(path):
    """Count the words in a text file."""
    total = 0
    with open(path) as fh:
        for line in fh:
            total += len(line.split())
    return total
'''

BROKEN = "def add(a, b)\n    return a + b\n"


def _rng(l0: int, c0: int, l1: int, c1: int) -> dict[str, Any]:
    return {"start": {"line": l0, "character": c0}, "end": {"line": l1, "character": c1}}


def send_command(
    client: LanguageClient, command: str, arg: dict[str, Any], token: str | None = None
) -> tuple[str, asyncio.Future[Any]]:
    msg_id = f"act-{uuid.uuid4().hex[:12]}"
    params = types.ExecuteCommandParams(command=command, arguments=[arg], work_done_token=token)
    fut = client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND, params, msg_id=msg_id)
    return msg_id, asyncio.wrap_future(fut)


async def command(client: LanguageClient, name: str, arg: dict[str, Any]) -> dict[str, Any]:
    _, fut = send_command(client, name, arg)
    return dict(_plain(await asyncio.wait_for(fut, timeout=300)))


def apply_edit(text: str, edit: dict[str, Any]) -> str:
    """Apply a WorkspaceEdit (documentChanges, one document) to `text` (positions: UTF-16)."""
    from wren.context.documents import Document

    (change,) = edit["documentChanges"]
    doc = Document("x", text)
    for e in sorted(
        change["edits"],
        key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
        reverse=True,
    ):
        r = e["range"]
        a = doc.offset_at(r["start"]["line"], r["start"]["character"])
        b = doc.offset_at(r["end"]["line"], r["end"]["character"])
        doc.apply_change(None, None, doc.text[:a] + e["newText"] + doc.text[b:])
    return doc.text


def parses(text: str) -> bool:
    tree = parse("python", text)
    return tree is not None and not tree.root_node.has_error


# -- Explain --------------------------------------------------------------------------------


async def test_explain_function_streams_markdown(
    client: LanguageClient, explain_chunks: dict[str, list[dict[str, Any]]]
) -> None:
    uri = open_doc(client, FUNCTION, name="words.py")
    chunk_id = uuid.uuid4().hex
    token = f"tok-{chunk_id}"
    client.progress_reports.setdefault(token, [])
    _, fut = send_command(
        client,
        "wren.server.explain",
        {"uri": uri, "range": _rng(6, 4, 6, 4), "id": chunk_id},
        token,
    )
    result = dict(_plain(await asyncio.wait_for(fut, timeout=300)))
    markdown = result["markdown"]
    assert result["ok"] is True
    assert markdown.startswith("**Lines 4–10 of words.py**")
    assert len(markdown) > 80
    assert result["range"]["start"]["line"] == 3  # the enclosing function, 0-based
    await asyncio.sleep(0.2)
    chunks = explain_chunks.get(chunk_id, [])
    assert chunks and chunks[-1]["done"] is True and chunks[-1]["markdown"] == markdown
    assert any(not c["done"] for c in chunks), "the explanation was not streamed"
    kinds = [type(v).__name__ for v in client.progress_reports[token]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_explain_long_selection_is_cut_with_a_note(client: LanguageClient) -> None:
    body = "".join(
        f"    value_{i} = compute({i}, 'some text to take tokens')\n" for i in range(400)
    )
    text = "def big():\n" + body + "    return value_0\n"
    uri = open_doc(client, text)
    result = await command(client, "wren.server.explain", {"uri": uri, "range": _rng(0, 0, 401, 0)})
    assert result["ok"] is True
    assert "Note: the code is long" in result["markdown"]
    assert result["range"]["end"]["line"] < 401


# -- Fix ------------------------------------------------------------------------------------


async def test_fix_syntax_error_returns_an_edit_that_parses(client: LanguageClient) -> None:
    uri = open_doc(client, BROKEN)
    result = await command(
        client,
        "wren.server.fix",
        {"uri": uri, "range": _rng(0, 13, 0, 13), "diagnostic": "Expected ':'"},
    )
    assert result["edit"] is not None, result
    fixed = apply_edit(BROKEN, result["edit"])
    assert parses(fixed), fixed
    compile(fixed, "fixed.py", "exec")
    assert result["verified"] is True, result
    assert result["rounds"] >= 1
    assert result["edit"]["documentChanges"][0]["textDocument"]["version"] == 1


async def test_fix_keeps_crlf_line_endings(client: LanguageClient) -> None:
    text = BROKEN.replace("\n", "\r\n") + "\r\nprint(add(1, 2))\r\n"
    uri = open_doc(client, text)
    result = await command(client, "wren.server.fix", {"uri": uri, "range": _rng(0, 0, 1, 0)})
    assert result["edit"] is not None, result
    for e in result["edit"]["documentChanges"][0]["edits"]:
        assert "\n" not in e["newText"].replace("\r\n", "")
    fixed = apply_edit(text, result["edit"])
    assert parses(fixed)
    assert fixed.count("\r\n") == fixed.count("\n")


async def test_code_actions_offer_fix_and_explain(client: LanguageClient) -> None:
    uri = open_doc(client, BROKEN)
    diag = types.Diagnostic(
        range=types.Range(
            start=types.Position(line=0, character=13), end=types.Position(line=0, character=14)
        ),
        message="Expected ':'",
        source="Pylance",
    )
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=diag.range,
        context=types.CodeActionContext(diagnostics=[diag]),
    )
    msg_id = f"ca-{uuid.uuid4().hex[:8]}"
    fut = client.protocol.send_request(types.TEXT_DOCUMENT_CODE_ACTION, params, msg_id=msg_id)
    # lsprotocol structures `(Command | CodeAction)[]` as Command whenever an item has a
    # `command` key (a client-side quirk), so read the raw JSON instead.
    client.protocol._result_types[msg_id] = JsonRPCResponseMessage
    actions = _plain(await asyncio.wait_for(asyncio.wrap_future(fut), timeout=30))
    by_title = {a["title"]: a for a in actions}
    fix_action = by_title["Wren: Fix"]
    assert fix_action["kind"] == "quickfix"
    assert fix_action["diagnostics"][0]["message"] == "Expected ':'"
    assert fix_action["command"]["command"] == "wren.fix"
    assert fix_action["command"]["arguments"][0] == uri
    assert fix_action["command"]["arguments"][1]["start"] == {"line": 0, "character": 13}
    explain_action = by_title["Wren: Explain"]
    assert explain_action["command"]["command"] == "wren.explain"


# -- Generate -------------------------------------------------------------------------------


async def test_generate_inserts_code_after_comment(client: LanguageClient) -> None:
    text = "import math\n\n# return the area of a circle with the given radius\n"
    uri = open_doc(client, text)
    result = await command(
        client, "wren.server.generate", {"uri": uri, "position": {"line": 3, "character": 0}}
    )
    assert result["edit"] is not None, result
    (edit,) = result["edit"]["documentChanges"][0]["edits"]
    assert edit["range"]["start"]["line"] == 3  # below the comment
    new = apply_edit(text, edit_doc(result))
    assert new.startswith(text)
    assert parses(new), new
    assert len(new) > len(text)


def edit_doc(result: dict[str, Any]) -> dict[str, Any]:
    return dict(result["edit"])


# -- A label is a promise -------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def editor_sample() -> str:
    """`inventory.py` exactly as `make run` (scripts/run_editor.sh) writes it."""
    script = (REPO / "scripts" / "run_editor.sh").read_text(encoding="utf-8")
    found = re.search(r"/inventory\.py\" <<'EOF'\n(.*?)\nEOF\n", script, re.DOTALL)
    assert found, "the inventory.py sample is no longer in scripts/run_editor.sh"
    return found.group(1) + "\n"


def _function_source(text: str, name: str) -> str:
    """The source of the (first) function `name` in `text`, dedented."""
    with warnings.catch_warnings():  # the sample's docstring has an invalid escape (`Alt+\\ `)
        warnings.simplefilter("ignore")
        tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return textwrap.dedent(ast.get_source_segment(text, node, padded=True) or "")
    return ""


async def test_fix_of_the_editor_sample_is_verified_only_if_max_changed(
    client: LanguageClient,
) -> None:
    """The `make run` sample: `cheapest` returns max(...). A verified fix must change that."""
    text = editor_sample()
    lines = text.split("\n")
    first = next(i for i, line in enumerate(lines) if "def cheapest" in line)
    last = next(i for i in range(first, len(lines)) if "return max(" in lines[i])
    uri = open_doc(client, text, name="inventory.py")
    result = await command(
        client, "wren.server.fix", {"uri": uri, "range": _rng(first, 0, last + 1, 0)}
    )
    before = _function_source(text, "cheapest")
    if result["edit"] is None:
        assert result["verified"] is False
        assert result["reason"], result
        return
    after = _function_source(apply_edit(text, result["edit"]), "cheapest")
    # What is offered at all changes the code, not only its docstring or annotations...
    assert unchanged_reason("python", before, after) is None, (result, after)
    # ...and "verified" is earned only by replacing the wrong `max`.
    if result["verified"]:
        assert "max(" not in after, (result, after)


async def test_fix_of_the_editor_samples_typo_is_verified_and_correct(
    client: LanguageClient,
) -> None:
    """The `make run` sample's first bug (`itme` in `total_value`): the README promises the
    default model fixes it, with no editor diagnostic given (Wren finds the undefined name)."""
    text = editor_sample()
    lines = text.split("\n")
    row = next(i for i, line in enumerate(lines) if "itme.price" in line)
    uri = open_doc(client, text, name="inventory.py")
    result = await command(client, "wren.server.fix", {"uri": uri, "range": _rng(row, 8, row, 8)})
    assert result["verified"] is True and result["edit"] is not None, result
    new = apply_edit(text, result["edit"])
    after = _function_source(new, "total_value")
    assert "itme" not in after and "item.price * item.quantity" in after, after
    assert _function_source(new, "cheapest") == _function_source(text, "cheapest")
    assert '"""The value of everything in stock' in after  # the docstring is kept


async def test_generate_never_verifies_a_second_definition(client: LanguageClient) -> None:
    """Issue 10: a comment below `mean` produced a second `def mean`, labelled checked."""
    text = (
        "def mean(values):\n"
        "    return sum(values) / len(values)\n"
        "\n"
        "\n"
        "# the largest value in the list\n"
    )
    uri = open_doc(client, text)
    result = await command(
        client, "wren.server.generate", {"uri": uri, "position": {"line": 4, "character": 5}}
    )
    if result["edit"] is None:
        assert result["verified"] is False and result["reason"], result
        return
    new = apply_edit(text, edit_doc(result))
    tree = ast.parse(new)
    top_level = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    if top_level.count("mean") > 1:
        assert result["verified"] is False, (result, new)
        assert "`mean` is already defined on line 1" in result["reason"], result
    else:
        assert parses(new), new


# -- Cancel ---------------------------------------------------------------------------------


LONG_FUNCTION = (
    "def report(rows):\n"
    + "".join(
        f"    total_{i} = sum(r[{i}] for r in rows if r[{i}] is not None)\n" for i in range(40)
    )
    + "    return total_0 +\n"
)


def _no_apply_edit_requests(client: LanguageClient) -> list[Any]:
    """Record any workspace/applyEdit the server sends (it must never send one)."""
    applied: list[Any] = []

    def on_apply(ls: LanguageClient, params: Any) -> types.ApplyWorkspaceEditResult:
        applied.append(params)
        return types.ApplyWorkspaceEditResult(applied=False)

    with contextlib.suppress(Exception):
        client.feature(types.WORKSPACE_APPLY_EDIT)(on_apply)
    return applied


async def test_cancel_fix_mid_way_returns_no_edit(client: LanguageClient) -> None:
    applied = _no_apply_edit_requests(client)
    uri = open_doc(client, LONG_FUNCTION)
    msg_id, fut = send_command(client, "wren.server.fix", {"uri": uri, "range": _rng(41, 0, 41, 0)})
    await asyncio.sleep(2.0)  # rewriting 40 lines takes the model well over 2 s
    assert not fut.done()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, timeout=60)
    assert err.value.code == REQUEST_CANCELLED
    assert applied == []
    # The generation itself stopped (not only the answer): the worker goes idle at its next
    # step, long before a 40-line rewrite with repair rounds would end (30 s: a hang guard).
    for _ in range(300):
        if not (await status(client))["stats"]["busy"]:
            break
        await asyncio.sleep(0.1)
    assert not (await status(client))["stats"]["busy"], "the cancelled fix kept the worker busy"
    # The server is still serving, and a new request on the same document works.
    assert (await status(client))["state"] == "ready"
    result = await command(client, "wren.server.fix", {"uri": uri, "range": _rng(1, 0, 1, 0)})
    assert "edit" in result


async def test_cancel_through_the_progress_token(client: LanguageClient) -> None:
    uri = open_doc(client, LONG_FUNCTION)
    token = f"tok-{uuid.uuid4().hex[:8]}"
    client.progress_reports.setdefault(token, [])
    _, fut = send_command(
        client, "wren.server.fix", {"uri": uri, "range": _rng(41, 0, 41, 0)}, token
    )
    await asyncio.sleep(1.5)
    assert not fut.done()
    client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
    )
    result = dict(_plain(await asyncio.wait_for(fut, timeout=60)))
    assert result["edit"] is None and "cancelled" in result["reason"]
    kinds = [type(v).__name__ for v in client.progress_reports[token]]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_completion_is_served_while_a_fix_runs(client: LanguageClient) -> None:
    """Fix runs with BATCH priority: an inline completion in between does not wait for it."""
    uri = open_doc(client, LONG_FUNCTION)
    msg_id, fix_future = send_command(
        client, "wren.server.fix", {"uri": uri, "range": _rng(41, 0, 41, 0)}
    )
    await asyncio.sleep(1.5)
    assert not fix_future.done()
    other = open_doc(client, "import os\n\n\ndef home():\n    return os.")
    completion = await asyncio.wait_for(
        client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=other),
                position=types.Position(line=4, character=14),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        ),
        timeout=120,
    )
    assert completion is not None
    assert not fix_future.done(), "the completion waited for the whole fix"
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with contextlib.suppress(JsonRpcException):
        await asyncio.wait_for(fix_future, timeout=60)


async def test_cancel_explain_mid_stream(
    client: LanguageClient, explain_chunks: dict[str, list[dict[str, Any]]]
) -> None:
    uri = open_doc(client, LONG_FUNCTION)
    chunk_id = uuid.uuid4().hex
    msg_id, fut = send_command(
        client, "wren.server.explain", {"uri": uri, "range": _rng(0, 0, 42, 0), "id": chunk_id}
    )
    for _ in range(600):  # wait for the first streamed chunk: the model is mid-way
        if explain_chunks.get(chunk_id):
            break
        await asyncio.sleep(0.1)
    assert explain_chunks.get(chunk_id), "no explainChunk arrived"
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, timeout=60)
    assert err.value.code == REQUEST_CANCELLED
    await asyncio.sleep(0.5)
    assert not any(
        c["done"] and c["markdown"].startswith("**Lines") for c in explain_chunks[chunk_id]
    )


# -- Bad input ------------------------------------------------------------------------------


async def test_empty_file_gets_a_reason_and_no_edit(client: LanguageClient) -> None:
    uri = open_doc(client, "")
    for name, arg in (
        ("wren.server.fix", {"uri": uri, "range": _rng(0, 0, 0, 0)}),
        ("wren.server.generate", {"uri": uri, "position": {"line": 0, "character": 0}}),
    ):
        result = await command(client, name, arg)
        assert result["edit"] is None
        assert "empty" in result["reason"]
    before = len(client.messages)
    result = await command(client, "wren.server.explain", {"uri": uri})
    assert result["ok"] is False and "empty" in result["reason"]
    await asyncio.sleep(0.2)
    assert any("empty" in m.message for m in client.messages[before:])


async def test_whitespace_selection_gets_a_reason(client: LanguageClient) -> None:
    text = "x = 1\n\n\n    \n\ny = 2\n"
    uri = open_doc(client, text)
    for name in ("wren.server.explain", "wren.server.fix"):
        result = await command(client, name, {"uri": uri, "range": _rng(1, 0, 4, 0)})
        assert "whitespace" in result["reason"], result
        assert result.get("edit") is None


async def test_minified_line_is_refused(client: LanguageClient) -> None:
    text = "var a=" + "1+" * 4000 + "1;\n"
    uri = open_doc(client, text, language="javascript", name="bundle.min.js")
    for name in ("wren.server.explain", "wren.server.fix"):
        result = await command(client, name, {"uri": uri, "range": _rng(0, 0, 0, 20)})
        assert "5000 characters" in result["reason"], result
        assert result.get("edit") is None


async def test_binary_content_is_refused(client: LanguageClient) -> None:
    text = "\x00\x01\x02binary\x00" * 50
    uri = open_doc(client, text, language="plaintext", name="blob.bin")
    result = await command(client, "wren.server.fix", {"uri": uri, "range": _rng(0, 0, 0, 5)})
    assert result["edit"] is None and "binary" in result["reason"]


async def test_generate_without_a_comment_explains_itself(client: LanguageClient) -> None:
    text = "x = 1\ny = 2\n"
    uri = open_doc(client, text)
    result = await command(
        client, "wren.server.generate", {"uri": uri, "position": {"line": 1, "character": 0}}
    )
    assert result["edit"] is None
    assert "comment" in result["reason"]


async def test_unknown_document(client: LanguageClient) -> None:
    result = await command(
        client, "wren.server.fix", {"uri": "file:///nowhere/x.py", "range": _rng(0, 0, 0, 0)}
    )
    assert result["edit"] is None and "not open" in result["reason"]
