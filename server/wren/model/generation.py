"""Greedy generation with KV-cache reuse across keystrokes (the transformers backend).

Each `cache_slot` (one per document for completions) keeps the token ids and past key/values
of its last run. A new prompt re-uses the longest common token prefix and only runs the new
tokens. `prefill` brings a slot to a prompt ahead of time (background work on didOpen or a
cursor pause), so the request that follows only decodes. Prefill runs in chunks so a cancel
lands within one chunk; decode checks the cancel token every step. Slots are evicted
least-recently-used when their memory passes a bound.

Llama-shaped models run through `fast_decode.LeanModel`: a flat forward with a preallocated
cache and, for a 4-bit GGUF, the file's own 4-bit weights packed for Wren's AVX2 kernels
(`kernels.py`; torch's int4 kernel when they are not built) — ~5x fewer bytes per token than
the de-quantized fp32 weights. Other architectures, and
int8-quantized modules, use the transformers forward with a DynamicCache.
Decoding drafts tokens by prompt lookup (`GenerationParams.lookup_text`) and verifies each
draft in one forward pass: the output is exactly plain greedy decoding's.

Nested jobs: a batch or background job's cancel checkpoint runs urgent jobs on this same
thread, and one of them may take over the very slot the paused job is filling (a completion
inside a background prefill of its document). Every operation that takes a slot bumps its
`version`; after each checkpoint the paused job compares it and, when the slot changed under
it, plans again from what the slot now holds instead of writing into a cache that no longer
matches its tokens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from wren.errors import GenerationError
from wren.model import candidates, packed
from wren.model.fast_decode import KVCache, LeanModel
from wren.model.kv import checkpoint, crop_to
from wren.model.loading import LoadedModel, converted_dir
from wren.model.speculative import DraftPacer, NgramIndex, accepted_length, draft_tokens
from wren.model.tokenizable import tokenizable
from wren.types import (
    Branch,
    CancelToken,
    ContinuationScore,
    GenerationParams,
    GenerationResult,
)

log = logging.getLogger(__name__)

PREFILL_CHUNK = 64  # a cancel lands within one chunk; what was computed is kept
DEFAULT_CACHE_BUDGET_BYTES = 512 * 1024 * 1024
MAX_SLOTS = 32
MAX_DRAFT = 8  # draft tokens verified per pass
# A pass over k+1 tokens costs more than one over 1 (4-bit model, 1 thread: ~1.1x for k=2,
# ~1.6x for k=4, ~2.3x for k=8), so the draft length follows how well drafts have been doing.
FIRST_DRAFT = 4
MIN_DRAFT = 2
LOOKUP_MEMO = 4  # tokenized lookup texts remembered (one per recently edited document)
# Texts whose token ids are remembered: a completion request counts its prompt's tokens while
# building it, then generates from the same text (~2 ms a tokenization at 1,000 tokens).
TOKEN_MEMO = 4


@dataclass
class SpeculativeStats:
    """What drafting did in one generation."""

    passes: int = 0  # decode forward passes
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens greedy decoding agreed with


@dataclass
class DecodeResult(GenerationResult):
    """`GenerationResult` plus drafting counters (read with getattr by the engine)."""

    passes: int = 0
    drafted: int = 0
    accepted: int = 0


@dataclass
class CacheSlot:
    tokens: list[int] = field(default_factory=list)
    past: Any = None  # fast_decode.KVCache, or a transformers DynamicCache
    last_logits: Any = None  # logits after the last token in `tokens`
    # Leading positions computed as prompt (lean decoder: block attention). Only these are
    # reused by a later prompt: decoded positions round differently (see LeanModel._attention).
    prompt_len: int = 0
    # Bumped by every operation that takes the slot (each `_prefill`): a job paused at a
    # checkpoint sees whether a nested job used the slot meanwhile. Whoever holds the slot
    # replaces `tokens` (never mutates a list another holder may still refer to) on taking it.
    version: int = 0
    pacer: DraftPacer = field(default_factory=DraftPacer)  # when decoding here drafts

    def nbytes(self) -> int:
        if self.past is None:
            return 0
        if isinstance(self.past, KVCache):
            return self.past.nbytes()
        total = 0
        for layer in getattr(self.past, "layers", []):
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None)):
                if t is not None and hasattr(t, "numel"):
                    total += t.numel() * t.element_size()
        return total


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def after_prompt(prompt: str, lookup_text: str) -> str:
    """The part of the lookup text the prompt does not already hold (its tokens are indexed
    from the prompt itself): what follows the prompt's last characters in it.

    That part (the code after the cursor) stays the same while the user types at one place,
    so its token index is memoised across keystrokes instead of re-tokenizing ~10k chars.
    """
    tail = prompt[-48:]
    if not tail or not lookup_text:
        return lookup_text
    at = lookup_text.rfind(tail)
    return lookup_text[at + len(tail) :] if at >= 0 else lookup_text


class InFlightGauge:
    """Forward passes running right now, and the most ever seen at once.

    Counted around the model call itself, from any thread, so it measures what the
    scheduler promises (one pass at a time) instead of restating how it is built."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.passes = 0

    @contextmanager
    def one_pass(self) -> Iterator[None]:
        with self._lock:
            self.now += 1
            self.passes += 1
            self.peak = max(self.peak, self.now)
        try:
            yield
        finally:
            with self._lock:
                self.now -= 1


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError | MemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


class TransformersBackend:
    """The real `Backend`: a causal LM from transformers, run greedily in this process."""

    def __init__(
        self,
        loaded: LoadedModel,
        cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES,
        lean: bool = True,
        speculative: bool = True,
    ):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.card = loaded.card
        self.name = loaded.name
        self.device = loaded.device
        self.cache_budget_bytes = cache_budget_bytes
        self.speculative = speculative
        self._slots: OrderedDict[str, CacheSlot] = OrderedDict()
        self._lock = threading.RLock()  # re-entrant: urgent jobs run inside a batch checkpoint
        self._stop_token_ids = self._collect_stop_ids()
        self._lookup_memo: OrderedDict[str, NgramIndex] = OrderedDict()
        self._token_memo: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._token_lock = threading.Lock()  # tokenize runs on the engine's and the model's threads
        self.in_flight = InFlightGauge()
        self.lean: LeanModel | None = loaded.lean if lean else None
        if self.model is None and self.lean is None:
            raise ValueError("a model loaded as the lean decoder only needs lean=True")
        if loaded.low_rank and loaded.lean is not None:
            raise ValueError("an adapter needs the model loaded whole (load_model lean_only=False)")
        if self.lean is None and lean and self.device == "cpu":
            with torch.inference_mode():
                self.lean = LeanModel.build(self.model, low_rank=loaded.low_rank)
            cacheable = loaded.source.kind == "gguf" and not loaded.adapter and not loaded.quantized
            if self.lean is not None and cacheable:
                model_key = converted_dir(loaded.source).name
                target = packed.packed_file(model_key)
                # Written once (a damaged one was deleted on load); then older layouts go.
                if not target.is_file() and packed.save(self.lean, target):
                    packed.remove_stale(target, model_key)
        if self.lean is None and loaded.low_rank:
            # The transformers forward serves: the update goes into its weights, once.
            from wren.model.tune.adapters import merge_low_rank

            merge_low_rank(self.model, loaded.low_rank)
            loaded.low_rank = {}
        if self.lean is not None:
            self.model = None  # the decoder holds what it needs; free the fp32 layers
        log.info("decoder: %s", "lean" if self.lean is not None else "transformers")

    # -- tokens ---------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        with self._token_lock:
            ids = self._token_memo.get(text)
            if ids is not None:
                self._token_memo.move_to_end(text)
                return list(ids)
        ids = tuple(self.tokenizer(tokenizable(text), add_special_tokens=False)["input_ids"])
        with self._token_lock:
            self._token_memo[text] = ids
            while len(self._token_memo) > TOKEN_MEMO:
                self._token_memo.popitem(last=False)
        return list(ids)

    def detokenize(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    def special_tokens(self) -> list[str]:
        return sorted(set(self.tokenizer.all_special_tokens) | set(self.card.stop))

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def _collect_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        vocab = self.tokenizer.get_vocab()
        for tok in self.card.stop:
            if tok in vocab:
                ids.add(int(vocab[tok]))
        return ids

    def _prompt_ids(self, prompt: str, max_new_tokens: int) -> list[int]:
        ids = self.tokenize(prompt)
        max_ctx = max(16, self.card.context_window - max_new_tokens)
        return ids[-max_ctx:] if len(ids) > max_ctx else ids

    def warm_up(self) -> None:
        """One short run so the first real request doesn't pay for lazy initialisation."""
        self.generate(
            "def hello():\n    return",
            GenerationParams(max_new_tokens=4, time_budget_s=30.0),
            CancelToken(),
        )
        # Also the multi-token (draft verification) shapes.
        self.score_continuations("def hello():\n", ["    return 1\n"], CancelToken())

    # -- cache slots ----------------------------------------------------------------------

    def cache_bytes(self) -> int:
        return sum(slot.nbytes() for slot in self._slots.values())

    def drop_slot(self, name: str) -> None:
        """Forget one slot (a closed document). Call it on the inference thread."""
        with self._lock:
            self._slots.pop(name, None)

    def drop_caches(self) -> None:
        with self._lock:
            self._slots.clear()
            self._lookup_memo.clear()

    def _slot(self, name: str | None) -> CacheSlot:
        if name is None:
            return CacheSlot()
        slot = self._slots.pop(name, None) or CacheSlot()
        self._slots[name] = slot  # most recently used last
        return slot

    def _enforce_budget(self) -> None:
        for slot in self._slots.values():
            if isinstance(slot.past, KVCache):
                slot.past.shrink()
        while len(self._slots) > MAX_SLOTS:
            self._slots.popitem(last=False)
        while len(self._slots) > 1 and self.cache_bytes() > self.cache_budget_bytes:
            evicted, _ = self._slots.popitem(last=False)
            log.debug("evicted KV cache slot %s", evicted)
        if self._slots and self.cache_bytes() > self.cache_budget_bytes:
            self._slots.clear()

    # -- forward passes -------------------------------------------------------------------

    def _new_past(self) -> Any:
        if self.lean is not None:
            return self.lean.new_cache()
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def _forward(
        self, ids: Sequence[int], past: Any, all_logits: bool = False, prompt: bool = False
    ) -> Any:
        """Logits after each of `ids` ([n, vocab]) or, by default, after the last ([vocab])."""
        with self.in_flight.one_pass():
            if self.lean is not None:
                return self.lean.forward(list(ids), past, all_logits=all_logits, prompt=prompt)
            input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
            out = self.model(input_ids=input_ids, past_key_values=past, use_cache=True)
            return out.logits[0] if all_logits else out.logits[0, -1]

    @property
    def max_forward_in_flight(self) -> int:
        """The most forward passes ever seen running at the same time (1 is the promise)."""
        return self.in_flight.peak

    def _prefill(self, slot: CacheSlot, ids: list[int], cancel: CancelToken) -> tuple[Any, int]:
        """Bring `slot` to exactly `ids`; return the logits after the last id and reused count.

        Between chunks, urgent jobs may run (the cancel token's checkpoint) and one may take
        this slot over. After every checkpoint: cancelled -> GenerationCancelled, nothing more
        written; the slot taken over -> plan again from what it holds now (a slot is
        consistent whenever a checkpoint runs), never one more chunk into a changed cache.
        """
        while True:
            slot.version += 1
            mine = slot.version
            reuse = common_prefix_len(slot.tokens, ids)
            if slot.past is None:
                reuse = 0
            if self.lean is not None:
                reuse = min(reuse, slot.prompt_len)
            if (
                reuse == len(ids) == len(slot.tokens) == slot.prompt_len
                and slot.last_logits is not None
            ):
                return slot.last_logits, reuse
            if reuse == len(ids):
                reuse -= 1  # need at least one token to get fresh logits
            if reuse <= 0 or slot.past is None:
                slot.past = self._new_past()
                reuse = 0
            else:
                crop_to(slot.past, reuse)
            slot.tokens = ids[:reuse]
            slot.prompt_len = reuse
            slot.last_logits = None
            logits = None
            pos = reuse
            while pos < len(ids):
                checkpoint(cancel)
                if slot.version != mine:
                    break  # a nested job used this slot: re-plan from its current state
                chunk = ids[pos : pos + PREFILL_CHUNK]
                logits = self._forward(chunk, slot.past, prompt=True)
                pos += len(chunk)
                slot.tokens = ids[:pos]
                slot.prompt_len = pos
            else:
                slot.last_logits = logits
                return logits, reuse
            log.debug("KV slot changed during a checkpoint; prefill planned again")

    def _guarded(self, run: Callable[[], GenerationResult]) -> GenerationResult:
        with self._lock, torch.inference_mode():
            try:
                return run()
            except Exception as err:
                if _is_oom(err):
                    self._slots.clear()
                    raise GenerationError(
                        "The model ran out of memory while generating. Close other programs, "
                        "use a smaller model, or lower `wren.completion.contextTokens`."
                    ) from err
                raise
            finally:
                self._enforce_budget()

    def prefill(
        self,
        prompt: str,
        cache_slot: str,
        cancel: CancelToken,
        max_new_tokens: int = 64,
    ) -> GenerationResult:
        """Bring `cache_slot` to `prompt` without decoding, so a later `generate` only decodes.

        Background work: run it at the lowest priority and cancel it for any real request
        (a cancel lands within one prefill chunk; what was computed so far is kept).
        """
        ids = self._prompt_ids(prompt, max_new_tokens)

        def run() -> GenerationResult:
            slot = self._slot(cache_slot)
            t0 = time.perf_counter()
            _, reused = self._prefill(slot, ids, cancel)
            return GenerationResult(
                text="",
                tokens=0,
                prompt_tokens=len(ids),
                cached_tokens=reused,
                prefill_s=time.perf_counter() - t0,
                decode_s=0.0,
                stop_reason="prefill",
            )

        return self._guarded(run)

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        ids = self._prompt_ids(prompt, params.max_new_tokens)
        lookup = after_prompt(prompt, params.lookup_text)
        return self._guarded(
            lambda: self._generate_locked(ids, params, cancel, cache_slot, on_text, lookup)
        )

    def _lookup_index(self, text: str) -> NgramIndex | None:
        """Token n-gram index of the lookup text, memoised (requests repeat the same text)."""
        if not text:
            return None
        index = self._lookup_memo.get(text)
        if index is None:
            index = NgramIndex(self.tokenize(text))
            self._lookup_memo[text] = index
            while len(self._lookup_memo) > LOOKUP_MEMO:
                self._lookup_memo.popitem(last=False)
        return index

    def _up_to_line_end(
        self, out: list[int], draft: list[int], params: GenerationParams
    ) -> list[int]:
        """The draft up to the token that would end a one-line completion (as `emit` decides).

        Lookup copies what followed an earlier occurrence, usually the newline and the next
        line's indent too; each draft token costs a row in the verifying pass (~3 ms at a
        1,000-token cache), and tokens past the line's end could never be used.
        """
        for i in range(len(draft)):
            if params.ends_line(self.detokenize([*out, *draft[: i + 1]])):
                return draft[: i + 1]
        return draft

    def _generate_locked(
        self,
        ids: list[int],
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None,
        on_text: Callable[[str], None] | None,
        lookup: str = "",
    ) -> GenerationResult:
        slot = self._slot(cache_slot)
        t0 = time.perf_counter()
        logits, reused = self._prefill(slot, ids, cancel)
        mine = slot.version
        t1 = time.perf_counter()
        # The budget is for generation: a long prefill (a new place in a large file) must not
        # use it up and leave the request with one token, which the clean-up then drops.
        deadline = t1 + params.time_budget_s
        stats = SpeculativeStats()
        # Built at the first pass that drafts (the pacer may let none draft).
        indexes: list[NgramIndex] = []
        running: NgramIndex | None = None
        indexed_upto = 0
        draft_len = FIRST_DRAFT
        out: list[int] = []
        text = ""
        stop_reason = "max_tokens"
        stop_ids = self._stop_token_ids

        def emit(token: int) -> str | None:
            """Take one greedy token; a stop reason when generation ends with it."""
            nonlocal text
            if token in stop_ids:
                return "eos"
            out.append(token)
            text = self.detokenize(out)
            if on_text is not None:
                on_text(text)
            if any(s in text for s in params.stop):
                return "stop"
            if params.ends_line(text):
                return "newline"
            if len(out) >= params.max_new_tokens:
                return "max_tokens"
            return None

        while True:
            next_id = int(torch.argmax(logits))
            reason = emit(next_id)
            if reason is not None:
                stop_reason = reason
                break
            if time.perf_counter() > deadline:
                stop_reason = "time"
                break
            fed = slot.tokens  # ours: a job that takes the slot over replaces the list
            checkpoint(cancel)
            if slot.version != mine:
                # A job run at the checkpoint used this slot: bring it back to our sequence
                # (usually most of it is still there) before feeding the next token.
                self._prefill(slot, fed, cancel)
                mine = slot.version
            draft: list[int] = []
            if self.speculative and slot.pacer.ready():
                if running is None:
                    doc = self._lookup_index(lookup)
                    if doc is not None:
                        indexes.append(doc)
                    # The sequence so far, all but its newest token (see NgramIndex).
                    running = NgramIndex(slot.tokens[-2048:])
                    indexed_upto = len(slot.tokens)
                    indexes.append(running)
                running.extend(slot.tokens[indexed_upto:])
                indexed_upto = len(slot.tokens)
                room = min(draft_len, params.max_new_tokens - len(out))
                draft = draft_tokens([*slot.tokens[-8:], next_id], indexes, room)
                if draft and params.stop_at_newline:
                    draft = self._up_to_line_end(out, draft, params)
            feed = [next_id, *draft]
            stats.passes += 1
            if not draft:
                logits = self._forward(feed, slot.past)
                slot.tokens.append(next_id)
                slot.last_logits = logits
                continue
            rows = self._forward(feed, slot.past, all_logits=True)
            predicted = [int(t) for t in torch.argmax(rows, dim=-1)]
            accepted = accepted_length(draft, predicted)
            stats.drafted += len(draft)
            stats.accepted += accepted
            slot.pacer.record(accepted)
            if accepted == len(draft):
                draft_len = min(MAX_DRAFT, draft_len * 2)
            else:
                draft_len = max(MIN_DRAFT, accepted + 1)
            base = len(slot.tokens)
            slot.tokens.append(next_id)
            logits = rows[0]
            for i in range(accepted):
                reason = emit(draft[i])
                if reason is not None:
                    # As in plain decoding, the stopping token is not fed.
                    stop_reason = reason
                    break
                slot.tokens.append(draft[i])
                logits = rows[i + 1]
            crop_to(slot.past, len(slot.tokens))
            assert len(slot.tokens) <= base + 1 + accepted
            slot.last_logits = logits
            if reason is not None:
                break
        # The last emitted token (if any) was not fed: the slot stays consistent with its cache.
        t2 = time.perf_counter()
        if cache_slot is None:
            slot.past = None
        return DecodeResult(
            text=text,
            tokens=len(out),
            prompt_tokens=len(ids),
            cached_tokens=reused,
            prefill_s=t1 - t0,
            decode_s=t2 - t1,
            stop_reason=stop_reason,
            passes=stats.passes,
            drafted=stats.drafted,
            accepted=stats.accepted,
        )

    # -- SlotReranker (wren.types): alternatives and suffix scores on the document's slot --

    def branch(
        self,
        prompt: str,
        greedy_text: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None,
        alternatives: int = 2,
    ) -> list[Branch]:
        return candidates.branch_candidates(
            self, prompt, greedy_text, params, cancel, cache_slot, alternatives
        )

    def score_on_slot(
        self,
        prompt: str,
        pairs: Sequence[tuple[str, str]],
        cancel: CancelToken,
        cache_slot: str | None,
    ) -> list[ContinuationScore] | None:
        return candidates.score_continuations_on_slot(self, prompt, pairs, cancel, cache_slot)

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        """Mean log-probability of each continuation after `prompt`, sharing the prompt's cache."""
        ids = self.tokenize(prompt)
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            slot = self._slot("__score__")
            base = len(ids)
            for cont in continuations:
                checkpoint(cancel)
                cids = self.tokenize(cont)
                if not cids:
                    scores.append(0.0)
                    continue
                # After a checkpoint the slot may have been used by a nested job: `_prefill`
                # brings it back (free when it still holds exactly the prompt).
                logits, _ = self._prefill(slot, ids, cancel)
                seq_logits = self._forward(cids, slot.past, all_logits=True)
                all_logits = torch.cat([logits.unsqueeze(0), seq_logits[:-1]], dim=0)
                logprobs = torch.log_softmax(all_logits.float(), dim=-1)
                picked = logprobs[torch.arange(len(cids)), torch.tensor(cids)]
                scores.append(float(picked.mean()))
                crop_to(slot.past, base)
            self._enforce_budget()
        return scores
