"""Prompt-lookup drafting: the pacer stops paying for drafts that keep failing.

A verification pass over a draft costs more than a plain pass, so drafts greedy decoding
keeps rejecting must not be tried at every token. The pacer's rule is pure logic (first
tests); the decoder is driven by a scripted model whose greedy output never follows what the
prompt repeats, so every draft is rejected (last tests): with the pacer it drafts a few
times per generation, the output stays plain greedy decoding's, and a document where drafts
pay keeps drafting.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any, ClassVar

from tests.unit.test_bounds import scripted_backend, scripted_model
from wren.model.speculative import MAX_BACKOFF, DraftPacer
from wren.types import CancelToken, GenerationParams


def drafting_passes(pacer: DraftPacer, outcomes: list[int], passes: int) -> list[int]:
    """The pass numbers at which `pacer` lets a draft be tried; `outcomes` are their results."""
    tried = []
    results = iter(outcomes)
    for n in range(passes):
        if pacer.ready():
            tried.append(n)
            pacer.record(next(results, 0))
    return tried


def test_rejected_drafts_back_off_exponentially_up_to_the_cap() -> None:
    tried = drafting_passes(DraftPacer(), [], 200)
    gaps = [b - a - 1 for a, b in pairwise(tried)]
    assert gaps[:5] == [1, 2, 4, 8, 16]
    assert set(gaps[4:]) == {MAX_BACKOFF}


def test_an_accepted_token_resets_the_backoff() -> None:
    pacer = DraftPacer()
    tried = drafting_passes(pacer, [0, 0, 0, 1, 3], 40)
    # Rejected at passes 0, 2, 5; accepted at 10 and at once again at 11; then backing off.
    assert tried[:6] == [0, 2, 5, 10, 11, 12]


def test_a_pacer_that_never_saw_a_draft_lets_every_pass_draft() -> None:
    pacer = DraftPacer()
    assert all(pacer.ready() for _ in range(10))


# -- the decoder ------------------------------------------------------------------------------

VOCAB = 200
BASE = 0x400  # token t is the character chr(BASE + t); token 0 ends the sequence


class CharTokenizer:
    eos_token_id = 0
    all_special_tokens: ClassVar[list[str]] = ["<eos>"]
    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [min(max(ord(c) - BASE, 1), VOCAB - 1) for c in text]}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return "".join(chr(BASE + i) for i in ids)

    def get_vocab(self) -> dict[str, int]:
        return {"<eos>": 0, **{f"t{i}": i for i in range(1, VOCAB)}}


def next_id(token: int) -> int:
    """The scripted model's greedy successor: count up through 1..VOCAB-1, never EOS (0)."""
    return token % (VOCAB - 1) + 1


def text(tokens: Sequence[int]) -> str:
    return "".join(chr(BASE + t) for t in tokens)


def counting_backend(speculative: bool) -> Any:
    """A scripted model whose greedy token is always the successor of the one before."""
    return scripted_backend(speculative, scripted_model(0.0, next_id, VOCAB), CharTokenizer())


# Every pair (t, t+1) of the counting sequence, each followed by a token counting would not
# give (t+7): every draft found here is rejected at its first token.
MISLEADING = text([x for t in range(1, VOCAB) for x in (t, next_id(t), (t + 6) % (VOCAB - 1) + 1)])
# The counting sequence, then its start again: the model goes on counting from 20, and every
# draft (what followed 20 the first time) is right.
COUNTING = text([*range(1, VOCAB), *range(1, 21)])


def test_the_scripted_tokenizer_round_trips() -> None:
    ids = CharTokenizer()(MISLEADING)["input_ids"]
    assert ids[:6] == [1, 2, 8, 2, 3, 9]
    assert CharTokenizer().decode(ids) == MISLEADING


def test_drafts_that_keep_failing_are_tried_a_few_times_not_at_every_pass() -> None:
    params = GenerationParams(max_new_tokens=60, time_budget_s=3600, lookup_text=MISLEADING)
    paced = counting_backend(True).generate(MISLEADING, params, CancelToken(), cache_slot="doc")
    plain = counting_backend(False).generate(MISLEADING, params, CancelToken(), cache_slot="doc")
    assert (paced.text, paced.tokens) == (plain.text, plain.tokens)
    assert paced.tokens == 60
    assert getattr(paced, "accepted", None) == 0
    # Backing off 1, 2, 4, 8, 16, 16 plain passes: 7 drafts (of 4, then 2 tokens) in 60.
    assert 0 < getattr(paced, "drafted", 0) <= 4 + 2 * 6
    # The next request on the same document goes on from where the backoff got to.
    again = counting_backend(True)
    first = again.generate(MISLEADING, params, CancelToken(), cache_slot="doc")
    second = again.generate(MISLEADING, params, CancelToken(), cache_slot="doc")
    assert getattr(second, "drafted", 0) < getattr(first, "drafted", 0)


def test_drafts_that_pay_are_tried_at_every_chance() -> None:
    params = GenerationParams(max_new_tokens=40, time_budget_s=3600, lookup_text=COUNTING)
    got = counting_backend(True).generate(COUNTING, params, CancelToken(), cache_slot="doc")
    assert got.text == text(range(21, 61))
    assert getattr(got, "accepted", 0) >= 30
    assert getattr(got, "passes", 40) <= 10
