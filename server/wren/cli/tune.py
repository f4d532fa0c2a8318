"""`wren tune`: train a LoRA adapter on a workspace's own code (see wren.model.tune)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from wren.cli.common import DeviceChoice, ModelOpt, setup_logging
from wren.cli.common import err_console as console
from wren.cli.prepare import fail
from wren.model.tune.data import HELDOUT_PERCENT


def tune_cmd(
    path: Annotated[
        Path, typer.Argument(help="The workspace folder to learn from (default: here).")
    ] = Path("."),
    minutes: Annotated[
        float, typer.Option(help="Time budget for the whole run, in minutes.", min=0.1)
    ] = 10.0,
    model: ModelOpt = "",
    device: Annotated[
        DeviceChoice, typer.Option(help="Where to train (cpu by default; cuda when you ask).")
    ] = DeviceChoice.cpu,
    threads: Annotated[
        int,
        typer.Option(
            help="CPU threads; 0 = every core or half of them, whichever trains faster here.",
            min=0,
        ),
    ] = 0,
    max_steps: Annotated[
        int, typer.Option(help="Stop after this many steps (0: no limit).", min=0)
    ] = 0,
    rank: Annotated[int, typer.Option(help="LoRA rank.", min=1, max=256)] = 16,
    heldout_percent: Annotated[
        int,
        typer.Option(
            help="Share of files held out to check the result (by path hash).", min=1, max=50
        ),
    ] = HELDOUT_PERCENT,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the adapter here instead of Wren's cache for this workspace."),
    ] = None,
    progress_json: Annotated[
        Path | None, typer.Option(hidden=True, help="Keep this file updated with the progress.")
    ] = None,
) -> None:
    """Adapt the local model to PATH's code: a LoRA adapter, used if it helps on held-out files."""
    setup_logging(quiet=True)
    from wren.errors import WrenError
    from wren.model.tune.train import TuneCancelled, TuneProgress, TuneSettings, tune_workspace

    root = path.expanduser().resolve()
    if not root.is_dir():
        raise fail(f"{path} is not a folder.")
    settings = TuneSettings(
        minutes=minutes,
        model=model,
        device=device.value,
        threads=threads,
        max_steps=max_steps,
        rank=rank,
        alpha=2 * rank,
        heldout_percent=heldout_percent,
    )
    cancelled = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        cancelled.set()  # the loop stops at the next step; nothing half-written stays

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, on_signal)

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("Reading the workspace", total=settings.minutes * 60, info="")

        def report(p: TuneProgress) -> None:
            loss = f"loss {p.loss:.3f}" if p.loss is not None else ""
            held = f"held-out {p.heldout_loss:.3f}" if p.heldout_loss is not None else ""
            info = "  ".join(x for x in (f"{p.tokens:,} tokens", loss, held) if x)
            names = {
                "loading": "Loading the model",
                "scoring": "Scoring held-out files",
                "training": "Training",
                "writing": "Writing the adapter",
            }
            bar.update(
                task, description=names.get(p.phase, p.phase), completed=p.elapsed_s, info=info
            )
            if progress_json is not None:
                _write_progress(progress_json, p)

        try:
            result = tune_workspace(root, settings, report, cancelled.is_set, output)
        except (KeyboardInterrupt, TuneCancelled) as err:
            bar.stop()
            raise fail("Tuning cancelled; no adapter was written.", 130) from err
        except WrenError as err:
            bar.stop()
            raise fail(str(err), 1) from err
    _summary(result.folder, result.enabled, result.reason, result.metrics, result.manifest)


def _write_progress(target: Path, p: Any) -> None:
    left = max(0.0, p.budget_s - p.elapsed_s)
    payload = {"phase": p.phase, "tokens": p.tokens, "loss": p.loss, "seconds_left": round(left)}
    try:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, target)
    except OSError:
        pass


def _summary(
    folder: Path, enabled: bool, reason: str, metrics: dict[str, Any], manifest: dict[str, Any]
) -> None:
    table = Table(show_header=False, box=None)
    files = manifest["files"]
    table.add_row("files", f"{files['train']} train, {files['heldout']} held out")
    table.add_row(
        "held-out loss",
        f"{metrics['heldout_loss_before']:.3f} → {metrics['heldout_loss_after']:.3f} nats/token",
    )
    table.add_row(
        "next-token accuracy",
        f"{metrics['heldout_top1_before']:.1%} → {metrics['heldout_top1_after']:.1%}",
    )
    table.add_row(
        "trained",
        f"{metrics['tokens_seen']:,} tokens in {metrics['train_seconds']:.0f}s "
        f"({metrics['tokens_per_second']:.0f} tokens/s on {metrics['threads']} threads, "
        f"stopped: {metrics['stopped']})",
    )
    table.add_row("peak memory", f"{metrics['peak_rss_mb']:.0f} MB")
    table.add_row("adapter", str(folder))
    console.print(table)
    if enabled:
        console.print(
            f"[green]Enabled:[/] {reason}. Wren uses it for this workspace (restart the server)."
        )
    else:
        console.print(f"[yellow]Not enabled:[/] {reason}.")
