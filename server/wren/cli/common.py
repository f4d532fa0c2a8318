"""What every command shares: the stderr console, logging, the language of a file."""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

# stdout carries results (and, for `serve`, the protocol); everything else goes to stderr.
err_console = Console(stderr=True)

_LANGUAGE_BY_SUFFIX = {
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
}


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Log to stderr; `quiet` (the one-shot commands): warnings and errors only, and no
    progress bars from the model libraries (the command shows its own)."""
    if quiet:
        # Read when huggingface_hub is first imported: set before anything imports it.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if quiet:
        logging.getLogger().setLevel(logging.WARNING)
    # pygls logs every message at INFO; keep the output channel readable.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbose else logging.WARNING)


def language_from_suffix(suffix: str) -> str:
    """The LSP language id for a file suffix (`.py` -> `python`); `plaintext` when unknown."""
    return _LANGUAGE_BY_SUFFIX.get(suffix.lower(), "plaintext")


class DeviceChoice(StrEnum):
    """`--device`: the values of the `wren.model.device` setting."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


ModelOpt = Annotated[
    str, typer.Option(help="Model: a Hugging Face folder or .gguf file; empty = the default.")
]
DeviceOpt = Annotated[DeviceChoice, typer.Option(help="Where to run the model.")]
LanguageOpt = Annotated[str, typer.Option(help="Language id; empty = from the file suffix.")]
LineOpt = Annotated[int, typer.Option(help="0-based line of the cursor.", min=0)]
