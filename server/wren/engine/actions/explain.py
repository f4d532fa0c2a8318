"""Explain: markdown about the selected code (or the function/class around the cursor).

Plan -> write -> verify -> repair. The model sees the code with line numbers and is asked to cite
them; by default it fills a short form (Summary / Takes / Returns / Notes, see prompts.py), which
a small model fills more reliably than free prose (`style="prose"` asks for prose). The answer
streams as an unchecked draft; then `explain_checks` checks it against the code: sentences that
name things the code does not have, wrong parameter/return claims and near-duplicates are
dropped (`ExplainOutcome.removed` says what and why), Takes/Returns come from the signature when
the model got them wrong, and the text ends on a whole sentence. When too little survives, one
repair round asks again with the reasons; if that fails too, the markdown says plainly that the
model could not explain this reliably instead of showing what failed.

The markdown starts with a header naming the lines ("Lines 10–24 of foo.py") so the reader knows
what was explained even when the model cites nothing. Code longer than the token budget is cut,
with a note.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wren.engine.actions.explain_checks import (
    CheckedExplanation,
    CodeFacts,
    check_explanation,
    unreliable_body,
)
from wren.engine.actions.layout import normalize_eol
from wren.engine.actions.llm import ActionModel
from wren.engine.actions.prompts import (
    EXPLAIN_EXAMPLE_ANSWER,
    EXPLAIN_PREFILL,
    EXPLAIN_STRUCTURED_STOPS,
    explain_messages,
    number_lines,
)
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

log = logging.getLogger(__name__)

DEFAULT_BUDGET_TOKENS = 1200
STREAM_INTERVAL_S = 0.15
STYLES = ("structured", "prose")
STRUCTURED_MAX_TOKENS = 200  # four short lines


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
    style: str = "structured"
    reliable: bool = True  # False: the markdown says the model could not explain this
    removed: list[dict[str, str]] = field(default_factory=list)  # {"text", "reason"}
    filled: list[str] = field(default_factory=list)  # structured fields taken from the code
    raw: str = ""  # the model's first answer, unchecked
    rounds: int = 0
    generate_s: float = 0.0  # all generations
    check_s: float = 0.0  # all checks


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


def header_for(first_line: int, last_line: int, name: str) -> str:
    where = f" of {name}" if name else ""
    lines = f"Line {first_line}" if first_line == last_line else f"Lines {first_line}–{last_line}"
    return f"**{lines}{where}**\n\n"


@dataclass
class _Attempt:
    raw: str
    checked: CheckedExplanation
    generate_s: float
    check_s: float


def explain(
    model: ActionModel,
    request: ExplainRequest,
    cancel: CancelToken,
    on_markdown: Callable[[str], None] | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    style: str = "structured",
    repair_rounds: int = 1,
) -> ExplainOutcome:
    """Explain the requested code; `on_markdown` gets the whole unchecked markdown so far while it
    grows (the returned markdown is the checked one, which replaces it)."""
    t0 = time.perf_counter()
    style = style if style in STYLES else "structured"
    text = request.text
    calls_before = model.calls
    try:
        check_document(text, "explain")
        if request.end > request.start:
            check_region_text(text[request.start : request.end], "explain")
        region = explain_region(request.language_id, text, request.start, request.end)
        check_region_text(region.text_of(text), "explain")
    except BadInput as err:
        return ExplainOutcome(markdown="", ok=False, reason=str(err), style=style)
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
    example = EXPLAIN_EXAMPLE_ANSWER if style == "structured" else ""  # copying it is no answer
    facts = CodeFacts(
        code, normalize_eol(text), request.language_id, first, request.display_name, example
    )
    last_sent = 0.0

    def stream(so_far: str) -> None:
        nonlocal last_sent
        now = time.perf_counter()
        if on_markdown is not None and now - last_sent >= STREAM_INTERVAL_S:
            last_sent = now
            on_markdown(header + so_far.strip())

    def attempt(avoid: tuple[str, ...]) -> _Attempt:
        messages = explain_messages(
            number_lines(code, first),
            request.language_id,
            request.display_name,
            first,
            last,
            style=style,
            avoid=avoid,
        )
        prompt = model.prompt_for(messages)
        prefill, budget = "", model.max_text_tokens
        stops: tuple[str, ...] = ()
        if style == "structured":
            prefill, stops = EXPLAIN_PREFILL, EXPLAIN_STRUCTURED_STOPS
            budget = min(budget, STRUCTURED_MAX_TOKENS)
        t_gen = time.perf_counter()
        result = model.generate(
            prompt + prefill,
            budget,
            cancel,
            stop=stops,
            on_text=lambda so_far: stream(prefill + so_far),
        )
        t_check = time.perf_counter()
        raw = (prefill + result.text).strip()
        if style == "structured" and raw == prefill:
            raw = ""
        cut = result.stop_reason in ("max_tokens", "time")
        checked = check_explanation(raw, facts, style, cut=cut)
        return _Attempt(raw, checked, t_check - t_gen, time.perf_counter() - t_check)

    attempts = [attempt(())]
    while (
        not attempts[-1].checked.reliable
        and attempts[-1].raw
        and len(attempts) <= repair_rounds
        and attempts[-1].checked.repair_reasons
    ):
        cancel.raise_if_cancelled()
        attempts.append(attempt(tuple(dict.fromkeys(attempts[-1].checked.repair_reasons))))
    best = next((a for a in reversed(attempts) if a.checked.reliable), attempts[-1])
    checked = best.checked
    base = ExplainOutcome(
        markdown="",
        ok=True,
        start=region.start,
        end=region.end,
        first_line=first,
        last_line=last,
        truncated=truncated,
        style=style,
        reliable=checked.reliable,
        removed=[r.as_dict() for a in attempts for r in a.checked.removed],
        filled=list(checked.filled),
        raw=attempts[0].raw,
        rounds=len(attempts),
        generate_s=sum(a.generate_s for a in attempts),
        check_s=sum(a.check_s for a in attempts),
    )
    base.model_calls = model.calls - calls_before
    if not attempts[0].raw:
        base.ok = False
        base.reason = "The model returned an empty explanation."
    else:
        body = checked.body if checked.reliable else unreliable_body(checked)
        base.markdown = header + body.strip() + note
    for removed in base.removed:
        log.debug("explain removed %r: %s", removed["text"][:120], removed["reason"])
    base.seconds = time.perf_counter() - t0
    return base
