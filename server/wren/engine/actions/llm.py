"""Talking to the model for whole-function work: chat or completion style, code or prose.

Instruct models (card `chat = true`) get their chat template; the assistant turn is opened with
a code fence ("```python\\n") so the answer starts with code and ends at the closing fence.
Base models get the same request as plain text ending in an open fence, or a code-shaped
prompt the caller builds. Every call is counted (benchmarks report model calls per problem).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from wren.engine.actions.extract import Extracted, extract_code, fence_tag
from wren.types import Backend, CancelToken, GenerationParams, GenerationResult

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]

DEFAULT_CODE_TOKENS = 400
DEFAULT_TEXT_TOKENS = 300


@dataclass
class ActionModel:
    """The backend plus what the action pipelines need to know about the model."""

    backend: Backend
    chat: bool = True
    context_window: int = 8192
    max_code_tokens: int = DEFAULT_CODE_TOKENS
    max_text_tokens: int = DEFAULT_TEXT_TOKENS
    time_budget_s: float = 120.0
    cache_slot: str | None = "actions"
    calls: int = 0
    generated_tokens: int = 0
    log: list[dict[str, object]] = field(default_factory=list)

    @classmethod
    def for_backend(cls, backend: Backend, **overrides: object) -> ActionModel:
        """Settings read from the backend's model card when it has one."""
        card = getattr(backend, "card", None)
        chat = bool(getattr(card, "chat", True)) if card is not None else True
        window = int(getattr(card, "context_window", 8192)) if card is not None else 8192
        model = cls(backend=backend, chat=chat, context_window=window)
        for key, value in overrides.items():
            setattr(model, key, value)
        return model

    def prompt_for(self, messages: Messages) -> str:
        """The prompt text for `messages`: the chat template, or a plain transcript."""
        if self.chat:
            return self.backend.apply_chat_template(messages)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def generate(
        self,
        prompt: str,
        max_new_tokens: int,
        cancel: CancelToken,
        stop: tuple[str, ...] = (),
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        cancel.raise_if_cancelled()
        t0 = time.perf_counter()
        params = GenerationParams(
            max_new_tokens=max_new_tokens, stop=stop, time_budget_s=self.time_budget_s
        )
        result = self.backend.generate(prompt, params, cancel, self.cache_slot, on_text)
        self.calls += 1
        self.generated_tokens += result.tokens
        self.log.append(
            {
                "prompt_tokens": result.prompt_tokens,
                "tokens": result.tokens,
                "stop": result.stop_reason,
                "seconds": round(time.perf_counter() - t0, 2),
            }
        )
        return result

    def tokens(self, text: str) -> int:
        return len(self.backend.tokenize(text))


@dataclass(frozen=True)
class CodeAnswer:
    extracted: Extracted
    raw: str


def ask_for_code(
    model: ActionModel,
    messages: Messages,
    language_id: str,
    cancel: CancelToken,
    prefill: str = "",
) -> CodeAnswer:
    """Send `messages` and take the code block out of the answer.

    The answer is opened with a fence (plus `prefill`, code the answer must start with), so it
    begins with code; generation stops at the closing fence.
    """
    opening = f"```{fence_tag(language_id)}\n" + prefill
    prompt = model.prompt_for(messages) + opening
    result = model.generate(prompt, model.max_code_tokens, cancel, stop=("\n```",))
    raw = prefill + result.text
    extracted = extract_code(raw, language_id, prefilled_fence=True)
    if extracted.code is not None and result.stop_reason in ("max_tokens", "time"):
        extracted = Extracted(extracted.code, extracted.reason, complete=False)
    return CodeAnswer(extracted, raw)


def complete_code(
    model: ActionModel, prompt: str, cancel: CancelToken, stop: tuple[str, ...]
) -> str:
    """Completion-style generation for base models: the text that continues `prompt`."""
    return model.generate(prompt, model.max_code_tokens, cancel, stop=stop).text


def ask_for_text(
    model: ActionModel,
    messages: Messages,
    cancel: CancelToken,
    max_new_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """Markdown prose (an explanation, a plan), streamed through `on_text` as it grows.

    Only the card's `stop` tokens end it: its `stop_inline` ones (a code fence) end inline
    completions, not prose that may contain code blocks.
    """
    prompt = model.prompt_for(messages)
    budget = max_new_tokens or model.max_text_tokens
    return model.generate(prompt, budget, cancel, on_text=on_text).text.strip()
