"""Text synchronisation (incremental) into Wren's own document store."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path

from wren.context import tags
from wren.context.syntax import language_for
from wren.engine.scheduler import BACKGROUND, BATCH
from wren.errors import GenerationCancelled
from wren.lsp.server import WrenServer
from wren.types import CancelToken, Snapshot

log = logging.getLogger(__name__)

MAX_NEIGHBOR_CHARS = 500_000  # huge/minified files are not offered as context to others


def register(server: WrenServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: WrenServer, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        ls.documents.open(td.uri, td.text, td.version, td.language_id)
        if ls.engine is not None and len(td.text) <= MAX_NEIGHBOR_CHARS:
            ls.engine.recent.update(td.uri, td.text, td.language_id)
        tell_tags_index(ls, td.uri, td.language_id, td.text)
        schedule_prefill(ls, td.uri, len(td.text))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: WrenServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.documents.get(uri)
        if doc is None:
            log.warning("didChange for %s, which is not open: ignored", uri)
            return
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start = (change.range.start.line, change.range.start.character)
                end = (change.range.end.line, change.range.end.character)
                doc.apply_change(start, end, change.text, ls.encoding)
            else:
                doc.apply_change(None, None, change.text)
        doc.version = params.text_document.version
        if ls.engine is not None and len(doc.text) <= MAX_NEIGHBOR_CHARS:
            ls.engine.recent.update(uri, doc.text, doc.language_id)
        tell_tags_index(ls, uri, doc.language_id, doc.text)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: WrenServer, params: types.DidSaveTextDocumentParams) -> None:
        doc = ls.documents.get(params.text_document.uri)
        if doc is not None:
            tell_tags_index(ls, params.text_document.uri, doc.language_id, None)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: WrenServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.documents.get(uri)
        if doc is not None:  # the file on disk is what counts again (unsaved edits are gone)
            tell_tags_index(ls, uri, doc.language_id, None)
        ls.documents.close(uri)
        ls.last_details.pop(uri, None)
        if ls.engine is not None:
            ls.engine.cache.forget(uri)
            ls.engine.recent.remove(uri)
        backend = ls.backend
        if backend is not None and hasattr(backend, "drop_slot"):
            # On the inference thread: the backend's lock may be held by a generation now.
            ls.scheduler.submit(lambda _c: backend.drop_slot(uri), BATCH, key=f"drop:{uri}")

    @server.feature("wren/cursorMoved")
    def cursor_moved(ls: WrenServer, params: Any) -> None:
        """The cursor rests somewhere: prefill the KV cache for a completion there."""
        uri, position = _cursor_params(params)
        doc = ls.documents.get(uri) if uri else None
        if doc is None or position is None:
            return
        schedule_prefill(ls, uri, doc.offset_at(position[0], position[1], ls.encoding))


def _cursor_params(params: Any) -> tuple[str, tuple[int, int] | None]:
    """(uri, (line, character)) from `{textDocument: {uri}, position: {line, character}}`."""
    td = getattr(params, "textDocument", None)
    pos = getattr(params, "position", None)
    uri = str(getattr(td, "uri", "") or "")
    try:
        return uri, (int(pos.line), int(pos.character))  # type: ignore[union-attr]
    except (AttributeError, TypeError, ValueError):
        return uri, None


def tell_tags_index(ls: WrenServer, uri: str, language_id: str, text: str | None) -> None:
    """The workspace's tags index (context/tags.py): started when a document of a language
    that uses it opens or changes, and told about edits (`text`) and saves (None: read the
    file). Git lists the files only in a trusted workspace."""
    root, path = ls.workspace_root, fs_path(uri)
    if not root or not path:
        return
    context = ls.settings.context
    indexed = language_id != "python" and language_for(language_id) is not None
    if indexed and context.enabled and context.symbols_on(language_id):
        tags.index_for(root, use_git=ls.workspace_trusted)
    tags.file_changed(root, path, text)


def schedule_prefill(ls: WrenServer, uri: str, offset: int) -> None:
    """Background job: run the prompt for a cursor at `offset` into the document's KV slot.

    Lowest priority, one per document (a newer one supersedes it), cancelled by any real
    request (`Scheduler.cancel_background`). On didOpen the cursor is not known: the end of
    the document is used, which covers every cursor of a file that fits the prompt window.
    """
    engine, doc = ls.engine, ls.documents.get(uri)
    if engine is None or doc is None or not ls.settings.language_enabled(doc.language_id):
        return
    snapshot = Snapshot(
        uri=uri,
        text=doc.text,
        offset=min(offset, len(doc.text)),
        language_id=doc.language_id,
        version=doc.version,
        path=fs_path(uri),
    )
    settings, root = ls.settings, ls.workspace_root

    def job(cancel: CancelToken) -> int:
        return engine.prefill(snapshot, settings, cancel, root)

    future, _ = ls.scheduler.submit(job, BACKGROUND, key=f"prefill:{uri}")

    def done(future: Future[int]) -> None:
        if future.cancelled() or isinstance(future.exception(), GenerationCancelled):
            return
        if (err := future.exception()) is not None:
            log.info("background prefill failed: %s", err)
        else:
            ls.stats.prefills += 1

    future.add_done_callback(done)


def fs_path(uri: str) -> str:
    """A file-system path for file: URIs; "" for untitled:, notebook cells and the like."""
    if not uri.startswith("file:"):
        return ""
    return to_fs_path(uri) or ""
