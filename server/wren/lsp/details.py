"""`wren/lastCompletion`: what the server decided for the last request (Why no completion?)."""

from __future__ import annotations

from typing import Any

from wren.engine.actions.sandbox import verification_status
from wren.lsp.server import WrenServer


def register(server: WrenServer) -> None:
    @server.feature("wren/lastCompletion")
    def last_completion(ls: WrenServer, params: Any) -> dict[str, Any] | None:
        uri = _uri(params)
        details = ls.last_details.get(uri) if uri else None
        if details is None and ls.last_details and not uri:
            details = list(ls.last_details.values())[-1]
        if details is None:
            return None
        payload = details.to_json()
        payload["model"] = ls.model_state.to_json()
        return payload

    @server.command("wren.server.status")
    def status(ls: WrenServer, *args: Any) -> dict[str, Any]:
        payload = ls.model_state.to_json()
        payload["stats"] = {
            "completions": ls.stats.completions,
            "from_cache": ls.stats.from_cache,
            "cancelled": ls.stats.cancelled,
            "errors": ls.stats.errors,
            "prefills": ls.stats.prefills,
            "max_concurrent_generations": getattr(ls.backend, "max_forward_in_flight", 0),
            "open_documents": len(ls.documents),
            "busy": ls.scheduler.busy,
        }
        payload["verification"] = verification_status(ls.settings.verify.runCode)
        return payload


def _uri(params: Any) -> str:
    td = getattr(params, "textDocument", None) or getattr(params, "text_document", None)
    if td is None and isinstance(params, dict):
        td = params.get("textDocument")
    if td is None:
        return ""
    return str(getattr(td, "uri", None) or (td.get("uri") if isinstance(td, dict) else ""))
