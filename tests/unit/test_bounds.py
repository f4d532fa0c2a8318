"""Generation always ends: a model that never emits a stop token stops at the token and time limits.

Two levels:
- the decoder (`TransformersBackend`) driven by a scripted model whose every step predicts an
  ordinary token (no end-of-sequence, no stop string): it stops at `max_new_tokens`, at the time
  budget, or when cancelled from another thread;
- the engine (completion, explain, fix, generate) over a scripted backend that never stops by
  itself: every generation it asks for carries a finite token limit and time budget whatever
  the settings say, and every pipeline returns after a bounded number of model calls.

The same guarantee with the real model and a tiny time budget is in tests/lsp/test_protocol.py
(`test_a_model_that_never_stops_ends_at_the_limits`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, TypeVar

import pytest

from wren.cards import ModelCard
from wren.config import CompletionSettings, Settings
from wren.engine.actions.explain import ExplainRequest, explain
from wren.engine.actions.fix import FixRequest, fix
from wren.engine.actions.generate import GenerateRequest, generate
from wren.engine.actions.llm import ActionModel
from wren.engine.actions.loop import VerifyOptions
from wren.engine.completion import CompletionDetails, CompletionEngine
from wren.errors import GenerationCancelled
from wren.types import CancelToken, GenerationParams, GenerationResult, Snapshot

T = TypeVar("T")
HANG = 120.0  # a watchdog, not a performance bound: only a generation that never ends hits it


def ends(fn: Callable[[], T]) -> T:
    """Run `fn` on a thread; fail (instead of hanging the suite) if it does not return."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:
            box["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG)
    assert not worker.is_alive(), "generation did not end"
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# -- the decoder with a scripted model -------------------------------------------------------

VOCAB = 16
EOS = 0


class ScriptedTokenizer:
    eos_token_id = EOS
    all_special_tokens: ClassVar[list[str]] = ["<eos>"]
    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [1 + ord(c) % (VOCAB - 1) for c in text]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join("ab"[i % 2] for i in ids)

    def get_vocab(self) -> dict[str, int]:
        return {"<eos>": EOS, **{f"t{i}": i for i in range(1, VOCAB)}}


def scripted_model(
    step_s: float = 0.001, next_token: Callable[[int], int] = lambda _t: 5, vocab: int = VOCAB
) -> Any:
    """A causal LM whose greedy token after each input token is `next_token(token)`; by
    default always token 5: it never ends a sequence."""
    import torch
    from transformers import LlamaConfig

    class Scripted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = LlamaConfig(
                vocab_size=vocab,
                hidden_size=8,
                intermediate_size=8,
                num_hidden_layers=1,
                num_attention_heads=1,
                num_key_value_heads=1,
            )

        def forward(
            self, input_ids: Any, past_key_values: Any = None, use_cache: bool = True
        ) -> Any:
            time.sleep(step_s)
            ids = input_ids[0].tolist()
            logits = torch.zeros(1, len(ids), vocab)
            for i, t in enumerate(ids):
                logits[0, i, next_token(t)] = 1.0
            return SimpleNamespace(logits=logits)

    return Scripted()


def scripted_backend(speculative: bool, model: Any = None, tokenizer: Any = None) -> Any:
    from wren.model.generation import TransformersBackend
    from wren.model.loading import LoadedModel, ModelSource

    loaded = LoadedModel(
        model=model if model is not None else scripted_model(),
        tokenizer=tokenizer if tokenizer is not None else ScriptedTokenizer(),
        card=ModelCard(family="scripted", stop=("<eos>",)),
        name="scripted",
        device="cpu",
        dtype="float32",
        source=ModelSource("folder", Path("."), "scripted"),
        load_s=0.0,
        from_cache=True,
    )
    return TransformersBackend(loaded, lean=False, speculative=speculative)


@pytest.mark.parametrize("speculative", [False, True], ids=["plain", "speculative"])
def test_decoder_stops_at_the_token_limit(speculative: bool) -> None:
    backend = scripted_backend(speculative)
    params = GenerationParams(max_new_tokens=37, time_budget_s=3600)
    result = ends(lambda: backend.generate("def f():", params, CancelToken(), cache_slot="doc"))
    assert result.stop_reason == "max_tokens"
    assert result.tokens == 37


@pytest.mark.parametrize("speculative", [False, True], ids=["plain", "speculative"])
def test_decoder_stops_at_the_time_budget(speculative: bool) -> None:
    backend = scripted_backend(speculative)
    params = GenerationParams(max_new_tokens=10**9, time_budget_s=0.3)
    result = ends(lambda: backend.generate("def f():", params, CancelToken(), cache_slot="doc"))
    assert result.stop_reason == "time"
    assert 0 < result.tokens < 10**9


def test_decoder_stops_when_cancelled_from_another_thread() -> None:
    backend = scripted_backend(False)
    cancel = CancelToken()
    params = GenerationParams(max_new_tokens=10**9, time_budget_s=3600)
    threading.Timer(0.3, cancel.cancel, args=("superseded",)).start()
    with pytest.raises(GenerationCancelled, match="superseded"):
        ends(lambda: backend.generate("def f():", params, cancel))


# -- the engine over a backend that never stops by itself --------------------------------------

COMPLETION_TOKEN_CAP = 160  # engine/completion.py: multi-line completions never ask for more
ACTION_TOKEN_CAP = 2048
ACTION_TIME_CAP_S = 600.0


class NeverStops:
    """A backend whose model never emits a stop token: it writes until a limit ends it.

    Like the real decoder, it honours only what it is given: `max_new_tokens`, the time
    budget and the cancel token. It records every request so tests can check the limits.
    """

    name = "never-stops"
    device = "cpu"

    def __init__(self, piece: str = "    total = total + 1\n") -> None:
        self.piece = piece
        self.requests: list[GenerationParams] = []

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def special_tokens(self) -> list[str]:
        return ["<|im_end|>", "<|endoftext|>"]

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        self.requests.append(params)
        assert 0 < params.max_new_tokens < math.inf
        assert 0 <= params.time_budget_s < math.inf
        deadline = time.monotonic() + params.time_budget_s
        text, tokens, reason = "", 0, "max_tokens"
        while tokens < params.max_new_tokens:
            cancel.raise_if_cancelled()
            if time.monotonic() > deadline:
                reason = "time"
                break
            text += self.piece[tokens % len(self.piece)]
            tokens += 1
            if on_text is not None and tokens % 16 == 0:
                on_text(text)
        return GenerationResult(text, tokens, len(prompt), 0, 0.0, 0.0, reason)

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        return [0.0 for _ in continuations]


def card() -> ModelCard:
    return ModelCard(family="scripted", chat=True, context_window=8192, stop=("<|im_end|>",))


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("def total(xs):\n    total = 0\n    for x in xs:\n        ", "multi-line"),
        ("import os\nname = os.path.", "single-line"),
    ],
)
@pytest.mark.parametrize("max_tokens", [64, 10**9])
def test_completion_asks_for_bounded_generations(text: str, mode: str, max_tokens: int) -> None:
    backend = NeverStops()
    engine = CompletionEngine(backend, card())
    settings = Settings(completion=CompletionSettings(maxTokens=max_tokens, timeBudgetMs=2000))
    snapshot = Snapshot(uri="file:///t.py", text=text, offset=len(text))
    details = CompletionDetails(uri=snapshot.uri, line=0, character=0, version=1)
    ends(lambda: engine.complete(snapshot, settings, CancelToken(), details))
    assert details.mode == mode
    assert backend.requests, details
    for params in backend.requests:
        assert params.max_new_tokens <= COMPLETION_TOKEN_CAP
        assert params.time_budget_s == pytest.approx(2.0)
    assert details.stop_reason == "max_tokens"
    assert details.decision in ("complete", "skip")


def test_completion_time_budget_ends_a_slow_never_stopping_model() -> None:
    backend = NeverStops()
    engine = CompletionEngine(backend, card())
    settings = Settings(completion=CompletionSettings(maxTokens=10**9, timeBudgetMs=0))
    text = "def total(xs):\n    total = 0\n    "
    snapshot = Snapshot(uri="file:///t.py", text=text, offset=len(text))
    details = CompletionDetails(uri=snapshot.uri, line=0, character=0, version=1)
    ends(lambda: engine.complete(snapshot, settings, CancelToken(), details))
    assert details.stop_reason in ("time", "max_tokens")


LONG = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(5))
BROKEN = "def add(a, b)\n    return a + b\n"


def action_model(backend: NeverStops) -> ActionModel:
    return ActionModel.for_backend(backend)


@pytest.mark.parametrize("action", ["explain", "fix", "generate", "generate-plan"])
def test_actions_ask_for_bounded_generations_and_end(action: str) -> None:
    backend = NeverStops()
    model = action_model(backend)
    options = VerifyOptions(run_code=False, max_retries=2)
    cancel = CancelToken()
    if action == "explain":
        request = ExplainRequest(LONG, "python", 0, len(LONG), "long.py")
        ends(lambda: explain(model, request, cancel))
    elif action == "fix":
        fix_request = FixRequest(BROKEN, "python", 0, len(BROKEN), ("expected ':'",))
        ends(lambda: fix(model, fix_request, options, cancel))
    else:
        text = "import math\n\n# return the area of a circle of radius r\n"
        gen_request = GenerateRequest(text, "python", len(text), plan=action == "generate-plan")
        ends(lambda: generate(model, gen_request, options, cancel))
    assert 1 <= len(backend.requests) <= 3 * (options.max_retries + 2)
    for params in backend.requests:
        assert params.max_new_tokens <= ACTION_TOKEN_CAP
        assert params.time_budget_s <= ACTION_TIME_CAP_S


def test_actions_stop_when_cancelled() -> None:
    backend = NeverStops()
    model = action_model(backend)
    cancel = CancelToken()
    cancel.cancel("cancelled by the editor")
    request = ExplainRequest(LONG, "python", 0, len(LONG), "long.py")
    with pytest.raises(GenerationCancelled):
        ends(lambda: explain(model, request, cancel))
