"""`wren explain`, `wren fix`, `wren generate`: the action pipelines from the command line.

They run the same engine code as the language server. Nothing is written to FILE: explain
prints markdown, fix and generate print a unified diff (stdout) and the verdict (stderr).
Exit status: 0 = a verified edit (or an explanation), 1 = nothing to propose, unverified, or
the model could not be loaded, 2 = bad input (unreadable file, a line outside it).
"""

from __future__ import annotations

import difflib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wren.cli.common import DeviceChoice, DeviceOpt, LanguageOpt, LineOpt, ModelOpt, setup_logging
from wren.cli.common import err_console as console
from wren.cli.prepare import END_OF_LINE, prepare_action
from wren.config import MAX_VERIFY_TIMEOUT_S

if TYPE_CHECKING:
    from wren.engine.actions.loop import VerifyOptions
    from wren.engine.actions.outcome import EditOutcome

FileArg = Annotated[Path, typer.Argument(help="The file to work on (not changed).")]
MaxTokensOpt = Annotated[
    int, typer.Option(help="Most tokens per model call; 0 = the pipeline's default.", min=0)
]
RunOpt = Annotated[
    bool,
    typer.Option(
        "--run-code/--no-run-code",
        help="Run the changed code (examples in docstrings, --test) in a sandboxed subprocess.",
    ),
]
RoundsOpt = Annotated[int, typer.Option(help="Repair rounds after a failed check.", min=0)]
TimeoutOpt = Annotated[
    int,
    typer.Option(help="Seconds allowed for running the code.", min=1, max=MAX_VERIFY_TIMEOUT_S),
]
TestOpt = Annotated[str, typer.Option(help="Python statements to run as a test (with --run-code).")]


def _verify_options(
    run_code: bool, max_rounds: int, timeout: int, test: str, file: Path
) -> VerifyOptions:
    from wren.engine.actions.loop import VerifyOptions

    return VerifyOptions(
        run_code=run_code,
        timeout_s=float(timeout),
        max_retries=max_rounds,
        test_code=test,
        extra_paths=(str(file.resolve().parent),),
    )


def _print_edit(file: Path, text: str, outcome: EditOutcome, elapsed: float) -> None:
    """The proposed edit as a unified diff (stdout), the verdict (stderr); exit 1 if unverified."""
    if outcome.edit is None:
        console.print(f"[yellow]No edit: {outcome.reason}")
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
        console.print(f"{verdict}[/] — {outcome.reason}")
    console.print(
        f"[dim]{outcome.title}: {outcome.rounds} round(s), {outcome.model_calls} model call(s), "
        f"{elapsed:.1f}s"
    )
    if outcome.edit is None or not outcome.verified:
        raise typer.Exit(1)


def explain_cmd(
    file: FileArg,
    line: LineOpt,
    end_line: Annotated[
        int, typer.Option(help="0-based last line of a selection; -1 = no selection.", min=-1)
    ] = -1,
    model: ModelOpt = "",
    device: DeviceOpt = DeviceChoice.auto,
    language: LanguageOpt = "",
    max_tokens: MaxTokensOpt = 0,
) -> None:
    """Explain the function/class at FILE:LINE (or lines LINE..END_LINE) as markdown."""
    setup_logging(quiet=True)
    from wren.engine.actions.explain import ExplainRequest, explain
    from wren.types import CancelToken

    job = prepare_action(
        file,
        line,
        end_line=end_line,
        model=model,
        device=device.value,
        language=language,
        max_tokens=max_tokens,
    )
    printed = 0

    def on_markdown(markdown: str) -> None:
        # The unchecked draft streams to stderr; stdout gets only the checked explanation.
        nonlocal printed
        if markdown.startswith(markdown[:printed]) and len(markdown) > printed:
            sys.stderr.write(markdown[printed:])
            sys.stderr.flush()
            printed = len(markdown)

    t0 = time.perf_counter()
    request = ExplainRequest(job.source.text, job.source.language_id, job.start, job.end, file.name)
    outcome = explain(job.model, request, CancelToken(), on_markdown)
    if not outcome.ok:
        console.print(f"[yellow]{outcome.reason}")
        raise typer.Exit(1)
    if printed:
        sys.stderr.write("\n\n")
    sys.stdout.write(outcome.markdown + "\n")
    console.print(f"[dim]{outcome.model_calls} model call(s), {time.perf_counter() - t0:.1f}s")


def fix_cmd(
    file: FileArg,
    line: LineOpt,
    end_line: Annotated[
        int, typer.Option(help="0-based last line to fix; -1 = just LINE.", min=-1)
    ] = -1,
    problem: Annotated[str, typer.Option(help="What is wrong (e.g. a diagnostic).")] = "",
    run_code: RunOpt = False,
    max_rounds: RoundsOpt = 2,
    timeout: TimeoutOpt = 5,
    test: TestOpt = "",
    model: ModelOpt = "",
    device: DeviceOpt = DeviceChoice.auto,
    language: LanguageOpt = "",
    max_tokens: MaxTokensOpt = 0,
) -> None:
    """Propose a checked fix for the code at FILE:LINE (printed as a diff; FILE is not changed)."""
    setup_logging(quiet=True)
    from wren.engine.actions.fix import FixRequest, fix
    from wren.types import CancelToken

    job = prepare_action(
        file,
        line,
        end_line=end_line,
        model=model,
        device=device.value,
        language=language,
        max_tokens=max_tokens,
    )
    problems = (problem,) if problem.strip() else ()
    src = job.source
    request = FixRequest(
        src.text, src.language_id, job.start, job.end, problems, str(file.resolve())
    )
    options = _verify_options(run_code, max_rounds, timeout, test, file)
    t0 = time.perf_counter()
    outcome = fix(job.model, request, options, CancelToken())
    _print_edit(file, src.text, outcome, time.perf_counter() - t0)


def generate_cmd(
    file: FileArg,
    line: LineOpt,
    column: Annotated[
        int, typer.Option(help="0-based character; -1 = end of line.", min=-1)
    ] = END_OF_LINE,
    plan: Annotated[bool, typer.Option(help="Ask the model for a short plan first.")] = False,
    run_code: RunOpt = False,
    max_rounds: RoundsOpt = 2,
    timeout: TimeoutOpt = 5,
    model: ModelOpt = "",
    device: DeviceOpt = DeviceChoice.auto,
    language: LanguageOpt = "",
    max_tokens: MaxTokensOpt = 0,
) -> None:
    """Generate code from the comment or docstring at FILE:LINE (printed as a diff)."""
    setup_logging(quiet=True)
    from wren.engine.actions.generate import GenerateRequest, generate
    from wren.types import CancelToken

    job = prepare_action(
        file,
        line,
        column=column,
        model=model,
        device=device.value,
        language=language,
        max_tokens=max_tokens,
    )
    src = job.source
    request = GenerateRequest(src.text, src.language_id, job.start, str(file.resolve()), plan=plan)
    options = _verify_options(run_code, max_rounds, timeout, "", file)
    t0 = time.perf_counter()
    outcome = generate(job.model, request, options, CancelToken())
    if outcome.plan:
        console.print(f"[dim]plan:\n{outcome.plan}")
    _print_edit(file, src.text, outcome, time.perf_counter() - t0)
