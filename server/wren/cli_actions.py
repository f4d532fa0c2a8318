"""`wren explain`, `wren fix`, `wren generate`: the action pipelines from the command line.

They run the same engine code as the language server. Nothing is written to FILE: explain
prints markdown, fix and generate print a unified diff (stdout) and the verdict (stderr).
Exit status: 0 = a verified edit (or an explanation), 1 = nothing to propose or unverified,
2 = bad input (unreadable file).
"""

from __future__ import annotations

import difflib
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from wren.cli import _language_from_suffix, _load_with_progress, _setup_logging, app, err_console
from wren.engine.actions.llm import ActionModel
from wren.engine.actions.loop import VerifyOptions
from wren.engine.actions.outcome import EditOutcome


def _read(file: Path) -> str:
    try:
        data = file.read_bytes()
    except OSError as err:
        err_console.print(f"[red]Cannot read {file}: {err}")
        raise typer.Exit(2) from err
    try:
        # newline="" semantics: keep "\r\n" as it is (CRLF files stay CRLF).
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        err_console.print(f"[red]{file} is not UTF-8 text (binary?): {err}")
        raise typer.Exit(2) from err


def _offset(text: str, line: int, column: int = 0) -> int:
    from wren.context.documents import UTF32, Document

    doc = Document("file", text)
    return doc.offset_at(max(0, line), column if column >= 0 else 10**9, UTF32)


def _action_model(model: str, device: str) -> ActionModel:
    from wren.errors import WrenError
    from wren.model.generation import TransformersBackend

    try:
        loaded = _load_with_progress(model, device)
    except WrenError as err:
        err_console.print(f"[red]{err}")
        raise typer.Exit(1) from err
    return ActionModel.for_backend(TransformersBackend(loaded))


def _print_edit(file: Path, text: str, outcome: EditOutcome, elapsed: float) -> None:
    if outcome.edit is None:
        err_console.print(f"[yellow]No edit: {outcome.reason}")
    else:
        new = outcome.edit.apply(text)
        diff = difflib.unified_diff(
            text.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=str(file),
            tofile=f"{file} (proposed)",
        )
        sys.stdout.write("".join(diff))
        verdict = "[green]verified" if outcome.verified else "[yellow]NOT verified"
        err_console.print(f"{verdict}[/] — {outcome.reason}")
    err_console.print(
        f"[dim]{outcome.title}: {outcome.rounds} round(s), {outcome.model_calls} model call(s), "
        f"{elapsed:.1f}s"
    )
    if outcome.edit is None or not outcome.verified:
        raise typer.Exit(1)


ModelOpt = Annotated[str, typer.Option(help="Model path; empty = embedded default.")]
LineOpt = Annotated[int, typer.Option(help="0-based line (as in `wren complete`).")]


@app.command("explain")
def explain_cmd(
    file: Path,
    line: LineOpt,
    end_line: Annotated[
        int, typer.Option(help="0-based last line of a selection; -1 = no selection.")
    ] = -1,
    model: ModelOpt = "",
    device: str = "auto",
    language: str = "",
) -> None:
    """Explain the function/class at FILE:LINE (or lines LINE..END_LINE) as markdown."""
    _setup_logging(False)
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    from wren.engine.actions.explain import ExplainRequest, explain
    from wren.engine.types import CancelToken

    text = _read(file)
    start = _offset(text, line)
    end = _offset(text, end_line, -1) if end_line >= line else start
    lang = language or _language_from_suffix(file.suffix)
    action_model = _action_model(model, device)
    printed = 0

    def on_markdown(markdown: str) -> None:
        nonlocal printed
        if markdown.startswith(markdown[:printed]) and len(markdown) > printed:
            sys.stdout.write(markdown[printed:])
            sys.stdout.flush()
            printed = len(markdown)

    t0 = time.perf_counter()
    outcome = explain(
        action_model, ExplainRequest(text, lang, start, end, file.name), CancelToken(), on_markdown
    )
    if not outcome.ok:
        err_console.print(f"[yellow]{outcome.reason}")
        raise typer.Exit(1)
    if outcome.markdown.startswith(outcome.markdown[:printed]) and printed:
        sys.stdout.write(outcome.markdown[printed:] + "\n")
    else:
        sys.stdout.write(("\n\n" if printed else "") + outcome.markdown + "\n")
    err_console.print(f"[dim]{outcome.model_calls} model call(s), {time.perf_counter() - t0:.1f}s")


def _options(run_code: bool, max_rounds: int, timeout: int, test: str, file: Path) -> VerifyOptions:
    return VerifyOptions(
        run_code=run_code,
        timeout_s=float(timeout),
        max_retries=max_rounds,
        test_code=test,
        extra_paths=(str(file.resolve().parent),),
    )


RunOpt = Annotated[
    bool,
    typer.Option(
        "--run-code/--no-run-code",
        help="Run the changed code (examples in docstrings, --test) in a sandboxed subprocess.",
    ),
]
RoundsOpt = Annotated[int, typer.Option(help="Repair rounds after a failed check.")]
TimeoutOpt = Annotated[int, typer.Option(help="Seconds allowed for running the code.")]
TestOpt = Annotated[str, typer.Option(help="Python statements to run as a test (with --run-code).")]


@app.command("fix")
def fix_cmd(
    file: Path,
    line: LineOpt,
    end_line: Annotated[int, typer.Option(help="0-based last line to fix; -1 = just LINE.")] = -1,
    problem: Annotated[str, typer.Option(help="What is wrong (e.g. a diagnostic).")] = "",
    run_code: RunOpt = False,
    max_rounds: RoundsOpt = 2,
    timeout: TimeoutOpt = 5,
    test: TestOpt = "",
    model: ModelOpt = "",
    device: str = "auto",
    language: str = "",
) -> None:
    """Propose a checked fix for the code at FILE:LINE (printed as a diff; FILE is not changed)."""
    _setup_logging(False)
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    from wren.engine.actions.fix import FixRequest, fix
    from wren.engine.types import CancelToken

    text = _read(file)
    start = _offset(text, line)
    end = _offset(text, end_line, -1) if end_line >= line else start
    lang = language or _language_from_suffix(file.suffix)
    action_model = _action_model(model, device)
    problems = (problem,) if problem.strip() else ()
    request = FixRequest(text, lang, start, end, problems, str(file.resolve()))
    t0 = time.perf_counter()
    outcome = fix(
        action_model, request, _options(run_code, max_rounds, timeout, test, file), CancelToken()
    )
    _print_edit(file, text, outcome, time.perf_counter() - t0)


@app.command("generate")
def generate_cmd(
    file: Path,
    line: LineOpt,
    column: Annotated[int, typer.Option(help="0-based character; -1 = end of line.")] = -1,
    plan: Annotated[bool, typer.Option(help="Ask the model for a short plan first.")] = False,
    run_code: RunOpt = False,
    max_rounds: RoundsOpt = 2,
    timeout: TimeoutOpt = 5,
    model: ModelOpt = "",
    device: str = "auto",
    language: str = "",
) -> None:
    """Generate code from the comment or docstring at FILE:LINE (printed as a diff)."""
    _setup_logging(False)
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    from wren.engine.actions.generate import GenerateRequest, generate
    from wren.engine.types import CancelToken

    text = _read(file)
    offset = _offset(text, line, column)
    lang = language or _language_from_suffix(file.suffix)
    action_model = _action_model(model, device)
    request = GenerateRequest(text, lang, offset, str(file.resolve()), plan=plan)
    t0 = time.perf_counter()
    outcome = generate(
        action_model, request, _options(run_code, max_rounds, timeout, "", file), CancelToken()
    )
    if outcome.plan:
        err_console.print(f"[dim]plan:\n{outcome.plan}")
    _print_edit(file, text, outcome, time.perf_counter() - t0)
