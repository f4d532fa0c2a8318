"""Plain data the engine works on, and the `Backend` protocol the model side implements."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from wren.errors import GenerationCancelled


class Mode(StrEnum):
    """What kind of completion the cursor position calls for."""

    NONE = "none"
    SINGLE_LINE = "single-line"
    MULTI_LINE = "multi-line"


@dataclass(frozen=True)
class TriggerDecision:
    mode: Mode
    reason: str


@dataclass(frozen=True)
class Snapshot:
    """A document at one version, with the cursor as a character offset into `text`."""

    uri: str
    text: str
    offset: int
    language_id: str = "python"
    version: int = 0
    path: str = ""  # a file-system path when the uri has one; for prompts and jedi

    @property
    def prefix(self) -> str:
        return self.text[: self.offset]

    @property
    def suffix(self) -> str:
        return self.text[self.offset :]

    @property
    def line_prefix(self) -> str:
        """Text from the start of the cursor's line up to the cursor."""
        return self.text[self.text.rfind("\n", 0, self.offset) + 1 : self.offset]

    @property
    def line_suffix(self) -> str:
        """Text from the cursor to the end of its line (without the newline)."""
        end = self.text.find("\n", self.offset)
        return self.text[self.offset : end if end != -1 else len(self.text)].rstrip("\r")


@dataclass(frozen=True)
class ContextSnippet:
    """Text from outside the current document that may help the model."""

    path: str
    text: str
    source: str  # "symbol" (jedi) | "neighbor" (similar open file)
    score: float = 0.0


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    time_budget_s: float = 2.0  # for generating, counted after the prompt is prefilled
    stop_at_newline: bool = False  # single-line mode: stop at the first newline after content
    # Text whose n-grams the decoder may draft from (prompt-lookup speculative decoding).
    lookup_text: str = ""

    def ends_line(self, text: str) -> bool:
        """In single-line mode: the text so far has a line break after content (a leading one
        opens a block and does not end the completion)."""
        return self.stop_at_newline and "\n" in text.lstrip("\r\n \t")


@dataclass
class GenerationResult:
    text: str
    tokens: int
    prompt_tokens: int
    cached_tokens: int
    prefill_s: float
    decode_s: float
    stop_reason: str  # "stop" | "eos" | "max_tokens" | "time" | "newline"


class CancelToken:
    """Set from any thread; the decoder checks it between steps.

    `checkpoint` is the hook the scheduler uses to run urgent (interactive) work in the
    middle of a long batch generation.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.checkpoint: Callable[[], None] = lambda: None
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise GenerationCancelled(self.reason)
        self.checkpoint()


class Backend(Protocol):
    """What the engine needs from a loaded model. The transformers backend is the real one."""

    name: str
    device: str

    def tokenize(self, text: str) -> list[int]: ...

    def detokenize(self, ids: Sequence[int]) -> str: ...

    def special_tokens(self) -> list[str]: ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str: ...

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        """Greedy generation. `cache_slot` names a KV cache kept for reuse across calls.

        `on_text` receives the whole text generated so far, as it grows (for streaming).
        Raises GenerationCancelled when `cancel` is set.
        """
        ...

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        """Mean log-probability of each continuation following `prompt` (for reranking)."""
        ...


@dataclass(frozen=True)
class Branch:
    """One alternative continuation of the prompt (text relative to the prompt's end)."""

    text: str
    first_token: str
    first_logprob: float  # log P(first content token) at the branch point
    greedy_logprob: float = 0.0  # log P(greedy's own token) at the same point


@dataclass(frozen=True)
class ContinuationScore:
    """Summed log-probabilities of a candidate and of the suffix that follows it."""

    candidate_logprob: float
    candidate_tokens: int
    suffix_logprob: float
    suffix_tokens: int


@runtime_checkable
class SlotReranker(Protocol):
    """What reranking needs from a backend that keeps a KV cache per document (optional).

    The in-process backend implements it; a backend without it (remote, scripted) declines
    reranking simply by not having these methods, and the engine keeps the greedy answer.
    """

    def branch(
        self,
        prompt: str,
        greedy_text: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None,
        alternatives: int = 2,
    ) -> list[Branch]:
        """Up to `alternatives` continuations that differ from greedy at the first code token."""
        ...

    def score_on_slot(
        self,
        prompt: str,
        pairs: Sequence[tuple[str, str]],
        cancel: CancelToken,
        cache_slot: str | None,
    ) -> list[ContinuationScore] | None:
        """Summed log-probabilities of each (candidate, suffix) after `prompt`; None: declined."""
        ...


@dataclass
class StageTimer:
    """Named stage timings in milliseconds, in the order they ran."""

    timings_ms: dict[str, float] = field(default_factory=dict)

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)


class _Stage:
    def __init__(self, timer: StageTimer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> _Stage:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = (time.perf_counter() - self.t0) * 1000
        self.timer.timings_ms[self.name] = self.timer.timings_ms.get(self.name, 0.0) + elapsed


def iter_lines(text: str) -> Iterator[str]:
    yield from text.split("\n")
