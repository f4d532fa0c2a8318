"""Getting a command ready to run: read the file, check the position, load the model.

Bad input ends the command here with a clear message and exit status 2, before the model is
loaded; a model that cannot be loaded ends it with status 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from wren.cli.common import err_console, language_from_suffix
from wren.context.documents import UTF32, Document
from wren.types import Snapshot

if TYPE_CHECKING:
    from wren.engine.actions.llm import ActionModel
    from wren.model.loading import LoadedModel

END_OF_LINE = -1  # a column meaning "the end of the line"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `message` to stderr; the caller raises the returned Exit."""
    err_console.print(f"[red]{message}", highlight=False)
    return typer.Exit(code)


@dataclass(frozen=True)
class Source:
    """A file as the engine sees it: its exact text (CRLF stays CRLF) and language."""

    path: Path
    text: str
    language_id: str

    @property
    def lines(self) -> int:
        return len(Document(str(self.path), self.text).line_starts)

    def offset(self, line: int, column: int = 0) -> int:
        """The character offset of (line, column); column END_OF_LINE = the end of the line."""
        doc = Document(str(self.path), self.text)
        return doc.offset_at(line, column if column >= 0 else 10**9, UTF32)

    def snapshot(self, offset: int) -> Snapshot:
        resolved = self.path.resolve()
        return Snapshot(
            uri=resolved.as_uri(),
            text=self.text,
            offset=offset,
            language_id=self.language_id,
            path=str(resolved),
        )


def read_source(file: Path, language: str = "") -> Source:
    """Read FILE as UTF-8 text; exit 2 with a message when it can't be read."""
    try:
        data = file.read_bytes()
    except IsADirectoryError as err:
        raise fail(f"{file} is a folder, not a file.") from err
    except OSError as err:
        raise fail(f"Cannot read {file}: {err.strerror or err}") from err
    try:
        # Decoded as is, no newline translation: offsets match the file (CRLF stays CRLF).
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"{file} is not UTF-8 text (binary?): {err}") from err
    return Source(file, text, language or language_from_suffix(file.suffix))


def check_lines(source: Source, line: int, end_line: int = -1) -> None:
    """Exit 2 when --line / --end-line are not lines of the file."""
    count = source.lines
    if not 0 <= line < count:
        raise fail(f"--line {line} is outside {source.path} (lines 0..{count - 1}, 0-based).")
    if end_line != -1 and not line <= end_line < count:
        raise fail(
            f"--end-line {end_line} must be between --line {line} and the last line "
            f"({count - 1}, 0-based), or -1 for no selection."
        )


def load_model_or_exit(model: str, device: str, quantize: str = "none") -> LoadedModel:
    """Load the model with a progress bar on stderr; exit 1 with the reason when it fails."""
    from wren.errors import WrenError
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

        try:
            return load_model(model, device, quantize, progress=report)
        except WrenError as err:
            raise fail(str(err), 1) from err


@dataclass(frozen=True)
class PreparedAction:
    """Everything explain/fix/generate need: the file, the range and the model."""

    source: Source
    start: int
    end: int  # == start: no selection
    model: ActionModel


def prepare_action(
    file: Path,
    line: int,
    *,
    column: int = 0,
    end_line: int = -1,
    model: str = "",
    device: str = "auto",
    language: str = "",
    max_tokens: int = 0,
) -> PreparedAction:
    """Read FILE, check the position, load the model: the one start of every action command.

    The range is (line, column) .. end of `end_line`; without `end_line` it is empty.
    `max_tokens` > 0 caps each model call (code and prose alike).
    """
    from wren.engine.actions.llm import ActionModel
    from wren.model.generation import TransformersBackend

    source = read_source(file, language)
    check_lines(source, line, end_line)
    start = source.offset(line, column)
    end = source.offset(end_line, END_OF_LINE) if end_line >= 0 else start
    loaded = load_model_or_exit(model, device)
    action_model = ActionModel.for_backend(TransformersBackend(loaded))
    if max_tokens > 0:
        action_model.max_code_tokens = action_model.max_text_tokens = max_tokens
    return PreparedAction(source, start, end, action_model)
