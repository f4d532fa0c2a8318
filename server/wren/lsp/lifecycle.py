"""initialize / initialized / settings / shutdown, and loading the model in the background."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import uuid
from typing import Any, NoReturn

from lsprotocol import types
from pygls.uris import to_fs_path

from wren.config import parse_settings
from wren.context.documents import UTF8, UTF16, UTF32
from wren.errors import ModelLoadError
from wren.lsp.server import WrenServer

log = logging.getLogger(__name__)


def _settings_payload(raw: Any) -> Any:
    if isinstance(raw, dict) and "settings" in raw:
        return raw["settings"]
    return raw


def apply_settings(ls: WrenServer, raw: Any) -> None:
    settings, problems = parse_settings(_settings_payload(raw))
    if not ls.workspace_trusted and settings.verify.runCode:
        from dataclasses import replace

        settings = replace(settings, verify=replace(settings.verify, runCode=False))
        problems.append("Running code to verify fixes is off in Restricted Mode.")
    if not ls.workspace_trusted and settings.model.allowInsecureEndpoint:
        from dataclasses import replace

        settings = replace(settings, model=replace(settings.model, allowInsecureEndpoint=False))
        problems.append("Unencrypted remote model endpoints stay refused in Restricted Mode.")
    ls.settings = settings
    ls.report_problems(problems)
    if settings.verify.runCode:  # probe the sandbox once, off the event loop; it logs the level
        from wren.engine.actions.sandbox import isolation

        threading.Thread(target=isolation, name="wren-sandbox-probe", daemon=True).start()


def _model_key(ls: WrenServer) -> tuple[str, ...]:
    m = ls.settings.model
    return (m.path, m.device, m.quantize, m.adapter, *_remote_key(m))


def start_model_load(ls: WrenServer) -> None:
    """Load (or reload) the model on a thread; completions answer empty until it is ready."""
    key = _model_key(ls)
    if key == ls.model_key and ls.model_state.state in ("loading", "ready"):
        return
    ls.model_key = key
    threading.Thread(target=_load_model, args=(ls, key), name="wren-load", daemon=True).start()


def _load_model(ls: WrenServer, key: tuple[str, ...]) -> None:
    from wren.engine.completion import CompletionEngine
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model

    token = f"wren-load-{uuid.uuid4().hex[:8]}"
    progress_ok = _begin_progress(ls, token)

    def progress(message: str, percent: int | None) -> None:
        ls.set_model_state(state="loading", message=message, progress=percent)
        if progress_ok:
            ls.notify_threadsafe(
                types.PROGRESS,
                types.ProgressParams(
                    token=token,
                    value=types.WorkDoneProgressReport(message=message, percentage=percent),
                ),
            )

    with ls.load_lock:
        if ls.model_key != key:
            return  # superseded by a newer settings change
        ls.engine = None
        ls.set_model_state(
            state="loading", message="Loading the model", progress=0, model="", adapter=""
        )
        try:
            if ls.settings.model.endpoint:
                _load_remote(ls, key, token, progress_ok)
                return
            path, device, quantize, adapter_setting = key[:4]
            from wren.model.tune.adapters import apply_adapter, choose_adapter

            choice = choose_adapter(adapter_setting, ls.workspace_root, ls.workspace_trusted)
            loaded = load_model(
                path, device, quantize, progress=progress, lean_only=choice.path is None
            )
            if choice.path is not None:
                progress("Loading the tuned adapter", 90)
                apply_adapter(loaded, choice.path)
            if note := choice.note or loaded.adapter_note:
                ls.show_message_threadsafe(f"Wren: {note}", types.MessageType.Warning)
            backend = TransformersBackend(loaded)
            progress("Warming up", 95)
            backend.warm_up()
            backend.drop_caches()  # the warm-up's KV slot serves no document
        except ModelLoadError as err:
            log.error("model load failed: %s", err)
            ls.set_model_state(state="error", message=str(err), progress=None)
            ls.show_message_threadsafe(f"Wren: {err}", types.MessageType.Error)
            _end_progress(ls, token, progress_ok, "Model failed to load")
            return
        except Exception as err:  # anything else is still a load failure, not a crash
            log.exception("model load failed")
            msg = f"Wren could not load the model: {type(err).__name__}: {err}"
            ls.set_model_state(state="error", message=msg, progress=None)
            ls.show_message_threadsafe(msg, types.MessageType.Error)
            _end_progress(ls, token, progress_ok, "Model failed to load")
            return
        if ls.model_key != key:
            return
        ls.backend = backend
        ls.engine = CompletionEngine(backend, loaded.card)
        for doc_uri in list(ls.documents._docs):
            doc = ls.documents.get(doc_uri)
            if doc is not None:
                ls.engine.recent.update(doc.uri, doc.text, doc.language_id)
        cache_note = "from cache" if loaded.from_cache else "converted"
        log.info(
            "model %s ready on %s in %.1fs (%s; %s)",
            loaded.name,
            loaded.device,
            loaded.load_s,
            cache_note,
            ", ".join(f"{step} {secs:.2f}s" for step, secs in loaded.phases.items()),
        )
        ls.set_model_state(
            state="ready",
            model=loaded.name,
            adapter=loaded.adapter,
            device=f"{loaded.device} {loaded.dtype}",
            message=f"{loaded.name} ready ({loaded.load_s:.1f}s, {cache_note})",
            progress=None,
        )
        _end_progress(ls, token, progress_ok, "Model ready")


def _remote_key(m: Any) -> tuple[str, ...]:
    if not m.endpoint:
        return ()
    return (m.endpoint, m.servedModel, m.endpointCard, m.apiKeyEnv, str(m.allowInsecureEndpoint))


def _load_remote(ls: WrenServer, key: tuple[str, ...], token: str, progress_ok: bool) -> None:
    """An inference server instead of an in-process model (wren/remote/, no torch loaded)."""
    from wren.engine.completion import CompletionEngine
    from wren.remote import RemoteBackend

    backend = RemoteBackend.connect(ls.settings.model)  # ModelLoadError: the caller reports it
    if ls.model_key != key:
        return
    ls.backend = backend
    ls.engine = CompletionEngine(backend, backend.card)
    for doc_uri in list(ls.documents._docs):
        if (doc := ls.documents.get(doc_uri)) is not None:
            ls.engine.recent.update(doc.uri, doc.text, doc.language_id)
    where = f"remote: {backend.ep.url} ({backend.name})"
    log.info("%s ready, card %s, tokens %s", where, backend.card.family, backend.tokens.mode)
    ls.set_model_state(
        state="ready", model=backend.name, device=where, message=where, progress=None
    )
    _end_progress(ls, token, progress_ok, "Model ready")


def _begin_progress(ls: WrenServer, token: str) -> bool:
    caps = ls.client_capabilities
    if not (caps.window and caps.window.work_done_progress):
        return False
    loop = ls.loop
    if loop is None:
        return False
    fut = asyncio.run_coroutine_threadsafe(_create_progress(ls, token), loop)
    try:
        return bool(fut.result(timeout=5))
    except Exception:
        return False


async def _create_progress(ls: WrenServer, token: str) -> bool:
    try:
        await ls.work_done_progress.create_async(token)
    except Exception:
        return False
    ls.work_done_progress.begin(
        token, types.WorkDoneProgressBegin(title="Wren", message="Loading the model", percentage=0)
    )
    return True


def _end_progress(ls: WrenServer, token: str, ok: bool, message: str) -> None:
    if ok:
        ls.notify_threadsafe(
            types.PROGRESS,
            types.ProgressParams(token=token, value=types.WorkDoneProgressEnd(message=message)),
        )


def register(server: WrenServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: WrenServer, params: types.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        options = params.initialization_options or {}
        if isinstance(options, dict):
            ls.workspace_trusted = bool(options.get("workspaceTrusted", True))
            apply_settings(ls, options.get("settings", {}))
        encoding = str(ls.protocol.workspace.position_encoding or UTF16)
        ls.encoding = encoding if encoding in (UTF8, UTF16, UTF32) else UTF16
        root = params.root_uri or (
            params.workspace_folders[0].uri if params.workspace_folders else None
        )
        ls.workspace_root = to_fs_path(root) if root else None

    @server.feature(types.INITIALIZED)
    def initialized(ls: WrenServer, params: types.InitializedParams) -> None:
        start_model_load(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(
        ls: WrenServer, params: types.DidChangeConfigurationParams
    ) -> None:
        apply_settings(ls, params.settings)
        if ls.engine is not None:
            ls.engine.cache.clear()
        start_model_load(ls)  # no-op unless wren.model.* changed

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: WrenServer, params: Any) -> None:
        ls.shutdown_received = True
        ls.scheduler.close()

    @server.feature(types.EXIT)
    def exit_(ls: WrenServer, params: Any) -> None:
        exit_process(ls)


EXIT_GRACE_S = 0.5  # how long a running generation / sandboxed run gets to stop on exit


def exit_process(ls: WrenServer) -> NoReturn:
    """End the process at once: status 0 after `shutdown`, 1 without it (LSP).

    pygls would report 0 either way, and on `exit` it waits for its stdin reader thread, which
    blocks until the client closes the pipe. Running work is cancelled and gets EXIT_GRACE_S
    to stop, so a sandboxed verification run kills its child; then the process ends without
    waiting for threads that may be inside a forward pass.
    """
    ls.scheduler.close()
    if not ls.scheduler.wait_idle(EXIT_GRACE_S):
        log.warning("exiting while a generation is still stopping")
    code = 0 if ls.shutdown_received else 1
    log.info("exiting with status %d", code)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)
