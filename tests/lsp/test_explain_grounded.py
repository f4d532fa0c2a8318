"""Explain sticks to the code: the real server, the real default model, the checked text.

The deterministic part (a named-but-missing identifier sent back as a repair reason, the plain
"could not explain this reliably") is tested with a scripted backend in
tests/unit/test_explain_checks.py; here the real model's final text is held to the same rules.
"""

from __future__ import annotations

import asyncio
import builtins
import keyword
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from wren.engine.actions.explain_checks import near_duplicate

from .conftest import open_doc
from .conftest import plain as _plain
from .test_actions import LONG_FUNCTION, REQUEST_CANCELLED, send_command

pytestmark = pytest.mark.model

SESSION_SETTINGS: dict[str, Any] = {"completion": {"timeBudgetMs": 20000}}

# click's `_safecall` (the helper a user saw explained as "the `__cxa__` attribute"), and more.
SAFECALL_FILE = '''import typing as t
from functools import update_wrapper

P = t.ParamSpec("P")
R = t.TypeVar("R")


def _safecall(func: t.Callable[P, R]) -> t.Callable[P, R | None]:
    """Wraps a function so that it swallows exceptions.

    :meta private:
    """

    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return func(*args, **kwargs)
        except Exception:
            pass
        return None

    return update_wrapper(wrapper, func)
'''
CIRCLE_FILE = "import math\n\n\ndef circle_area(r):\n    return math.pi * r * r\n"
WORDS = set(dir(builtins)) | set(keyword.kwlist) | {"self", "cls"}


def configure(client: LanguageClient, style: str) -> None:
    settings = {"wren": {**SESSION_SETTINGS, "explain": {"style": style}}}
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings))


def _at(line: int) -> dict[str, Any]:
    pos = {"line": line, "character": 4}
    return {"start": pos, "end": pos}


async def explain_at(
    client: LanguageClient, text: str, line: int, name: str
) -> tuple[dict[str, Any], str]:
    uri = open_doc(client, text, name=name)
    chunk_id = uuid.uuid4().hex
    _, fut = send_command(
        client, "wren.server.explain", {"uri": uri, "range": _at(line), "id": chunk_id}
    )
    result = dict(_plain(await asyncio.wait_for(fut, timeout=300)))
    await asyncio.sleep(0.2)
    return result, chunk_id


def backticked_names(markdown: str) -> list[str]:
    spans = re.findall(r"`([^`\n]+)`", markdown)
    spans = [re.sub(r"'[^']*'|\"[^\"]*\"", " ", s) for s in spans]  # string literals name nothing
    return [n for s in spans for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", s)]


def sentences(markdown: str) -> list[str]:
    body = markdown.split("\n", 1)[1] if markdown.startswith("**Line") else markdown
    out: list[str] = []
    for line in body.split("\n"):
        line = re.sub(r"^\s*[-*]\s+(\*\*\w+:\*\*\s*)?", "", line).strip()
        out += [s for s in re.split(r"(?<=[.!?])\s+", line) if s]
    return out


@pytest.mark.parametrize(
    ("text", "line", "name"),
    [(SAFECALL_FILE, 7, "utils.py"), (CIRCLE_FILE, 3, "shapes.py")],
    ids=["safecall", "circle_area"],
)
async def test_every_name_in_the_explanation_exists_in_the_file(
    client: LanguageClient,
    explain_chunks: dict[str, list[dict[str, Any]]],
    text: str,
    line: int,
    name: str,
) -> None:
    configure(client, "structured")
    result, chunk_id = await explain_at(client, text, line, name)
    assert result["ok"] is True and result["checked"] is True, result
    markdown = result["markdown"]
    file_words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)) | WORDS
    invented = [n for n in backticked_names(markdown) if n not in file_words]
    assert not invented, (invented, markdown)
    # The structured form's fields, whether the model's or (when it was wrong) the code's own.
    assert "- **Takes:**" in markdown and "- **Returns:**" in markdown, markdown
    streamed = explain_chunks.get(chunk_id, [])
    assert streamed and streamed[-1] == {
        "id": chunk_id, "markdown": markdown, "done": True, "checked": True
    }  # fmt: skip
    assert all(c["checked"] is False for c in streamed[:-1])  # drafts marked unchecked
    assert isinstance(result["removed"], list)
    assert all(set(r) == {"text", "reason"} for r in result["removed"])


async def test_no_repeated_sentence_or_paragraph_reaches_the_client(
    client: LanguageClient, explain_chunks: dict[str, list[dict[str, Any]]]
) -> None:
    # Prose, 160 tokens: where the small model loops ("It returns a new function that takes a
    # single argument and returns a new function that ...").
    configure(client, "prose")
    try:
        for text, line, name in ((SAFECALL_FILE, 7, "safe.py"), (CIRCLE_FILE, 3, "area.py")):
            result, chunk_id = await explain_at(client, text, line, name)
            assert result["ok"] is True
            final = explain_chunks[chunk_id][-1]
            assert final["done"] and final["markdown"] == result["markdown"]
            said = sentences(final["markdown"])
            for i, s in enumerate(said):
                assert not any(near_duplicate(s, t) for t in said[:i]), (s, final["markdown"])
            body = final["markdown"].rstrip()
            assert body.endswith((".", "!", "?", "`", "_", ")")), body  # never mid-sentence
    finally:
        configure(client, "structured")


async def test_cancel_mid_way_sends_no_checked_text_and_writes_nothing(
    client: LanguageClient, explain_chunks: dict[str, list[dict[str, Any]]]
) -> None:
    path = Path(__file__).parent / "workspace" / "explain_cancel_me.py"
    uri = open_doc(client, LONG_FUNCTION, uri=path.as_uri())
    chunk_id = uuid.uuid4().hex
    rng = {"start": {"line": 0, "character": 0}, "end": {"line": 42, "character": 0}}
    msg_id, fut = send_command(
        client, "wren.server.explain", {"uri": uri, "range": rng, "id": chunk_id}
    )
    for _ in range(600):
        if explain_chunks.get(chunk_id):
            break
        await asyncio.sleep(0.1)
    assert explain_chunks.get(chunk_id), "no draft arrived"
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as err:
        await asyncio.wait_for(fut, timeout=60)
    assert err.value.code == REQUEST_CANCELLED
    await asyncio.sleep(0.5)
    assert not any(c.get("checked") for c in explain_chunks[chunk_id])
    assert not path.exists()  # explain never writes a file
