"""Training data for `wren tune`: the workspace's own source files, split by file.

Pure Python (no torch, no tokenizer): which files, which split, and which text examples.
Examples follow how Wren prompts a prefix-only model: the card's file header
(`<filename>name\n`) and then the code, cut at line starts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# The file listing and skip rules are shared with the tags index (context/tags.py).
from wren.workspace_files import (
    MAX_FILE_BYTES,
    list_candidate_files,
    skip_reason,
)

HELDOUT_PERCENT = 15


@dataclass(frozen=True)
class SourceFile:
    rel: str  # posix path relative to the workspace
    text: str

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Example:
    """`prompt` is context only (no loss); the model learns to write `target` after it.

    A window has an empty prompt: every token of it is a target.
    """

    kind: str  # "window" | "scope" | "doc_body"
    prompt: str
    target: str


@dataclass(frozen=True)
class Split:
    train: list[SourceFile]
    heldout: list[SourceFile]
    skipped: dict[str, int]  # reason -> count

    def digest(self) -> str:
        """sha256 over (split, path, content) of every file used: the data's identity."""
        h = hashlib.sha256()
        for part, files in (("train", self.train), ("heldout", self.heldout)):
            for f in files:
                h.update(f"{part}\0{f.rel}\0".encode())
                h.update(hashlib.sha256(f.text.encode()).digest())
        return h.hexdigest()


def is_heldout(rel: str, percent: int = HELDOUT_PERCENT) -> bool:
    """Deterministic split by file: the path's hash decides, so a file never changes side."""
    return int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) % 100 < percent


def collect(root: Path, heldout_percent: int = HELDOUT_PERCENT, max_files: int = 5_000) -> Split:
    """Read the workspace's source files and split them into train and held-out."""
    train: list[SourceFile] = []
    heldout: list[SourceFile] = []
    skipped: dict[str, int] = {}
    for rel in list_candidate_files(root)[: max_files * 4]:
        path = root / rel
        if path.is_symlink() or not path.is_file():
            continue
        try:
            size = path.stat().st_size
            data = path.read_bytes() if size <= MAX_FILE_BYTES else b""
        except OSError:
            continue
        reason = "huge" if size > MAX_FILE_BYTES else skip_reason(rel, data)
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        f = SourceFile(rel, data.decode("utf-8").replace("\r\n", "\n"))
        (heldout if is_heldout(rel, heldout_percent) else train).append(f)
        if len(train) + len(heldout) >= max_files:
            break
    if not heldout and len(train) >= 2:
        # Tiny repositories: hold out the file the hash ranks first, so there is a check.
        first = min(train, key=lambda f: hashlib.sha256(f.rel.encode()).hexdigest())
        train.remove(first)
        heldout.append(first)
    return Split(train, heldout, skipped)


# -- examples -------------------------------------------------------------------------------

_CONTINUES = re.compile(r"[,(\[{\\+\-*/=:|&.]\s*$")
_DOCSTRING_END = re.compile(r'^\s*(""".*"""|\'\'\'.*\'\'\'|.*"""|.*\'\'\')\s*$')


def header(card_header: str, f: SourceFile) -> str:
    return card_header.replace("{path}", f.name) if card_header else ""


def windows(f: SourceFile, card_header: str, max_chars: int) -> Iterable[Example]:
    """Left-to-right windows that start at line starts, each with the file header in front."""
    lines = f.text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        chunk: list[str] = []
        size = 0
        j = i
        while j < len(lines) and (size + len(lines[j]) <= max_chars or not chunk):
            chunk.append(lines[j])
            size += len(lines[j])
            j += 1
        yield Example("window", "", header(card_header, f) + "".join(chunk))
        if j >= len(lines):
            break
        i = max(i + 1, j - len(chunk) // 8)  # a little overlap between windows


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def scope_targets(
    f: SourceFile, card_header: str, prompt_chars: int, max_target_lines: int = 12
) -> Iterable[Example]:
    """Completion targets at statement/block boundaries ("semantic scopes").

    At a line that starts a statement, the target is that statement: one line, or the line and
    its indented block (up to `max_target_lines`). After a docstring the target is the body it
    describes (`doc_body`, what Generate writes from a comment).
    """
    lines = f.text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for k, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith(("#", "//", "*", ")", "]", "}")):
            continue
        prev = next((lines[p] for p in range(k - 1, -1, -1) if lines[p].strip()), "")
        if prev and _CONTINUES.search(prev.rstrip("\n")) and not prev.rstrip().endswith(":"):
            continue  # inside a bracketed or continued statement
        end = k + 1
        if line.rstrip().endswith((":", "{")):
            while (
                end < len(lines)
                and end - k < max_target_lines
                and (not lines[end].strip() or _indent(lines[end]) > _indent(line))
            ):
                end += 1
        kind = "doc_body" if prev and _DOCSTRING_END.match(prev) and '"""' in prev else "scope"
        start = offsets[k]
        prompt_start = start - prompt_chars
        if prompt_start > 0:
            nl = f.text.find("\n", prompt_start)
            prompt_start = nl + 1 if 0 <= nl < start else start
        prompt = header(card_header, f) + f.text[max(0, prompt_start) : start]
        target = "".join(lines[k:end])
        if target.strip():
            yield Example(kind, prompt, target)


def examples(
    files: list[SourceFile],
    card_header: str,
    window_chars: int = 1_600,
    scope_every: int = 16,
) -> list[Example]:
    """Windows over every file plus every `scope_every`-th scope target, in a stable order.

    Windows carry most of the signal per step: the loss covers every token of a window, but
    only the target of a scope example, its prompt being context the loss ignores. On click's
    training files, every 4th scope with a window-sized prompt was 80 % of the tokens computed
    and 20 % of those supervised; every 16th with a third of that prompt is about a third of
    the tokens computed. Measured (BENCHMARKS.md, "wren tune" round 4): the same held-out line
    exact match as before, held-out loss lowered two to three times as far, and HumanEval no
    longer below the base model.
    """
    out: list[Example] = []
    for f in files:
        out.extend(windows(f, card_header, window_chars))
        out.extend(list(scope_targets(f, card_header, window_chars // 3))[::scope_every])
    return out
