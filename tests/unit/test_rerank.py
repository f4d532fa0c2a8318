"""Reranking candidate completions by the suffix: the pure rules, the engine stage's
fallbacks, and (marked `model`) the candidate generation and scoring on the real model."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from wren.cards import load_cards
from wren.config import CompletionSettings, ContextSettings, Settings
from wren.engine.completion import CompletionDetails, CompletionEngine
from wren.engine.rerank import ScoredCandidate, choose, scoring_suffix, unique_texts
from wren.model.candidates import (
    branch_candidates,
    score_continuations_on_slot,
    supports_slots,
)
from wren.types import CancelToken, GenerationParams, GenerationResult, SlotReranker, Snapshot


def cand(text: str, source: str, lp: float, suffix_lp: float) -> ScoredCandidate:
    return ScoredCandidate(text, source, lp, 3, suffix_lp, 5)


# -- scoring_suffix ---------------------------------------------------------------------


def test_suffix_is_the_rest_of_the_line_and_the_next_three_nonblank_lines() -> None:
    text = "def f(xs):\n    \n    for x in xs:\n\n        total += x\n    return total\n    pass\n"
    cursor = text.index("    \n") + 4
    suffix = scoring_suffix(text, cursor)
    assert suffix == "\n    for x in xs:\n\n        total += x\n    return total"


def test_suffix_starts_with_what_follows_the_cursor_on_its_line() -> None:
    text = "x = compute(\ny = 2\n"
    cursor = text.index("(") + 1
    text = text[:cursor] + ")" + text[cursor:]
    assert scoring_suffix(text, cursor) == ")\ny = 2"


def test_suffix_respects_the_line_and_char_limits() -> None:
    text = "a = 1\n" + "".join(f"b{i} = {i}\n" for i in range(10))
    assert scoring_suffix(text, 5, max_lines=1) == "\nb0 = 0"
    assert len(scoring_suffix(text, 5, max_chars=10)) <= 10


def test_no_suffix_at_the_end_of_the_file() -> None:
    assert scoring_suffix("x = 1\n", 5) == ""
    assert scoring_suffix("x = 1\n\n   \n", 5) == ""
    assert scoring_suffix("x = ", 4) == ""


def test_suffix_keeps_crlf_lines_without_a_dangling_cr() -> None:
    text = "a = 1\r\nb = 2\r\n"
    assert scoring_suffix(text, 5, max_lines=1) == "\r\nb = 2"


# -- unique_texts / choose ------------------------------------------------------------


def test_unique_texts_drops_empty_and_repeated_candidates() -> None:
    assert unique_texts(["x = 1", "", "x = 1  ", "   ", "y = 2"]) == ["x = 1", "y = 2"]


def test_choose_prefers_the_joint_likelihood() -> None:
    greedy = cand("total = 1", "greedy", -1.0, -9.0)
    alt = cand("total = 0", "alternative", -2.0, -3.0)
    assert choose([greedy, alt]) is alt


def test_choose_keeps_greedy_on_ties_and_within_the_margin() -> None:
    greedy = cand("a", "greedy", -1.0, -5.0)
    alt = cand("b", "alternative", -2.0, -4.0)  # same joint
    assert choose([alt, greedy]) is greedy
    better = cand("c", "alternative", -1.0, -4.5)  # 0.5 nats better
    assert choose([greedy, better], margin=1.0) is greedy
    assert choose([greedy, better], margin=0.1) is better


def test_choose_without_greedy_or_candidates() -> None:
    assert choose([]) is None
    a = cand("a", "alternative", -1.0, -2.0)
    b = cand("b", "alternative", -1.0, -1.0)
    assert choose([a, b]) is b


def test_candidate_json_is_rounded_and_has_the_joint() -> None:
    data = cand("x", "greedy", -1.23456, -2.0).to_json()
    assert data == {
        "text": "x",
        "source": "greedy",
        "candidate_logprob": -1.235,
        "suffix_logprob": -2.0,
        "joint": -3.235,
    }


# -- the engine stage with a backend that has no KV-slot internals ------------------------


class ScriptedBackend:
    """Answers every request with the same text; has none of the slot internals."""

    name = "scripted"
    device = "cpu"

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.calls = 0

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def detokenize(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def special_tokens(self) -> list[str]:
        return ["<|im_end|>"]

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return ""

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        self.calls += 1
        return GenerationResult(self.answer, 3, len(prompt), 0, 0.0, 0.0, "newline")

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        return [0.0 for _ in continuations]


def _smollm_card() -> Any:
    return next(c for c in load_cards() if c.family == "smollm")


def _settings(rerank: bool) -> Settings:
    return Settings(
        completion=CompletionSettings(rerank=rerank), context=ContextSettings(enabled=False)
    )


DOC = "def total(xs):\n    result = 0\n    for x in xs:\n        \n    return result\n"
CURSOR = DOC.index("        \n") + 8


def test_rerank_stage_falls_back_to_greedy_without_slot_internals() -> None:
    backend = ScriptedBackend("\n        result += x\n")
    assert not supports_slots(backend)
    engine = CompletionEngine(backend, _smollm_card())
    snapshot = Snapshot("file:///t.py", DOC, CURSOR)
    out = {}
    for rerank in (False, True):
        engine = CompletionEngine(backend, _smollm_card())
        details = CompletionDetails("file:///t.py", 3, 8, 0)
        outcome = engine.complete(snapshot, _settings(rerank), CancelToken(), details)
        out[rerank] = outcome.text
        assert details.candidates == []
        assert ("rerank" in details.timings_ms) is (rerank and details.mode == "single-line")
    assert out[True] == out[False] == "result += x"
    assert backend.calls == 2  # no extra generation without the slot API


def test_no_branches_or_scores_without_slot_internals() -> None:
    backend = ScriptedBackend("x")
    params = GenerationParams(stop_at_newline=True)
    assert branch_candidates(backend, "p", "x", params, CancelToken(), "s") == []
    assert score_continuations_on_slot(backend, "p", [("a", "b")], CancelToken(), "s") is None


# -- the real model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model

    yield TransformersBackend(load_model(""))


PROMPT = "<filename>stats.py\ndef mean(values):\n    total = 0\n    for v in values:"
SUFFIX = "\n    return total / len(values)"


@pytest.mark.model
def test_suffix_scores_favour_the_candidate_the_suffix_needs(backend: Any) -> None:
    scores = score_continuations_on_slot(
        backend,
        PROMPT,
        [("\n        total += v", SUFFIX), ("\n        print(v)", SUFFIX)],
        CancelToken(),
        "doc",
    )
    assert scores is not None
    right, wrong = scores
    assert right.suffix_tokens > 0 and right.candidate_tokens > 0
    assert right.suffix_logprob > wrong.suffix_logprob
    assert right.candidate_logprob + right.suffix_logprob > (
        wrong.candidate_logprob + wrong.suffix_logprob
    )


@pytest.mark.model
def test_scoring_leaves_the_slot_as_plain_generation_would_find_it(backend: Any) -> None:
    params = GenerationParams(max_new_tokens=12, stop_at_newline=True, time_budget_s=60)
    fresh = backend.generate(PROMPT, params, CancelToken()).text
    score_continuations_on_slot(backend, PROMPT, [("\n        x = 1", SUFFIX)], CancelToken(), "s")
    reused = backend.generate(PROMPT, params, CancelToken(), cache_slot="s")
    assert reused.text == fresh
    assert reused.cached_tokens > 0


@pytest.mark.model
def test_branches_differ_from_greedy_at_the_first_code_token(backend: Any) -> None:
    params = GenerationParams(max_new_tokens=16, stop_at_newline=True, time_budget_s=60)
    greedy = backend.generate(PROMPT, params, CancelToken(), cache_slot="b").text
    branches = branch_candidates(backend, PROMPT, greedy, params, CancelToken(), "b", 2)
    assert 1 <= len(branches) <= 2
    for branch in branches:
        assert branch.text.strip() and branch.text.strip() != greedy.strip()
        assert branch.first_token.strip()
        assert branch.first_logprob < 0
        # the leading whitespace (line break + indentation) is greedy's
        lead = greedy[: len(greedy) - len(greedy.lstrip())]
        assert branch.text.startswith(lead)


@pytest.mark.model
def test_no_branch_doubles_the_space_the_prompt_ends_with(backend: Any) -> None:
    prompt = "<filename>config.py\nimport os\n\nDEBUG = "
    params = GenerationParams(max_new_tokens=8, stop_at_newline=True, time_budget_s=60)
    greedy = backend.generate(prompt, params, CancelToken(), cache_slot="sp").text
    branches = branch_candidates(backend, prompt, greedy, params, CancelToken(), "sp", 2)
    assert branches
    for branch in branches:
        assert not branch.text.startswith((" ", "\t")), branch


@pytest.mark.model
def test_the_engine_reranks_the_real_backend_through_the_protocol(backend: Any) -> None:
    """The engine reaches reranking only through `wren.types.SlotReranker`: the in-process
    backend implements it (so alternatives are generated and scored), a scripted one does not."""
    assert isinstance(backend, SlotReranker)
    assert not isinstance(ScriptedBackend("x"), SlotReranker)
    engine = CompletionEngine(backend, _smollm_card())
    doc = (
        "def mean(values):\n    total = 0\n    for v in values:\n        total = \n"
        "    return total\n"
    )
    cursor = doc.index("total = \n") + len("total = ")
    snapshot = Snapshot("file:///t.py", doc, cursor)
    details = CompletionDetails("file:///t.py", 3, 16, 0)
    engine.complete(snapshot, _settings(True), CancelToken(), details)
    assert details.mode == "single-line"
    assert len(details.candidates) >= 2, details.candidates  # greedy + scored alternatives
