"""`wren/documentText`: the server's copy of a document, so tests can compare it with the client's.

Read-only and cheap: it answers from the document store on the event loop and never touches
the model. Tests use it to check that incremental sync keeps the text identical.
"""

from __future__ import annotations

from typing import Any

from wren.lsp.server import WrenServer

DOCUMENT_TEXT = "wren/documentText"


def register(server: WrenServer) -> None:
    @server.feature(DOCUMENT_TEXT)
    def document_text(ls: WrenServer, params: Any) -> dict[str, Any] | None:
        """`{uri}` or `{textDocument: {uri}}` -> `{uri, text, version, languageId}` or null."""
        uri = _uri(params)
        doc = ls.documents.get(uri) if uri else None
        if doc is None:
            return None
        return {"uri": uri, "text": doc.text, "version": doc.version, "languageId": doc.language_id}


def _uri(params: Any) -> str:
    def field(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    uri = field(params, "uri")
    if uri is None:
        td = field(params, "textDocument")
        uri = field(td, "uri") if td is not None else None
    return uri if isinstance(uri, str) else ""
