"""The `wren` command line (typer): the language server, and every feature from a terminal.

`wren serve` runs the language server; `wren complete`, `wren explain`, `wren fix` and
`wren generate` run the same engine code on a file; `wren models` lists what is installed.
This package is a composition root: it may import any part of wren, and nothing imports it.
"""

from __future__ import annotations

import typer

from wren.cli.actions import explain_cmd, fix_cmd, generate_cmd
from wren.cli.complete import complete_cmd
from wren.cli.models import models_cmd
from wren.cli.serve import serve_cmd
from wren.cli.tune import tune_cmd

# Command functions are named `*_cmd` so they don't hide their modules (`wren.cli.complete`).
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Wren: a local code assistant.")
app.command("serve")(serve_cmd)
app.command("complete")(complete_cmd)
app.command("explain")(explain_cmd)
app.command("fix")(fix_cmd)
app.command("generate")(generate_cmd)
app.command("models")(models_cmd)
app.command("tune")(tune_cmd)

__all__ = ["app"]
