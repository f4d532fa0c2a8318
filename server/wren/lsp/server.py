"""The Wren language server object: state shared by the feature modules.

This package is the only one that imports pygls. Feature handlers live one per file
(`lifecycle`, `sync`, `inline_completion`, `details`, `actions`) and register themselves
on the server created by `wren.lsp.app.create_server`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from wren import __version__
from wren.config import Settings
from wren.context.documents import UTF16, DocumentStore
from wren.engine.completion import CompletionDetails, CompletionEngine
from wren.engine.scheduler import INTERACTIVE, Scheduler

log = logging.getLogger(__name__)


class WrenProtocol(LanguageServerProtocol):
    """pygls's protocol with text sync left to Wren's own document store.

    pygls splits lines with `str.splitlines`, which also breaks at form feeds and U+2028;
    LSP does not. `lsp.sync` keeps the documents instead.
    """

    # Every request gets exactly one response. pygls drops two kinds of request silently:
    # one whose params do not deserialize, and any request after `shutdown`.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_cancel: dict[Any, list[Callable[[], None]]] = {}

    def on_cancel_request(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when the client sends $/cancelRequest for the request being handled.

        pygls can only cancel a request whose handler has not started; commands run nested
        inside `workspace/executeCommand`, so their work is stopped through this hook instead.
        Returns a function that removes the callback (call it when the request ends).
        """
        msg_id = self.msg_id
        if msg_id is None:
            return lambda: None
        callbacks = self._on_cancel.setdefault(msg_id, [])
        callbacks.append(callback)

        def remove() -> None:
            registered = self._on_cancel.get(msg_id, [])
            if callback in registered:
                registered.remove(callback)
            if not registered:
                self._on_cancel.pop(msg_id, None)

        return remove

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        for callback in self._on_cancel.pop(msg_id, []):
            try:
                callback()
            except Exception:  # one failing callback must not stop the others
                log.exception("cancel callback for request %s failed", msg_id)
        super()._handle_cancel_notification(msg_id)

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            if "id" in data and "method" in data:  # a request: answer it with the error
                return _UnreadableRequest(data["id"], str(data["method"]), err)
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _UnreadableRequest):
            log.warning("request %s (%s) has invalid params", message.id, message.method)
            self._send_response(message.id, error=message.error.to_response_error())
            return
        is_request = getattr(message, "id", None) is not None and hasattr(message, "method")
        if self._shutdown and is_request and message.method != types.EXIT:
            error = JsonRpcInvalidRequest("The server is shutting down.")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


@dataclass
class _UnreadableRequest:
    """A request whose params failed to deserialize; it is answered with `error`."""

    id: Any
    method: str
    error: JsonRpcException
    jsonrpc: str = "2.0"


@dataclass
class ModelState:
    state: str = "loading"  # loading | ready | error | disabled
    model: str = ""
    device: str = ""
    message: str = "Starting"
    progress: int | None = None
    adapter: str = ""  # the `wren tune` adapter the model is served with, described; "" = none

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "model": self.model,
            "adapter": self.adapter,
            "device": self.device,
            "message": self.message,
            "progress": self.progress,
        }


@dataclass
class RequestStats:
    """Counters for tests and benchmarks (exposed through `wren.server.status`)."""

    completions: int = 0
    from_cache: int = 0
    cancelled: int = 0
    errors: int = 0
    prefills: int = 0  # background prefills that finished
    last_request_at: dict[str, float] = field(default_factory=dict)
    typing_interval: dict[str, float] = field(default_factory=dict)
    newest_request: dict[str, str] = field(default_factory=dict)  # uri -> newest completion id


class WrenServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("wren", __version__, protocol_cls=WrenProtocol)
        self.settings = Settings()
        self.reported_problems: set[str] = set()
        self.workspace_trusted = True
        self.workspace_root: str | None = None
        self.encoding = UTF16
        self.documents = DocumentStore()
        self.scheduler = Scheduler(before_job=_threads_for_job)
        self.engine: CompletionEngine | None = None
        self.backend: Any = None
        self.model_state = ModelState()
        self.model_key: tuple[str, ...] | None = None
        self.load_lock = threading.Lock()
        self.last_details: dict[str, CompletionDetails] = {}
        self.stats = RequestStats()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutdown_received = False  # `exit` then ends the process with status 0, else 1

    @property
    def wren_protocol(self) -> WrenProtocol:
        """The protocol object, typed as Wren's subclass."""
        assert isinstance(self.protocol, WrenProtocol)
        return self.protocol

    # -- notifications that may be sent from worker threads ------------------------------

    def notify_threadsafe(self, method: str, payload: Any) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self.protocol.notify, method, payload)

    def set_model_state(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.model_state, key, value)
        self.notify_threadsafe("wren/status", self.model_state.to_json())

    def show_message_threadsafe(self, message: str, kind: types.MessageType) -> None:
        params = types.ShowMessageParams(type=kind, message=message)
        self.notify_threadsafe(types.WINDOW_SHOW_MESSAGE, params)

    def report_problems(self, problems: list[str]) -> None:
        """Each settings problem is shown once per session."""
        for problem in problems:
            if problem not in self.reported_problems:
                self.reported_problems.add(problem)
                log.warning(problem)
                self.window_show_message(
                    types.ShowMessageParams(type=types.MessageType.Warning, message=problem)
                )


def _threads_for_job(priority: int) -> None:
    """Interactive jobs get every core, batch and background work half (model/threads.py).
    Only when torch is in use: a remote backend never loads it."""
    if "torch" in sys.modules:
        from wren.model.threads import use_threads

        use_threads(interactive=priority == INTERACTIVE)
