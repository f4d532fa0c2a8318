"""Model cards separate stops that end every generation (`stop`) from stops that end inline
completions only (`stop_inline`): SmolLM's code fence ends a completion, not an explanation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from wren.cards import ModelCard, load_cards
from wren.config import Settings
from wren.engine.actions.llm import ActionModel, ask_for_text
from wren.engine.completion import CompletionDetails, CompletionEngine
from wren.types import CancelToken, GenerationParams, GenerationResult, Snapshot


def card_named(family: str) -> ModelCard:
    return next(card for card in load_cards() if card.family == family)


def test_smollm_fence_is_an_inline_stop_only() -> None:
    smollm = card_named("smollm")
    assert "```" in smollm.stop_inline
    assert "```" not in smollm.stop
    assert "<|im_end|>" in smollm.stop and "<|endoftext|>" in smollm.stop


def test_no_card_lists_a_stop_twice() -> None:
    for card in load_cards():
        assert not set(card.stop) & set(card.stop_inline), card.family


def test_stop_inline_is_read_from_the_card_file(tmp_path: Path) -> None:
    (tmp_path / "toy.toml").write_text(
        'family = "toy"\nstop = ["<end>"]\nstop_inline = ["```", "\\n\\n"]\n', encoding="utf-8"
    )
    (tmp_path / "plain.toml").write_text('family = "plain"\nstop = ["<end>"]\n', encoding="utf-8")
    cards = {card.family: card for card in load_cards(tmp_path)}
    assert cards["toy"].stop == ("<end>",) and cards["toy"].stop_inline == ("```", "\n\n")
    assert cards["plain"].stop_inline == ()


class Recording:
    """A backend that answers nothing and records what each generation was asked to stop at."""

    name = "recording"
    device = "cpu"

    def __init__(self) -> None:
        self.requests: list[GenerationParams] = []

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def special_tokens(self) -> list[str]:
        return ["<|im_end|>"]

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
        return GenerationResult("x = 1\n", 4, len(prompt), 0, 0.0, 0.0, "eos")

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        return [0.0 for _ in continuations]


CARD = ModelCard(family="t", chat=True, stop=("<|im_end|>",), stop_inline=("```",))


@pytest.mark.parametrize(
    "text", ["def total(xs):\n    total = 0\n    for x in xs:\n        ", "name = os.path."]
)
def test_completion_stops_at_both_kinds(text: str) -> None:
    backend = Recording()
    engine = CompletionEngine(backend, CARD)
    snapshot = Snapshot(uri="file:///t.py", text=text, offset=len(text))
    details = CompletionDetails(uri=snapshot.uri, line=0, character=0, version=1)
    engine.complete(snapshot, Settings(), CancelToken(), details)
    assert backend.requests, details
    for params in backend.requests:
        assert {"<|im_end|>", "```"} <= set(params.stop)


def test_prose_does_not_stop_at_inline_stops() -> None:
    backend = Recording()
    backend.card = CARD  # type: ignore[attr-defined]
    model = ActionModel.for_backend(backend)
    ask_for_text(model, [{"role": "user", "content": "Explain."}], CancelToken())
    assert backend.requests and all("```" not in p.stop for p in backend.requests)


@pytest.mark.model
def test_real_model_explanation_goes_past_its_code_block() -> None:
    """With the default model (SmolLM2, whose card has the fence as an inline stop), a chat
    answer with a code block comes back whole from one generation."""
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model

    backend = TransformersBackend(load_model("", "cpu"))
    assert "```" not in backend.special_tokens()
    model = ActionModel.for_backend(backend)
    question = "Show how to print hello in Python, with a code block, then one sentence about it."
    text = ask_for_text(model, [{"role": "user", "content": question}], CancelToken(), 60)
    assert model.calls == 1
    assert text.count("```") >= 2, text
    assert text.rsplit("```", 1)[1].strip(), f"nothing after the code block: {text!r}"
