"""Alternative completions and suffix scores for reranking (prefix-only models).

A model without fill-in-the-middle tokens never sees the code after the cursor while it
writes. Reranking brings that code in after the fact: a few candidate lines are generated
(greedy, plus one per runner-up first token), and each is scored by how likely the model
finds the real next lines after it. Both steps run on the document's own KV cache slot, so
the prompt is never re-run: a branch costs its own tokens, a score one forward pass over the
candidate and the suffix lines.

This module is part of the in-process backend: `TransformersBackend.branch` and
`.score_on_slot` (the `SlotReranker` protocol in `wren.types`) call it with the backend's
own slot machinery. The engine only sees that protocol; a backend that does not implement it
(remote, scripted) gets no alternatives and no scores, and the greedy completion stands.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from wren.model.kv import checkpoint, crop_to
from wren.model.tokenizable import tokenizable
from wren.types import Backend, Branch, CancelToken, ContinuationScore, GenerationParams

log = logging.getLogger(__name__)

_SLOT_API = ("_lock", "_slot", "_prefill", "_forward", "tokenizer")


def supports_slots(backend: object) -> bool:
    """Whether `backend` exposes the KV-slot internals this module needs."""
    return all(hasattr(backend, name) for name in _SLOT_API)


def _log_softmax(logits: Any) -> Any:
    import torch

    return torch.log_softmax(logits.float(), dim=-1)


def _branch_point(backend: Any, greedy_text: str) -> tuple[list[int], int]:
    """Token ids of the greedy output and the index of its first non-whitespace token.

    The prompt may end before the cursor line's break (token healing), so the greedy output
    starts with a whitespace token such as "\\n" + indentation; branching there would only
    give other indentations. The branch is taken at the first token that carries code (or
    after the whitespace, when greedy wrote nothing else: it stopped or hit a stop token).
    """
    ids = backend.tokenize(greedy_text)
    for i, tok in enumerate(ids):
        if backend.detokenize([tok]).strip():
            return ids, i
    return ids, len(ids)


def branch_candidates(
    backend: Backend,
    prompt: str,
    greedy_text: str,
    params: GenerationParams,
    cancel: CancelToken,
    cache_slot: str | None,
    alternatives: int = 2,
) -> list[Branch]:
    """Up to `alternatives` continuations that differ from greedy at the first code token.

    Each starts with the greedy output's leading whitespace tokens, then one of the most
    likely first code tokens other than greedy's, then goes on greedily under `params`.
    Raises GenerationCancelled when `cancel` is set.
    """
    if alternatives <= 0 or not supports_slots(backend):
        return []
    b: Any = backend
    ids, index = _branch_point(b, greedy_text)
    lead = ids[:index]
    prompt_ids = b.tokenize(prompt)
    import torch

    with b._lock, torch.inference_mode():
        slot = b._slot(cache_slot if cache_slot is not None else "__candidates__")
        logits, _ = b._prefill(slot, prompt_ids + lead, cancel)
        logprobs = _log_softmax(logits)
        top = torch.topk(logprobs, alternatives + 4)  # room for skipped tokens
    greedy_first = ids[index] if index < len(ids) else None
    greedy_logprob = float(logprobs[greedy_first]) if greedy_first is not None else 0.0
    special = set(backend.special_tokens())
    lead_text = b.detokenize(lead)
    # After a prompt that ends in the user's space ("x = "), a token that starts with one would
    # double it. (Whitespace the model wrote itself, `lead`, ends where its tokens would go on.)
    ends_in_blank = not lead and prompt[-1:] in (" ", "\t")
    picks: list[tuple[int, float]] = []
    for t, lp in zip(top.indices.tolist(), top.values.tolist(), strict=True):
        text = b.detokenize([int(t)])
        if int(t) == greedy_first or not text.strip() or text in special:
            continue
        if ends_in_blank and text[0] in " \t":
            continue
        picks.append((int(t), float(lp)))
    picks = picks[:alternatives]
    branches: list[Branch] = []
    for token, logprob in picks:
        _checkpoint(cancel)
        first = b.detokenize([token])
        if not math.isfinite(logprob):
            continue
        start = lead_text + first
        if params.stop_at_newline and "\n" in first.strip("\r\n \t"):
            branches.append(Branch(start, first, logprob, greedy_logprob))
            continue
        sub = replace(params, max_new_tokens=max(1, params.max_new_tokens - len(lead) - 1))
        result = backend.generate(prompt + start, sub, cancel, cache_slot=cache_slot)
        branches.append(Branch(start + result.text, first, logprob, greedy_logprob))
    return branches


def _split_index(offsets: Sequence[tuple[int, int]], boundary: int) -> int:
    """Index of the first token that reaches past `boundary` (suffix tokens start there)."""
    for i, (_start, end) in enumerate(offsets):
        if end > boundary:
            return i
    return len(offsets)


def score_continuations_on_slot(
    backend: Backend,
    prompt: str,
    pairs: Sequence[tuple[str, str]],
    cancel: CancelToken,
    cache_slot: str | None,
) -> list[ContinuationScore] | None:
    """Score each (candidate, suffix) pair following `prompt`, in one pass per pair.

    The candidate and suffix are tokenized together (as the model would see them); tokens
    that end inside the candidate count for it, the rest for the suffix. The prompt's KV
    cache (the document's slot) is reused and left as it was. None when the backend lacks
    the slot internals.
    """
    if not supports_slots(backend):
        return None
    b: Any = backend
    import torch

    prompt_ids = b.tokenize(prompt)
    scores: list[ContinuationScore] = []
    with b._lock, torch.inference_mode():
        slot = b._slot(cache_slot if cache_slot is not None else "__candidates__")
        for candidate, suffix in pairs:
            _checkpoint(cancel)
            text = tokenizable(candidate + suffix)  # same length: offsets still line up
            enc = b.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = list(enc["input_ids"])
            if not ids:
                scores.append(ContinuationScore(0.0, 0, 0.0, 0))
                continue
            offsets = [tuple(o) for o in enc["offset_mapping"]]
            logits, _ = b._prefill(slot, prompt_ids, cancel)
            rows = b._forward(ids, slot.past, all_logits=True)
            all_rows = torch.cat([logits.unsqueeze(0), rows[:-1]], dim=0)
            picked = _log_softmax(all_rows)[torch.arange(len(ids)), torch.tensor(ids)]
            values = [float(v) for v in picked]
            split = _split_index(offsets, len(candidate))
            # Leave the slot holding exactly the prompt, as `_prefill` expects.
            _crop(slot.past, len(prompt_ids))
            slot.tokens = list(prompt_ids)
            slot.last_logits = logits
            scores.append(
                ContinuationScore(
                    candidate_logprob=sum(values[:split]),
                    candidate_tokens=split,
                    suffix_logprob=sum(values[split:]),
                    suffix_tokens=len(values) - split,
                )
            )
    return scores


def _checkpoint(cancel: CancelToken) -> None:
    # Urgent jobs may run here and use the same slot; `_prefill` (called next) re-validates it.
    checkpoint(cancel)


def _crop(past: Any, length: int) -> None:
    crop_to(past, length)
