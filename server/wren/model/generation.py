"""Greedy generation with KV-cache reuse across keystrokes (the transformers backend).

Each `cache_slot` (one per document for completions) keeps the token ids and past key/values
of its last run. A new prompt re-uses the longest common token prefix and only runs the new
tokens. Prefill runs in chunks so a cancel lands within one chunk; decode checks the cancel
token every step. Slots are evicted least-recently-used when their memory passes a bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from wren.engine.types import CancelToken, GenerationParams, GenerationResult
from wren.errors import GenerationError
from wren.model.loading import LoadedModel

log = logging.getLogger(__name__)

PREFILL_CHUNK = 128
DEFAULT_CACHE_BUDGET_BYTES = 512 * 1024 * 1024


@dataclass
class CacheSlot:
    tokens: list[int] = field(default_factory=list)
    past: Any = None  # transformers DynamicCache
    last_logits: Any = None  # logits after the last token in `tokens`

    def nbytes(self) -> int:
        if self.past is None:
            return 0
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


def crop_to(past: Any, length: int) -> None:
    """Shrink a transformers cache to its first `length` positions."""
    remove = past.get_seq_length() - length
    if remove > 0:
        past.crop(-remove)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError | MemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


class TransformersBackend:
    """The real `Backend`: a causal LM from transformers, run greedily in this process."""

    def __init__(self, loaded: LoadedModel, cache_budget_bytes: int = DEFAULT_CACHE_BUDGET_BYTES):
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.card = loaded.card
        self.name = loaded.name
        self.device = loaded.device
        self.cache_budget_bytes = cache_budget_bytes
        self._slots: OrderedDict[str, CacheSlot] = OrderedDict()
        self._lock = threading.RLock()  # re-entrant: urgent jobs run inside a batch checkpoint
        self._stop_token_ids = self._collect_stop_ids()

    # -- tokens ---------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

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

    def warm_up(self) -> None:
        """One short run so the first real request doesn't pay for lazy initialisation."""
        self.generate(
            "def hello():\n    return", GenerationParams(max_new_tokens=4, time_budget_s=30.0),
            CancelToken(),
        )

    # -- cache slots ----------------------------------------------------------------------

    def cache_bytes(self) -> int:
        return sum(slot.nbytes() for slot in self._slots.values())

    def drop_caches(self) -> None:
        with self._lock:
            self._slots.clear()

    def _slot(self, name: str | None) -> CacheSlot:
        if name is None:
            return CacheSlot()
        slot = self._slots.pop(name, None) or CacheSlot()
        self._slots[name] = slot  # most recently used last
        return slot

    def _enforce_budget(self) -> None:
        while len(self._slots) > 1 and self.cache_bytes() > self.cache_budget_bytes:
            evicted, _ = self._slots.popitem(last=False)
            log.debug("evicted KV cache slot %s", evicted)
        if self._slots and self.cache_bytes() > self.cache_budget_bytes:
            self._slots.clear()

    # -- forward passes -------------------------------------------------------------------

    def _forward(self, ids: Sequence[int], past: Any) -> Any:
        input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        out = self.model(input_ids=input_ids, past_key_values=past, use_cache=True)
        return out.logits[0]

    def _prefill(
        self, slot: CacheSlot, ids: list[int], cancel: CancelToken
    ) -> tuple[Any, int]:
        """Bring `slot` to exactly `ids`; return the logits after the last id and the reused count."""
        from transformers import DynamicCache

        reuse = common_prefix_len(slot.tokens, ids)
        if slot.past is None:
            reuse = 0
        if reuse == len(ids) and reuse == len(slot.tokens) and slot.last_logits is not None:
            return slot.last_logits, reuse
        if reuse == len(ids):
            reuse -= 1  # need at least one token to get fresh logits
        if reuse <= 0 or slot.past is None:
            slot.past = DynamicCache(config=self.model.config)
            reuse = 0
        else:
            crop_to(slot.past, reuse)
        slot.tokens = ids[:reuse]
        slot.last_logits = None
        logits = None
        pos = reuse
        while pos < len(ids):
            cancel.raise_if_cancelled()
            chunk = ids[pos : pos + PREFILL_CHUNK]
            logits = self._forward(chunk, slot.past)[-1]
            pos += len(chunk)
            slot.tokens = ids[:pos]
        slot.last_logits = logits
        return logits, reuse

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        ids = self.tokenize(prompt)
        max_ctx = max(16, self.card.context_window - params.max_new_tokens)
        if len(ids) > max_ctx:
            ids = ids[-max_ctx:]
        with self._lock, torch.inference_mode():
            try:
                return self._generate_locked(ids, params, cancel, cache_slot, on_text)
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

    def _generate_locked(
        self,
        ids: list[int],
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None,
        on_text: Callable[[str], None] | None,
    ) -> GenerationResult:
        slot = self._slot(cache_slot)
        t0 = time.perf_counter()
        deadline = t0 + params.time_budget_s
        logits, reused = self._prefill(slot, ids, cancel)
        t1 = time.perf_counter()
        out: list[int] = []
        text = ""
        stop_reason = "max_tokens"
        while len(out) < params.max_new_tokens:
            next_id = int(torch.argmax(logits))
            if next_id in self._stop_token_ids:
                stop_reason = "eos"
                break
            out.append(next_id)
            text = self.detokenize(out)
            if on_text is not None:
                on_text(text)
            if any(s in text for s in params.stop):
                stop_reason = "stop"
                break
            if params.stop_at_newline and "\n" in text.lstrip("\r\n \t"):
                stop_reason = "newline"
                break
            if time.perf_counter() > deadline:
                stop_reason = "time"
                break
            cancel.raise_if_cancelled()
            logits = self._forward([next_id], slot.past)[-1]
            slot.tokens.append(next_id)
            slot.last_logits = logits
        # The last appended token (if any) was not fed: the slot stays consistent with its cache.
        t2 = time.perf_counter()
        if cache_slot is None:
            slot.past = None
        return GenerationResult(
            text=text,
            tokens=len(out),
            prompt_tokens=len(ids),
            cached_tokens=reused,
            prefill_s=t1 - t0,
            decode_s=t2 - t1,
            stop_reason=stop_reason,
        )

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        """Mean log-probability of each continuation after `prompt`, sharing the prompt's cache."""
        ids = self.tokenize(prompt)
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            slot = self._slot("__score__")
            logits, _ = self._prefill(slot, ids, cancel)
            base = len(slot.tokens)
            for cont in continuations:
                cancel.raise_if_cancelled()
                cids = self.tokenize(cont)
                if not cids:
                    scores.append(0.0)
                    continue
                seq_logits = self._forward(cids, slot.past)
                all_logits = torch.cat([logits.unsqueeze(0), seq_logits[:-1]], dim=0)
                logprobs = torch.log_softmax(all_logits.float(), dim=-1)
                picked = logprobs[torch.arange(len(cids)), torch.tensor(cids)]
                scores.append(float(picked.mean()))
                crop_to(slot.past, base)
            slot.tokens = ids
            self._enforce_budget()
        return scores
