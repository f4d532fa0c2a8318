"""Explain: markdown about the selected code (or the function/class around the cursor).

The model sees the code with line numbers and is asked to cite them; the markdown starts with a
header naming the lines ("Lines 10–24 of foo.py") so the reader knows what was explained even
when the model cites nothing. Code longer than the token budget is cut, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from wren.engine.actions.layout import normalize_eol
from wren.engine.actions.llm import ActionModel, ask_for_text
from wren.engine.actions.prompts import explain_messages, number_lines
from wren.engine.actions.regions import (
    BadInput,
    Region,
    check_document,
    check_region_text,
    explain_region,
    line_end_after_break,
    row_of,
)
from wren.types import CancelToken

DEFAULT_BUDGET_TOKENS = 1200
STREAM_INTERVAL_S = 0.15


@dataclass(frozen=True)
class ExplainRequest:
    text: str
    language_id: str
    start: int  # the selection; start == end: explain the definition around the cursor
    end: int
    display_name: str = ""  # file name for the header ("foo.py")


@dataclass
class ExplainOutcome:
    markdown: str
    ok: bool
    reason: str = ""
    start: int = 0  # the explained lines (offsets), after any cut
    end: int = 0
    first_line: int = 0  # 1-based, for people
    last_line: int = 0
    truncated: bool = False
    model_calls: int = 0
    seconds: float = 0.0


def cut_to_budget(
    model: ActionModel, text: str, region: Region, budget_tokens: int
) -> tuple[Region, bool]:
    """The region, shortened from the end (whole lines) until its numbered code fits."""
    code = normalize_eol(region.text_of(text))
    numbered = number_lines(code, region.first_row + 1)
    tokens = model.tokens(numbered)
    if tokens <= budget_tokens:
        return region, False
    lines = code.split("\n")
    keep = max(1, int(len(lines) * budget_tokens / tokens * 0.95))
    while keep > 1:
        shorter = number_lines("\n".join(lines[:keep]), region.first_row + 1)
        if model.tokens(shorter) <= budget_tokens:
            break
        keep = max(1, int(keep * 0.85))
    end = region.start
    for _ in range(keep):
        end = line_end_after_break(text, end)
    cut = Region(
        region.start, end, region.first_row, row_of(text, max(region.start, end - 1)), region.source
    )
    return cut, True


def drop_repeated_paragraphs(text: str) -> str:
    """Small models fall into loops ("The code is a simple example... The code is a simple
    example..."): keep the first copy of each paragraph and sentence-level repeat."""
    seen: set[str] = set()
    kept: list[str] = []
    for para in text.split("\n\n"):
        key = " ".join(para.split()).lower()
        if key and key in seen:
            continue
        seen.add(key)
        kept.append(para)
    return "\n\n".join(kept)


def header_for(first_line: int, last_line: int, name: str) -> str:
    where = f" of {name}" if name else ""
    lines = f"Line {first_line}" if first_line == last_line else f"Lines {first_line}–{last_line}"
    return f"**{lines}{where}**\n\n"


def explain(
    model: ActionModel,
    request: ExplainRequest,
    cancel: CancelToken,
    on_markdown: Callable[[str], None] | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
) -> ExplainOutcome:
    """Explain the requested code; `on_markdown` gets the whole markdown so far while it grows."""
    t0 = time.perf_counter()
    text = request.text
    calls_before = model.calls
    try:
        check_document(text, "explain")
        if request.end > request.start:
            check_region_text(text[request.start : request.end], "explain")
        region = explain_region(request.language_id, text, request.start, request.end)
        check_region_text(region.text_of(text), "explain")
    except BadInput as err:
        return ExplainOutcome(markdown="", ok=False, reason=str(err))
    full = region
    region, truncated = cut_to_budget(model, text, region, budget_tokens)
    first, last = region.first_row + 1, region.last_row + 1
    header = header_for(first, last, request.display_name)
    note = ""
    if truncated:
        note = (
            f"\n\n> Note: the code is long, so only lines {first}–{last} of "
            f"{full.first_row + 1}–{full.last_row + 1} were explained (the model reads at "
            f"most {budget_tokens} tokens of code at once). Select a smaller part to explain "
            "the rest."
        )
    code = normalize_eol(region.text_of(text))
    messages = explain_messages(
        number_lines(code, first), request.language_id, request.display_name, first, last
    )
    last_sent = 0.0

    def stream(so_far: str) -> None:
        nonlocal last_sent
        now = time.perf_counter()
        if on_markdown is not None and now - last_sent >= STREAM_INTERVAL_S:
            last_sent = now
            on_markdown(header + so_far.strip())

    body = ask_for_text(model, messages, cancel, on_text=stream)
    if not body.strip():
        return ExplainOutcome(
            markdown="",
            ok=False,
            reason="The model returned an empty explanation.",
            start=region.start,
            end=region.end,
            first_line=first,
            last_line=last,
            truncated=truncated,
            model_calls=model.calls - calls_before,
            seconds=time.perf_counter() - t0,
        )
    markdown = header + drop_repeated_paragraphs(body).strip() + note
    return ExplainOutcome(
        markdown=markdown,
        ok=True,
        start=region.start,
        end=region.end,
        first_line=first,
        last_line=last,
        truncated=truncated,
        model_calls=model.calls - calls_before,
        seconds=time.perf_counter() - t0,
    )
