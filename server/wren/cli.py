"""The `wren` command line: serve, complete, models (explain/fix/generate are added by actions)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Wren: a local code assistant.")
err_console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pygls logs every message at INFO; keep the output channel readable.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose else logging.WARNING)


def protect_stdout() -> tuple[object, object]:
    """Reserve the real stdout for LSP frames; anything else printing to fd 1 goes to stderr.

    Model libraries print warnings and progress bars, some from C code; after this, fd 1 is
    stderr and only the returned binary stream writes to the client.
    """
    # Buffered on purpose: a raw (unbuffered) read(n) returns after one pipe read (64 KiB),
    # which truncates large messages; the buffered reader reads all n bytes. pygls flushes
    # the writer after every frame.
    protocol_out = os.fdopen(os.dup(1), "wb")
    protocol_in = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_in, protocol_out


@app.command()
def serve(
    tcp: Annotated[bool, typer.Option(help="Listen on TCP instead of stdio (debugging).")] = False,
    host: str = "127.0.0.1",
    port: int = 2087,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the language server (stdio by default)."""
    _setup_logging(verbose)
    os.environ.setdefault("TQDM_DISABLE", "1")
    stdin, stdout = (None, None) if tcp else protect_stdout()
    from wren.lsp.server import create_server

    server = create_server()
    if tcp:
        server.start_tcp(host, port)
    else:
        server.start_io(stdin, stdout)  # type: ignore[arg-type]
        # The client closed stdin (or went away): end now, see `exit_process`.
        from wren.lsp.lifecycle import exit_process

        exit_process(server)


def _load_with_progress(model: str, device: str, quantize: str = "none"):  # type: ignore[no-untyped-def]
    from wren.model.loading import load_model

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("Loading model", total=100)

        def report(message: str, percent: int | None) -> None:
            bar.update(task, description=message, completed=percent or 0)

        return load_model(model, device, quantize, progress=report)


@app.command()
def complete(
    file: Path,
    line: Annotated[int, typer.Option(help="0-based line of the cursor.")],
    column: Annotated[int, typer.Option(help="0-based character of the cursor.")] = -1,
    model: Annotated[str, typer.Option(help="Model path; empty = embedded default.")] = "",
    device: str = "auto",
    language: str = "",
    show_details: Annotated[bool, typer.Option("--details")] = False,
    time_budget_ms: Annotated[
        int, typer.Option(help="Generation time limit (the editor's default is 2000 ms).")
    ] = 10_000,
) -> None:
    """Print the completion at FILE:LINE:COLUMN (column -1 = end of line)."""
    _setup_logging(False)
    logging.getLogger().setLevel(logging.WARNING)
    from wren.config import CompletionSettings, Settings
    from wren.context.documents import UTF32, Document
    from wren.engine.completion import CompletionDetails, CompletionEngine
    from wren.engine.types import CancelToken, Snapshot
    from wren.errors import WrenError
    from wren.model.generation import TransformersBackend

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        err_console.print(f"[red]Cannot read {file}: {err}")
        raise typer.Exit(2) from err
    doc = Document(str(file), text)
    col = column if column >= 0 else 10**9
    offset = doc.offset_at(line, col, UTF32)
    lang = language or _language_from_suffix(file.suffix)
    try:
        loaded = _load_with_progress(model, device)
    except WrenError as err:
        err_console.print(f"[red]{err}")
        raise typer.Exit(1) from err
    engine = CompletionEngine(TransformersBackend(loaded), loaded.card)
    snapshot = Snapshot(
        uri=file.resolve().as_uri(),
        text=text,
        offset=offset,
        language_id=lang,
        path=str(file.resolve()),
    )
    details = CompletionDetails(uri=snapshot.uri, line=line, character=col, version=0)
    t0 = time.perf_counter()
    settings = Settings(completion=CompletionSettings(timeBudgetMs=time_budget_ms))
    outcome = engine.complete(
        snapshot, settings, CancelToken(), details, str(file.resolve().parent)
    )
    elapsed = time.perf_counter() - t0
    sys.stdout.write(
        outcome.text + ("\n" if outcome.text and not outcome.text.endswith("\n") else "")
    )
    if show_details or not outcome.text:
        err_console.print(f"decision: {details.decision} ({details.mode}) — {details.reason}")
    if show_details:
        err_console.print({k: round(v, 1) for k, v in details.timings_ms.items()})
        err_console.print(f"raw: {details.raw_output!r}\nremoved: {details.removed}")
    err_console.print(f"[dim]model load {loaded.load_s:.2f}s, completion {elapsed * 1000:.0f} ms")


def _language_from_suffix(suffix: str) -> str:
    return {
        ".py": "python",
        ".js": "javascript",
        ".ts": "typescript",
        ".tsx": "typescriptreact",
        ".go": "go",
        ".rs": "rust",
        ".java": "java",
        ".c": "c",
        ".h": "c",
        ".cpp": "cpp",
        ".cc": "cpp",
        ".hpp": "cpp",
    }.get(suffix.lower(), "plaintext")


@app.command()
def models() -> None:
    """Which models are known (cards), installed (the default) and cached (converted)."""
    from wren.model.cards import load_cards
    from wren.model.loading import cache_root, cached_models, default_model_file

    console = Console()
    default = default_model_file()
    console.print(f"Default model: {default if default else '[red]not installed[/]'}")
    table = Table(title="Model cards (models/*.toml)")
    for col in ("family", "FIM", "chat", "context"):
        table.add_column(col)
    for card in load_cards():
        table.add_row(card.family, str(card.fim), str(card.chat), str(card.context_window))
    console.print(table)
    cached = cached_models()
    table = Table(title=f"Converted cache ({cache_root()})")
    for col in ("name", "size MB", "source"):
        table.add_column(col)
    for entry in cached:
        table.add_row(entry["name"], entry["size_mb"], entry["source"])
    console.print(table)


from wren import cli_actions  # noqa: E402,F401
