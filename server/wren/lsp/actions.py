"""Explain / Fix / Generate: code actions, the `wren.server.*` commands, streaming, progress.

Handlers only translate: LSP positions <-> offsets, settings -> `VerifyOptions`, engine outcomes
-> `WorkspaceEdit`. The work runs on the inference worker with BATCH priority (interactive
completions are served in between), and is cancelled by `$/cancelRequest`. The server never
applies an edit: it returns one, and the client shows a diff the user accepts or rejects.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from lsprotocol import types
from lsprotocol.converters import get_converter

from wren.context.documents import Document
from wren.engine.actions.explain import ExplainOutcome, ExplainRequest, explain
from wren.engine.actions.fix import FixRequest, fix
from wren.engine.actions.generate import GenerateRequest, generate
from wren.engine.actions.llm import ActionModel
from wren.engine.actions.loop import VerifyOptions
from wren.engine.actions.outcome import EditOutcome
from wren.engine.actions.regions import is_comment_line
from wren.engine.scheduler import BATCH
from wren.errors import GenerationCancelled, GenerationError
from wren.lsp.server import WrenServer
from wren.lsp.sync import fs_path
from wren.types import CancelToken

log = logging.getLogger(__name__)

T = TypeVar("T")

# The workDoneToken of the executeCommand request being handled (pygls passes commands only
# their arguments; a wrapper around its executeCommand handler records the token here).
_work_done_token: contextvars.ContextVar[str | int | None] = contextvars.ContextVar(
    "wren_work_done_token", default=None
)

MAX_FIX_ACTIONS = 3
MAX_REPAIR_ROUNDS = 5  # each round is a full generation: bound the wait whatever the setting
_CONVERTER = get_converter()


# -- small helpers --------------------------------------------------------------------------


def _field(obj: Any, *names: str) -> Any:
    """A field of a JSON object that pygls may hand over as a dict or as a namespace."""
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if not isinstance(obj, dict) and hasattr(obj, name):
            return getattr(obj, name)
    return None


def _position(obj: Any) -> tuple[int, int] | None:
    line, character = _field(obj, "line"), _field(obj, "character")
    if isinstance(line, int) and isinstance(character, int):
        return line, character
    return None


def _range(obj: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
    start, end = _position(_field(obj, "start")), _position(_field(obj, "end"))
    if start is None or end is None:
        return None
    return (start, end) if start <= end else (end, start)


def _first_arg(args: tuple[Any, ...]) -> Any:
    """Commands take one object (`[{uri, ...}]`); also accept `[uri, range]` (code actions)."""
    if not args:
        return {}
    first = args[0]
    if isinstance(first, str):
        out: dict[str, Any] = {"uri": first}
        if len(args) > 1:
            out["range"] = args[1]
        return out
    return first


def _display_name(uri: str) -> str:
    path = fs_path(uri)
    if path:
        return os.path.basename(path)
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _lsp_range(doc: Document, start: int, end: int, encoding: str) -> types.Range:
    a = doc.position_at(start, encoding)
    b = doc.position_at(end, encoding)
    return types.Range(
        start=types.Position(line=a[0], character=a[1]),
        end=types.Position(line=b[0], character=b[1]),
    )


def verify_options(ls: WrenServer, path: str, test_code: str = "") -> VerifyOptions:
    """Settings -> options. Running code needs both the setting and a trusted workspace."""
    v = ls.settings.verify
    return VerifyOptions(
        run_code=bool(v.runCode and ls.workspace_trusted),
        timeout_s=float(max(1, v.timeoutSeconds)),
        max_retries=min(MAX_REPAIR_ROUNDS, max(0, v.maxRounds)),
        test_code=test_code if ls.workspace_trusted else "",
        extra_paths=(os.path.dirname(path),) if path else (),
    )


def _edit_result(
    ls: WrenServer, uri: str, doc: Document, version: int, outcome: EditOutcome
) -> dict[str, Any]:
    edit_json: Any = None
    if outcome.edit is not None:
        edit = outcome.edit
        text_edit = types.TextEdit(
            range=_lsp_range(doc, edit.start, edit.end, ls.encoding), new_text=edit.new_text
        )
        workspace_edit = types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=uri, version=version
                    ),
                    edits=[text_edit],
                )
            ]
        )
        edit_json = _CONVERTER.unstructure(workspace_edit)
    return {
        "edit": edit_json,
        "verified": outcome.verified,
        "reason": outcome.reason,
        "rounds": outcome.rounds,
        "title": outcome.title,
    }


def _no_edit(reason: str, title: str) -> dict[str, Any]:
    return {"edit": None, "verified": False, "reason": reason, "rounds": 0, "title": title}


@dataclass
class _Target:
    uri: str
    doc: Document  # a snapshot: the open document may change while the model works
    text: str
    version: int
    language_id: str
    path: str


def _target(ls: WrenServer, arg: Any) -> _Target | str:
    uri = _field(arg, "uri")
    if not isinstance(uri, str) or not uri:
        return "The command needs a document URI."
    doc = ls.documents.get(uri)
    if doc is None:
        return "This document is not open in the server."
    if not ls.settings.language_enabled(doc.language_id):
        return f"Wren is disabled for {doc.language_id} (`wren.enable`)."
    # A private copy: positions of the answer refer to this version, even if the user types on.
    snapshot = Document(uri, doc.text, doc.version, doc.language_id)
    return _Target(uri, snapshot, doc.text, doc.version, doc.language_id, fs_path(uri))


def _model_problem(ls: WrenServer) -> str | None:
    if ls.backend is None or ls.model_state.state != "ready":
        return f"The model is not ready yet ({ls.model_state.message})."
    return None


class _Progress:
    """$/progress on the client's workDoneToken, when it gave one."""

    def __init__(self, ls: WrenServer, title: str) -> None:
        self.ls = ls
        self.token = _work_done_token.get()
        # Cancelled by pygls on window/workDoneProgress/cancel for this token.
        self.cancelled: Future[Any] = Future()
        if self.token is not None:
            tokens = getattr(getattr(ls, "work_done_progress", None), "tokens", None)
            if isinstance(tokens, dict):
                tokens[self.token] = self.cancelled
            self._send(types.WorkDoneProgressBegin(title=title, cancellable=True))

    def _send(self, value: Any) -> None:
        if self.token is not None:
            self.ls.notify_threadsafe(
                types.PROGRESS, types.ProgressParams(token=self.token, value=value)
            )

    def report(self, message: str) -> None:
        self._send(types.WorkDoneProgressReport(message=message))

    def end(self, message: str) -> None:
        self._send(types.WorkDoneProgressEnd(message=message))
        tokens = getattr(getattr(self.ls, "work_done_progress", None), "tokens", None)
        if isinstance(tokens, dict) and tokens.get(self.token) is self.cancelled:
            del tokens[self.token]


async def _run_batch(
    ls: WrenServer, key: str, job: Callable[[CancelToken], T], progress: _Progress
) -> T:
    """Run `job` on the inference worker (BATCH priority).

    It is cancelled with the request ($/cancelRequest) or its progress
    (window/workDoneProgress/cancel); a newer request with the same key supersedes it.
    """
    future, cancel = ls.scheduler.submit(job, BATCH, key=key)

    def on_done(fut: Future[Any]) -> None:
        if fut.cancelled():
            cancel.cancel("cancelled by the editor")

    forget = ls.wren_protocol.on_cancel_request(lambda: cancel.cancel("cancelled by the editor"))
    progress.cancelled.add_done_callback(on_done)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        cancel.cancel("cancelled by the editor")
        raise
    finally:
        forget()


def _action_model(ls: WrenServer) -> ActionModel:
    return ActionModel.for_backend(ls.backend)


# -- handlers -------------------------------------------------------------------------------


async def explain_command(ls: WrenServer, arg: Any) -> dict[str, Any]:
    chunk_id = _field(arg, "id")
    chunk_id = chunk_id if isinstance(chunk_id, str) and chunk_id else uuid.uuid4().hex
    target = _target(ls, arg)

    def refuse(reason: str, range_: types.Range | None = None) -> dict[str, Any]:
        markdown = f"**Wren could not explain this.** {reason}"
        ls.protocol.notify(
            "wren/explainChunk", {"id": chunk_id, "markdown": markdown, "done": True}
        )
        ls.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"Wren: {reason}")
        )
        payload = _CONVERTER.unstructure(range_) if range_ is not None else None
        return {"markdown": markdown, "range": payload, "reason": reason, "ok": False}

    if isinstance(target, str):
        return refuse(target)
    problem = _model_problem(ls)
    if problem is not None:
        return refuse(problem)
    rng = _range(_field(arg, "range"))
    doc, text = target.doc, target.text
    if rng is None:
        start = end = 0
    else:
        start = doc.offset_at(*rng[0], ls.encoding)
        end = doc.offset_at(*rng[1], ls.encoding)
    request = ExplainRequest(text, target.language_id, start, end, _display_name(target.uri))
    progress = _Progress(ls, "Wren: explaining")

    def on_markdown(markdown: str) -> None:
        # An unchecked draft: the client marks it so until the checked text replaces it.
        ls.notify_threadsafe(
            "wren/explainChunk",
            {"id": chunk_id, "markdown": markdown, "done": False, "checked": False},
        )

    model = _action_model(ls)
    style = ls.settings.explain.style

    def job(cancel: CancelToken) -> ExplainOutcome:
        return explain(model, request, cancel, on_markdown, style=style)

    try:
        outcome = await _run_batch(ls, f"explain:{target.uri}", job, progress)
    except GenerationCancelled as err:
        # The user (or a newer request) stopped it: close the stream, no warning popup.
        progress.end("Cancelled")
        markdown = f"_Cancelled ({err})._"
        ls.protocol.notify(
            "wren/explainChunk", {"id": chunk_id, "markdown": markdown, "done": True}
        )
        return {"markdown": markdown, "range": None, "reason": f"cancelled: {err}", "ok": False}
    except GenerationError as err:
        progress.end("Failed")
        return refuse(str(err))
    except asyncio.CancelledError:
        progress.end("Cancelled")
        raise
    except Exception as err:  # a bug in a stage: report it, keep serving
        log.exception("explain failed")
        progress.end("Failed")
        return refuse(f"Explain failed: {type(err).__name__}: {err}")
    range_ = _lsp_range(doc, outcome.start, outcome.end, ls.encoding) if outcome.ok else None
    if not outcome.ok:
        progress.end(outcome.reason)
        return refuse(outcome.reason, range_)
    progress.end("Done")
    ls.protocol.notify(
        "wren/explainChunk",
        {"id": chunk_id, "markdown": outcome.markdown, "done": True, "checked": True},
    )
    log.info(
        "explain %s lines %d-%d (%s): %d model call(s) in %.1fs (check %.3fs), %d sentence(s) "
        "removed%s",
        target.uri,
        outcome.first_line,
        outcome.last_line,
        outcome.style,
        outcome.model_calls,
        outcome.seconds,
        outcome.check_s,
        len(outcome.removed),
        "" if outcome.reliable else ", not reliable",
    )
    for removed in outcome.removed:
        log.info("explain removed %r: %s", removed["text"][:160], removed["reason"])
    return {
        "markdown": outcome.markdown,
        "range": _CONVERTER.unstructure(range_),
        "truncated": outcome.truncated,
        "ok": True,
        "checked": True,
        "reliable": outcome.reliable,
        "style": outcome.style,
        "removed": outcome.removed,
        "filled": outcome.filled,
    }


async def _edit_command(
    ls: WrenServer,
    arg: Any,
    kind: str,
    make_job: Callable[[_Target, ActionModel, VerifyOptions], Callable[[CancelToken], EditOutcome]],
) -> dict[str, Any]:
    title = "Fix" if kind == "fix" else "Generate"
    target = _target(ls, arg)
    if isinstance(target, str):
        return _no_edit(target, title)
    problem = _model_problem(ls)
    if problem is not None:
        return _no_edit(problem, title)
    test_code = _field(arg, "test")
    options = verify_options(ls, target.path, test_code if isinstance(test_code, str) else "")
    progress = _Progress(ls, f"Wren: {'fixing' if kind == 'fix' else 'generating'}")
    job = make_job(target, _action_model(ls), options)
    try:
        outcome = await _run_batch(ls, f"{kind}:{target.uri}", job, progress)
    except GenerationCancelled as err:
        progress.end("Cancelled")
        return _no_edit(f"cancelled: {err}", title)
    except GenerationError as err:
        progress.end("Failed")
        return _no_edit(str(err), title)
    except asyncio.CancelledError:
        progress.end("Cancelled")
        raise
    except Exception as err:  # a bug in a stage: report it, keep serving
        log.exception("%s failed", kind)
        progress.end("Failed")
        return _no_edit(f"{title} failed: {type(err).__name__}: {err}", title)
    progress.end(
        ("Verified" if outcome.verified else "Not verified")
        if outcome.edit
        else "Nothing to propose"
    )
    log.info(
        "%s %s: edit=%s verified=%s rounds=%d calls=%d reason=%s",
        kind,
        target.uri,
        outcome.edit is not None,
        outcome.verified,
        outcome.rounds,
        outcome.model_calls,
        outcome.reason,
    )
    return _edit_result(ls, target.uri, target.doc, target.version, outcome)


async def fix_command(ls: WrenServer, arg: Any) -> dict[str, Any]:
    def make_job(
        target: _Target, model: ActionModel, options: VerifyOptions
    ) -> Callable[[CancelToken], EditOutcome]:
        rng = _range(_field(arg, "range"))
        doc = target.doc
        if rng is None:
            start = end = 0
        else:
            start = doc.offset_at(*rng[0], ls.encoding)
            end = doc.offset_at(*rng[1], ls.encoding)
        diagnostic = _field(arg, "diagnostic")
        problems: tuple[str, ...] = ()
        if isinstance(diagnostic, str) and diagnostic.strip():
            problems = (diagnostic,)
        elif isinstance(diagnostic, list):
            problems = tuple(str(d) for d in diagnostic if str(d).strip())
        request = FixRequest(target.text, target.language_id, start, end, problems, target.path)
        return lambda cancel: fix(model, request, options, cancel)

    return await _edit_command(ls, arg, "fix", make_job)


async def generate_command(ls: WrenServer, arg: Any) -> dict[str, Any]:
    def make_job(
        target: _Target, model: ActionModel, options: VerifyOptions
    ) -> Callable[[CancelToken], EditOutcome]:
        pos = _position(_field(arg, "position"))
        if pos is None:
            rng = _range(_field(arg, "range"))
            pos = rng[0] if rng is not None else (0, 0)
        offset = target.doc.offset_at(*pos, ls.encoding)
        request = GenerateRequest(target.text, target.language_id, offset, target.path)
        return lambda cancel: generate(model, request, options, cancel)

    return await _edit_command(ls, arg, "generate", make_job)


# -- code actions ---------------------------------------------------------------------------


def _wants(only: list[str] | None, kind: str) -> bool:
    if not only:
        return True
    return any(kind == k or kind.startswith(k + ".") or k == "" for k in only)


def _is_comment_line(doc: Document, line: int) -> bool:
    starts = doc.line_starts
    if line >= len(starts):
        return False
    return is_comment_line(doc.language_id, doc.text, line)


def code_actions(ls: WrenServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    doc = ls.documents.get(uri)
    if doc is None or not ls.settings.language_enabled(doc.language_id) or not doc.text.strip():
        return []
    only = [str(k) for k in params.context.only] if params.context.only else None
    rng = params.range
    range_json = _CONVERTER.unstructure(rng)
    actions: list[types.CodeAction] = []
    quickfix = str(types.CodeActionKind.QuickFix)
    if _wants(only, quickfix):
        for diag in params.context.diagnostics[:MAX_FIX_ACTIONS]:
            message = diag.message.split("\n")[0]
            short = message if len(message) <= 60 else message[:57] + "..."
            actions.append(
                types.CodeAction(
                    title=f"Wren: Fix ({short})"
                    if len(params.context.diagnostics) > 1
                    else "Wren: Fix",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diag],
                    command=types.Command(
                        title="Wren: Fix",
                        command="wren.fix",
                        arguments=[uri, _CONVERTER.unstructure(diag.range)],
                    ),
                )
            )
        if not params.context.diagnostics and rng.start != rng.end:
            actions.append(
                types.CodeAction(
                    title="Wren: Fix",
                    kind=types.CodeActionKind.QuickFix,
                    command=types.Command(
                        title="Wren: Fix", command="wren.fix", arguments=[uri, range_json]
                    ),
                )
            )
    if _wants(only, ""):
        actions.append(
            types.CodeAction(
                title="Wren: Explain",
                kind=types.CodeActionKind.Empty,
                command=types.Command(
                    title="Wren: Explain", command="wren.explain", arguments=[uri, range_json]
                ),
            )
        )
        if rng.start == rng.end and _is_comment_line(doc, rng.start.line):
            actions.append(
                types.CodeAction(
                    title="Wren: Generate code from this comment",
                    kind=types.CodeActionKind.Empty,
                    command=types.Command(
                        title="Wren: Generate", command="wren.generate", arguments=[]
                    ),
                )
            )
    return actions


# -- registration ---------------------------------------------------------------------------


def _record_work_done_tokens(server: WrenServer) -> None:
    """Wrap pygls's executeCommand so command handlers can see the request's workDoneToken."""
    fm = getattr(server.protocol, "fm", None)
    features = getattr(fm, "builtin_features", None)
    if not isinstance(features, dict):
        return
    original = features.get(types.WORKSPACE_EXECUTE_COMMAND)
    if original is None:
        return

    def execute_command(params: types.ExecuteCommandParams) -> Generator[Any, Any, Any]:
        _work_done_token.set(getattr(params, "work_done_token", None))
        return (yield from original(params))

    features[types.WORKSPACE_EXECUTE_COMMAND] = execute_command


def register(server: WrenServer) -> None:
    _record_work_done_tokens(server)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.Empty]
        ),
    )
    def code_action(ls: WrenServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        try:
            return code_actions(ls, params)
        except Exception:  # a failing provider contributes nothing
            log.exception("code actions failed")
            return []

    @server.command("wren.server.explain")
    async def explain_cmd(ls: WrenServer, *args: Any) -> dict[str, Any]:
        return await explain_command(ls, _first_arg(args))

    @server.command("wren.server.fix")
    async def fix_cmd(ls: WrenServer, *args: Any) -> dict[str, Any]:
        return await fix_command(ls, _first_arg(args))

    @server.command("wren.server.generate")
    async def generate_cmd(ls: WrenServer, *args: Any) -> dict[str, Any]:
        return await generate_command(ls, _first_arg(args))
