"""`wren complete`: the inline completion at a position, as the editor would get it."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from wren.cli.common import DeviceChoice, DeviceOpt, LanguageOpt, LineOpt, ModelOpt, setup_logging
from wren.cli.common import err_console as console
from wren.cli.prepare import END_OF_LINE, check_lines, load_model_or_exit, read_source


def complete_cmd(
    file: Annotated[Path, typer.Argument(help="The file to complete in (not changed).")],
    line: LineOpt,
    column: Annotated[
        int, typer.Option(help="0-based character of the cursor; -1 = end of line.", min=-1)
    ] = END_OF_LINE,
    model: ModelOpt = "",
    device: DeviceOpt = DeviceChoice.auto,
    language: LanguageOpt = "",
    show_details: Annotated[
        bool, typer.Option("--details", help="Print the decision, timings and raw output.")
    ] = False,
    max_tokens: Annotated[
        int, typer.Option(help="Most tokens to generate (as wren.completion.maxTokens).", min=1)
    ] = 64,
    time_budget_ms: Annotated[
        int, typer.Option(help="Generation time limit (the editor's default is 2000 ms).", min=0)
    ] = 10_000,
) -> None:
    """Print the completion at FILE:LINE:COLUMN (stdout); why, and how long, on stderr."""
    setup_logging(quiet=True)
    from wren.config import CompletionSettings, Settings
    from wren.engine.completion import CompletionDetails, CompletionEngine
    from wren.model.generation import TransformersBackend
    from wren.types import CancelToken

    source = read_source(file, language)
    check_lines(source, line)
    snapshot = source.snapshot(source.offset(line, column))
    loaded = load_model_or_exit(model, device.value)
    engine = CompletionEngine(TransformersBackend(loaded), loaded.card)
    settings = Settings(
        completion=CompletionSettings(maxTokens=max_tokens, timeBudgetMs=time_budget_ms)
    )
    details = CompletionDetails(uri=snapshot.uri, line=line, character=column, version=0)
    t0 = time.perf_counter()
    workspace = str(source.path.resolve().parent)
    outcome = engine.complete(snapshot, settings, CancelToken(), details, workspace)
    elapsed = time.perf_counter() - t0
    text = outcome.text
    sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))
    if show_details or not text:
        console.print(f"decision: {details.decision} ({details.mode}) — {details.reason}")
    if show_details:
        console.print({k: round(v, 1) for k, v in details.timings_ms.items()})
        console.print(f"raw: {details.raw_output!r}\nremoved: {details.removed}")
    console.print(f"[dim]model load {loaded.load_s:.2f}s, completion {elapsed * 1000:.0f} ms")
