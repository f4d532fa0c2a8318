"""Token-budgeted completion prompts whose start stays stable while the user types.

Layout, most stable first so that typing invalidates as little of the KV cache as possible:
    [file header][repository context][prefix window]                     (prefix-only models)
    [repository context][FIM prefix-token][prefix][suffix-token][suffix][middle-token]  (FIM)
The prefix window starts at a line whose index is rounded down to a multiple of
`START_QUANTUM`, so moving within a function keeps the same start (and the cached tokens).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from wren.cards import ModelCard
from wren.types import Snapshot

START_QUANTUM = 32  # lines
CHARS_PER_TOKEN_GUESS = 3  # conservative: code is ~3-4 chars per token
MAX_LINE_CHARS = 2000  # a line longer than this (minified code) is cut before tokenizing


@dataclass(frozen=True)
class Prompt:
    text: str
    prefix_start: int  # offset in the document where the prefix window starts
    tokens: int
    context_chars: int


def _clip_long_lines(text: str) -> str:
    """Minified files: keep only the tail of over-long lines so tokenizing stays cheap."""
    if len(text) <= MAX_LINE_CHARS or max(map(len, text.split("\n"))) <= MAX_LINE_CHARS:
        return text
    return "\n".join(
        line if len(line) <= MAX_LINE_CHARS else line[-MAX_LINE_CHARS:] for line in text.split("\n")
    )


def _stable_window_start(prefix: str, max_chars: int) -> int:
    """Offset of a quantized line start such that prefix[start:] fits in about max_chars.

    Only C-level string searches: the prefix may be megabytes long.
    """
    if len(prefix) <= max_chars:
        return 0
    need = len(prefix) - max_chars
    nl = prefix.find("\n", max(0, need - 1))
    if nl == -1:
        return need  # one enormous line: cut by characters
    start = nl + 1
    line = prefix.count("\n", 0, start)
    for _ in range((-line) % START_QUANTUM):  # move on to the next quantized line start
        nxt = prefix.find("\n", start)
        if nxt == -1:
            break
        start = nxt + 1
    return start


def build_completion_prompt(
    snapshot: Snapshot,
    card: ModelCard,
    count_tokens: Callable[[str], int],
    budget_tokens: int,
    context: str = "",
) -> Prompt:
    """The prompt for an inline completion at the snapshot's cursor, within `budget_tokens`."""
    name = os.path.basename(snapshot.path or snapshot.uri.rsplit("/", 1)[-1]) or "untitled"
    header = card.file_header.replace("{path}", name) if card.file_header else ""
    suffix_share = 0.25 if card.fim else 0.0
    prefix_budget = max(64, int(budget_tokens * (1 - suffix_share)) - count_tokens(context))
    prefix = snapshot.prefix
    start = _stable_window_start(prefix, prefix_budget * CHARS_PER_TOKEN_GUESS)
    window = _clip_long_lines(prefix[start:])
    suffix = ""
    if card.fim:
        suffix = _clip_long_lines(snapshot.suffix[: int(budget_tokens * suffix_share) * 3])
    while True:
        body = card.fim_prompt(window, suffix) if card.fim else window
        text = context + header + body
        n = count_tokens(text)
        if n <= budget_tokens or len(window) < 200:
            return Prompt(text=text, prefix_start=start, tokens=n, context_chars=len(context))
        # Over budget (dense text): drop another quantum of lines, or a quarter of the chars.
        cut = window.find("\n", len(window) // 4)
        cut = cut + 1 if cut != -1 else len(window) // 4
        start += cut
        window = window[cut:]
