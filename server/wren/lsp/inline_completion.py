"""textDocument/inlineCompletion: snapshot, schedule on the inference worker, answer."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from lsprotocol import types

from wren.engine.completion import CompletionDetails, CompletionOutcome
from wren.engine.scheduler import INTERACTIVE
from wren.errors import GenerationCancelled, GenerationError
from wren.lsp.server import WrenServer
from wren.lsp.sync import fs_path, schedule_prefill
from wren.types import Snapshot

log = logging.getLogger(__name__)

EMPTY = types.InlineCompletionList(items=[])
MAX_ADAPTIVE_DEBOUNCE_S = 0.08


def adaptive_debounce(ls: WrenServer, uri: str) -> float:
    """Wait a little when the user is typing fast, so a burst costs one generation.

    Tracks an exponential average of the gap between requests for the document; while gaps
    are short (fast typing), wait about half a gap (capped); after a pause, don't wait.
    """
    now = time.monotonic()
    last = ls.stats.last_request_at.get(uri)
    ls.stats.last_request_at[uri] = now
    if last is None:
        return 0.0
    gap = now - last
    avg = ls.stats.typing_interval.get(uri, gap)
    avg = 0.7 * avg + 0.3 * gap
    ls.stats.typing_interval[uri] = avg
    if gap > 0.4 or avg > 0.4:
        return 0.0
    return min(MAX_ADAPTIVE_DEBOUNCE_S, avg * 0.5)


def register(server: WrenServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: WrenServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        uri = params.text_document.uri
        pos = params.position
        details = CompletionDetails(
            uri=uri,
            line=pos.line,
            character=pos.character,
            version=-1,
            request_id=uuid.uuid4().hex[:8],
        )
        ls.last_details[uri] = details
        doc = ls.documents.get(uri)
        if doc is None:
            details.decision = "error"
            details.reason = "This document is not open in the server (no didOpen was received)."
            return EMPTY
        details.version = doc.version
        if not ls.settings.language_enabled(doc.language_id):
            details.decision = "disabled"
            details.reason = f"Completions are disabled for {doc.language_id} (`wren.enable`)."
            return EMPTY
        engine = ls.engine
        if engine is None:
            details.decision = "not-ready"
            details.reason = f"The model is not ready: {ls.model_state.message}"
            return EMPTY
        offset = doc.offset_at(pos.line, pos.character, ls.encoding)
        snapshot = Snapshot(
            uri=uri,
            text=doc.text,
            offset=offset,
            language_id=doc.language_id,
            version=doc.version,
            path=fs_path(uri),
        )
        # The answer refers to the text it was made for: the document may change while the
        # model runs, so its position comes from this snapshot, never the live document.
        line, character = doc.position_at(offset, ls.encoding)
        cursor = types.Position(line=line, character=character)
        ls.scheduler.cancel_background()
        delay = adaptive_debounce(ls, uri)
        if delay:
            details.timings_ms["debounce"] = delay * 1000
        settings, root = ls.settings, ls.workspace_root

        def job(cancel: object) -> CompletionOutcome:
            return engine.complete(snapshot, settings, cancel, details, root)  # type: ignore[arg-type]

        ls.stats.newest_request[uri] = details.request_id
        if delay:
            await asyncio.sleep(delay)
            if ls.stats.newest_request.get(uri) != details.request_id:
                # A newer request for this document came while this one waited, and its shorter
                # wait may have let it start first: submitting now would supersede the newest.
                details.decision, details.reason = "cancelled", "superseded by a newer request"
                ls.stats.cancelled += 1
                raise asyncio.CancelledError(details.reason)
        future, cancel = ls.scheduler.submit(job, INTERACTIVE, key=f"complete:{uri}")
        ls.stats.completions += 1
        try:
            outcome = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.cancel("cancelled by the editor")
            details.decision, details.reason = "cancelled", "cancelled by the editor"
            ls.stats.cancelled += 1
            # The editor cancels because the user typed on at this place. Keep computing its
            # prompt in the background until the next request comes (that request cancels
            # background work and goes on from where it stopped): otherwise a cold place in a
            # large file advances only in the moments between a request and the next key,
            # and the first answer there still owes most of its prefill.
            schedule_prefill(ls, uri, offset)
            raise
        except GenerationCancelled as err:
            details.decision, details.reason = "cancelled", str(err)
            ls.stats.cancelled += 1
            raise asyncio.CancelledError(str(err)) from err
        except GenerationError as err:
            details.decision, details.reason = "error", str(err)
            ls.stats.errors += 1
            ls.report_problems([f"Wren: {err}"])
            return EMPTY
        except Exception as err:  # a failing stage contributes nothing; the server keeps serving
            log.exception("completion failed")
            details.decision, details.reason = "error", f"{type(err).__name__}: {err}"
            ls.stats.errors += 1
            return EMPTY
        log.info(
            "completion %s %s %s in %s",
            details.request_id,
            details.decision,
            details.mode,
            {k: round(v) for k, v in details.timings_ms.items()},
        )
        if not outcome.text:
            return EMPTY
        if details.source == "cache":
            ls.stats.from_cache += 1
        item = types.InlineCompletionItem(
            insert_text=outcome.text, range=types.Range(start=cursor, end=cursor)
        )
        return types.InlineCompletionList(items=[item])
