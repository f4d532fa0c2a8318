"""Bad input: the server answers correctly, explains itself, and keeps serving."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import inline, last_details, open_doc, status
from .test_completion import items_of

pytestmark = pytest.mark.model


async def test_unknown_document(client: LanguageClient) -> None:
    uri = "file:///nowhere/never-opened.py"
    assert items_of(await inline(client, uri, 0, 0)) == []
    details = await last_details(client, uri)
    assert details["decision"] == "error"
    assert "not open" in details["reason"]


@pytest.mark.parametrize(
    ("line", "character"),
    [(0, 500), (40, 0), (10_000, 10_000)],
    ids=["past-eol", "past-eof", "far"],
)
async def test_positions_past_the_end(client: LanguageClient, line: int, character: int) -> None:
    uri = open_doc(client, "def add(a, b):\n    return a + b\n")
    result = items_of(await inline(client, uri, line, character))
    for item in result:
        assert item.range is not None
        assert item.range.start.line <= 2  # clamped into the document
    assert (await status(client))["state"] == "ready"


async def test_empty_document(client: LanguageClient) -> None:
    uri = open_doc(client, "")
    items_of(await inline(client, uri, 0, 0))
    details = await last_details(client, uri)
    assert details["decision"] in ("complete", "skip")


async def test_five_megabyte_one_line_file_does_not_stall(client: LanguageClient) -> None:
    text = "var a=" + ",".join(f"x{i}" for i in range(700_000)) + ";"
    assert len(text) > 5_000_000
    uri = open_doc(client, text, language="javascript", name="huge.min.js")
    items_of(await inline(client, uri, 0, len(text)))
    details = await last_details(client, uri)
    assert details["decision"] in ("complete", "skip")
    # A small document right after still completes normally.
    uri2 = open_doc(client, "def square(x):\n    return ")
    items_of(await inline(client, uri2, 1, 11))
    assert (await last_details(client, uri2))["decision"] in ("complete", "skip")


async def test_change_for_a_closed_document_is_ignored(client: LanguageClient) -> None:
    uri = open_doc(client, "x = 1\n")
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="y = 2\n")],
        )
    )
    assert (await status(client))["state"] == "ready"
    assert items_of(await inline(client, uri, 0, 0)) == []


async def test_nothing_tried_the_network(client: LanguageClient, netblock_log) -> None:  # type: ignore[no-untyped-def]
    assert (await status(client))["state"] == "ready"
    attempts = netblock_log.read_text() if netblock_log.exists() else ""
    assert attempts == "", f"the server tried to reach the network: {attempts}"
