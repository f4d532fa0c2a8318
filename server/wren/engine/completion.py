"""The inline-completion pipeline as named, timed stages.

should-complete (trigger) -> cache -> context -> prompt -> generate -> clean up.
Every request yields a `CompletionDetails` record: what was decided and why, the stage
timings, the raw model output and what post-processing removed. "Why no completion?" shows it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from wren.cards import ModelCard
from wren.config import Settings
from wren.context.neighbors import RecentDocuments
from wren.context.symbols import symbol_snippets
from wren.context.tags import tag_snippets
from wren.engine.cache import CompletionCache, context_key
from wren.engine.postprocess import Cleaned, clean_completion
from wren.engine.prompt.builder import build_completion_prompt
from wren.engine.prompt.context_format import comment_prefix_for, format_context
from wren.engine.rerank import ScoredCandidate, choose, scoring_suffix, unique_texts
from wren.engine.trigger import decide_trigger
from wren.types import (
    Backend,
    CancelToken,
    ContextSnippet,
    GenerationParams,
    Mode,
    SlotReranker,
    Snapshot,
    StageTimer,
)

log = logging.getLogger(__name__)

MULTI_LINE_STOPS = ("\n\n\n",)
MAX_CURSOR_LINE_CHARS = 1000  # longer cursor lines are minified or generated code
RERANK_ALTERNATIVES = 2  # branches at the first code token, besides greedy


@dataclass
class CompletionDetails:
    uri: str
    line: int
    character: int
    version: int
    decision: str = "skip"  # complete | skip | cancelled | error | not-ready | disabled
    mode: str = "none"
    reason: str = ""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    stop_reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    raw_output: str = ""
    completion: str = ""
    removed: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)
    source: str = ""  # model | cache
    request_id: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)  # rerank stage, when on
    new_tokens: int = 0  # prompt tokens the model had to run (prompt - cached)
    decode_tokens_per_s: float = 0.0
    drafted_tokens: int = 0  # prompt-lookup draft tokens proposed / accepted
    accepted_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompletionOutcome:
    text: str
    details: CompletionDetails
    replace_line_suffix: bool = False  # the item's range covers the auto-closers it re-typed


def healing_text(snapshot: Snapshot) -> str:
    """Text to take off the end of the prompt so it ends on a natural token boundary.

    Tokenizers merge a line break with the next line's indentation ("\\n" + 7 spaces, then
    " if"). A prompt ending in the user's indentation, or in a bare line break, is a token
    sequence the model never saw, and it answers with misaligned lines or stray comments.
    So when the cursor line holds only indentation, the prompt ends before the line break
    and the model writes the break and the indentation itself; `unheal` takes them off again.
    """
    ws = snapshot.line_prefix
    if not ws or not ws.isspace():
        return ""
    start = snapshot.offset - len(ws)
    for eol in ("\r\n", "\n", "\r"):
        if snapshot.text.endswith(eol, 0, start):
            return eol + ws
    return ws


def unheal(raw: str, healed: str) -> str:
    """The model's output as seen from the cursor, given what `healing_text` removed."""
    if not healed or raw.startswith(healed):
        return raw[len(healed) :]
    body = raw.lstrip(" \t")
    if healed[0] in "\r\n":
        if not body.startswith(("\n", "\r")):
            # The model went on with the previous line first: that part is not ours to insert.
            nl = body.find("\n")
            return body[nl + 1 :].lstrip(" \t") if nl != -1 else ""
        body = body.lstrip("\r\n")
    # A different indentation than the user typed: the cursor's indentation stands.
    return body.lstrip(" \t")


class CompletionEngine:
    """Runs the pipeline for one request. Thread-safe for one worker thread."""

    def __init__(self, backend: Backend, card: ModelCard) -> None:
        self.backend = backend
        self.card = card
        self.cache = CompletionCache()
        self.recent = RecentDocuments()
        self._context_memo: dict[tuple[str, int], list[ContextSnippet]] = {}

    def count_tokens(self, text: str) -> int:
        return len(self.backend.tokenize(text)) if text else 0

    def decide(self, snapshot: Snapshot, settings: Settings) -> tuple[Mode, str]:
        decision = decide_trigger(snapshot, multiline_enabled=settings.completion.multiline)
        return decision.mode, decision.reason

    def gather_context(
        self, snapshot: Snapshot, settings: Settings, workspace_root: str | None
    ) -> list[ContextSnippet]:
        """Repository context, memoised per (document, line) so the prompt start stays stable."""
        if not settings.context.enabled:
            return []
        line = snapshot.text.count("\n", 0, snapshot.offset)
        key = (snapshot.uri, line)
        if key in self._context_memo:
            return self._context_memo[key]
        budget = settings.context.budgetMs / 1000
        snippets: list[ContextSnippet] = []
        if snapshot.path and settings.context.symbols_on(snapshot.language_id):
            if snapshot.language_id == "python":
                snippets += symbol_snippets(snapshot, workspace_root, budget_s=budget)
            else:
                snippets += tag_snippets(snapshot, workspace_root, budget_s=budget)
        snippets += self.recent.similar_snippets(snapshot, budget_s=budget / 2)
        if len(self._context_memo) > 64:
            self._context_memo.clear()
        self._context_memo[key] = snippets
        return snippets

    def complete(
        self,
        snapshot: Snapshot,
        settings: Settings,
        cancel: CancelToken,
        details: CompletionDetails,
        workspace_root: str | None = None,
    ) -> CompletionOutcome:
        timer = StageTimer(details.timings_ms)
        with timer.stage("trigger"):
            line_length = len(snapshot.line_prefix) + len(snapshot.line_suffix)
            if line_length > MAX_CURSOR_LINE_CHARS:
                mode = Mode.NONE
                reason = (
                    f"The cursor's line is {line_length:,} characters long (minified or generated "
                    "code); Wren does not complete inside such lines."
                )
            else:
                mode, reason = self.decide(snapshot, settings)
        details.mode, details.reason = mode.value, reason
        if mode is Mode.NONE:
            details.decision = "skip"
            return CompletionOutcome("", details)
        with timer.stage("cache"):
            rest = self.cache.typed_through(snapshot.uri, snapshot.prefix, snapshot.suffix)
        if rest is not None:
            return self._from_cache(rest, "typed through", details)
        with timer.stage("context"):
            snippets = self.gather_context(snapshot, settings, workspace_root)
            style = self.card.context_style
            context = format_context(snippets, style, comment_prefix_for(snapshot.language_id))
        details.context = [f"{s.source}: {s.path}" for s in snippets]
        healed = healing_text(snapshot)
        prompt_snapshot = replace(snapshot, offset=snapshot.offset - len(healed))
        with timer.stage("prompt"):
            prompt = build_completion_prompt(
                prompt_snapshot,
                self.card,
                self.count_tokens,
                settings.completion.contextTokens,
                context,
            )
        single = mode is Mode.SINGLE_LINE
        params = GenerationParams(
            max_new_tokens=min(settings.completion.maxTokens, 48 if single else 160),
            stop=(*self.card.stop, *self.card.stop_inline, *(() if single else MULTI_LINE_STOPS)),
            time_budget_s=settings.completion.timeBudgetMs / 1000,
            stop_at_newline=single,
            lookup_text=snapshot.text[max(0, snapshot.offset - 8000) : snapshot.offset + 2000],
        )
        rerank = single and settings.completion.rerank
        with timer.stage("cache"):
            # Everything the answer is computed from: the prompt (with the context from other
            # files), the document the clean-up reads, the cursor, the generation settings.
            key = context_key(
                prompt.text,
                snapshot.text,
                str(snapshot.offset),
                snapshot.language_id,
                mode.value,
                healed,
                repr((params.max_new_tokens, params.stop, params.stop_at_newline, rerank)),
                str(getattr(self.backend, "name", "")),
            )
            hit = self.cache.seen(key)
        if hit is not None:
            self.cache.remember(snapshot.uri, snapshot.prefix, snapshot.suffix, key, hit)
            return self._from_cache(hit, "seen here before", details)
        t0 = time.perf_counter()
        result = self.backend.generate(prompt.text, params, cancel, cache_slot=snapshot.uri)
        details.timings_ms["prefill"] = result.prefill_s * 1000
        details.timings_ms["decode"] = result.decode_s * 1000
        details.timings_ms.setdefault("generate", (time.perf_counter() - t0) * 1000)
        details.prompt_tokens, details.cached_tokens = result.prompt_tokens, result.cached_tokens
        details.generated_tokens, details.stop_reason = result.tokens, result.stop_reason
        details.new_tokens = result.prompt_tokens - result.cached_tokens
        if result.decode_s > 0:
            details.decode_tokens_per_s = result.tokens / result.decode_s
        details.drafted_tokens = int(getattr(result, "drafted", 0))
        details.accepted_tokens = int(getattr(result, "accepted", 0))
        details.raw_output, details.source = result.text, "model"
        raw = unheal(result.text, healed)
        with timer.stage("postprocess"):
            cleaned = clean_completion(
                raw, snapshot, mode, self.backend.special_tokens(), params.stop
            )
        if rerank:
            with timer.stage("rerank"):
                cleaned = self.rerank(
                    prompt.text, result.text, cleaned, snapshot, healed, params, cancel, details
                )
        details.removed = list(cleaned.removed)
        details.completion = cleaned.text
        if not cleaned.text.strip():
            details.decision = "skip"
            details.reason = "the model's suggestion was empty after clean-up" + (
                f" ({'; '.join(cleaned.removed)})" if cleaned.removed else ""
            )
            return CompletionOutcome("", details)
        details.decision = "complete"
        self.cache.remember(snapshot.uri, snapshot.prefix, snapshot.suffix, key, cleaned.text)
        return CompletionOutcome(cleaned.text, details)

    @staticmethod
    def _from_cache(text: str, how: str, details: CompletionDetails) -> CompletionOutcome:
        details.decision, details.source, details.completion = "complete", "cache", text
        details.reason = f"answered from the completion cache ({how})"
        return CompletionOutcome(text, details)

    def prefill(
        self,
        snapshot: Snapshot,
        settings: Settings,
        cancel: CancelToken,
        workspace_root: str | None = None,
    ) -> int:
        """Run the prompt a request at this cursor would send, without decoding (background).

        Builds the prompt exactly as `complete` does, so the request that follows finds its
        tokens in the document's KV cache slot. Returns the number of prompt tokens computed;
        0 when the backend cannot prefill.
        """
        prefill = getattr(self.backend, "prefill", None)
        if prefill is None:
            return 0
        mode, _ = self.decide(snapshot, settings)
        snippets = self.gather_context(snapshot, settings, workspace_root)
        context = format_context(
            snippets, self.card.context_style, comment_prefix_for(snapshot.language_id)
        )
        healed = healing_text(snapshot)
        prompt = build_completion_prompt(
            replace(snapshot, offset=snapshot.offset - len(healed)),
            self.card,
            self.count_tokens,
            settings.completion.contextTokens,
            context,
        )
        max_new = min(settings.completion.maxTokens, 48 if mode is Mode.SINGLE_LINE else 160)
        result = prefill(prompt.text, snapshot.uri, cancel, max_new_tokens=max_new)
        return int(result.prompt_tokens - result.cached_tokens)

    # -- stage: rerank (wren.completion.rerank) ------------------------------------------

    def rerank(
        self,
        prompt: str,
        greedy_raw: str,
        greedy: Cleaned,
        snapshot: Snapshot,
        healed: str,
        params: GenerationParams,
        cancel: CancelToken,
        details: CompletionDetails,
        alternatives: int = RERANK_ALTERNATIVES,
    ) -> Cleaned:
        """Pick among greedy and alternative first-token branches by the joint likelihood of
        candidate and suffix (engine/rerank.py). Returns the chosen cleaned completion;
        the greedy one when there is no suffix, no alternative, or no slot-capable backend.

        A greedy completion that post-processing rejected is not replaced: measured on
        HumanEval, alternatives shown in its place were almost never right (BENCHMARKS.md)."""
        backend = self.backend
        if not isinstance(backend, SlotReranker):
            return greedy  # the backend declines reranking
        suffix = scoring_suffix(snapshot.text, snapshot.offset)
        if not suffix or not greedy.text:
            return greedy
        sub = replace(params, time_budget_s=max(0.1, params.time_budget_s / 2))
        branches = backend.branch(prompt, greedy_raw, sub, cancel, snapshot.uri, alternatives)
        cleaned_by_text: dict[str, Cleaned] = {greedy.text: greedy}
        sources: dict[str, str] = {greedy.text: "greedy"}
        for branch in branches:
            alt = clean_completion(
                unheal(branch.text, healed),
                snapshot,
                Mode.SINGLE_LINE,
                self.backend.special_tokens(),
                params.stop,
            )
            if alt.text and alt.text not in cleaned_by_text:
                cleaned_by_text[alt.text] = alt
                sources[alt.text] = "alternative"
        texts = unique_texts(list(cleaned_by_text))
        if len(texts) < 2:
            return greedy
        scores = backend.score_on_slot(
            prompt, [(healed + t, suffix) for t in texts], cancel, snapshot.uri
        )
        if scores is None:
            return greedy
        scored = [
            ScoredCandidate(
                t,
                sources[t],
                s.candidate_logprob,
                s.candidate_tokens,
                s.suffix_logprob,
                s.suffix_tokens,
            )
            for t, s in zip(texts, scores, strict=True)
        ]
        details.candidates = [c.to_json() for c in scored]
        best = choose(scored)
        if best is None:
            return greedy
        chosen = cleaned_by_text[best.text]
        if best.source != "greedy":
            note = f"rerank: chose an alternative over {greedy.text.strip()[:40]!r}"
            return Cleaned(chosen.text, [*chosen.removed, note])
        return chosen
