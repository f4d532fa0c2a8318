"""Prompt-lookup drafting: propose the tokens that followed the same n-gram earlier in the text.

Code repeats itself (names, call shapes, whole lines), so the tokens after the most recent
occurrence of the last few generated tokens are a cheap, often right, guess at what comes
next. The backend verifies a draft in one forward pass and keeps the prefix that greedy
decoding would have produced anyway, so the output is unchanged; only the number of passes
shrinks.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_NGRAM = 2
MAX_NGRAM = 4
MAX_BACKOFF = 16  # plain passes after a run of rejected drafts, at most


class NgramIndex:
    """Last position at which each n-gram (n in MIN..MAX) ends, over a token sequence.

    To draft from the sequence being generated, index all of it but the newest token and
    query with the whole of it: a match then always lies strictly before the end.
    """

    def __init__(self, tokens: Sequence[int] = ()) -> None:
        self.tokens: list[int] = []
        self._last: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def __len__(self) -> int:
        return len(self.tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        toks = self.tokens
        last = self._last
        for t in tokens:
            toks.append(t)
            end = len(toks)
            for n in range(MIN_NGRAM, MAX_NGRAM + 1):
                if end >= n:
                    last[tuple(toks[end - n : end])] = end

    def continuation(self, context: Sequence[int], k: int, n: int | None = None) -> list[int]:
        """Up to `k` tokens that followed the longest n-gram suffix of `context` seen here
        (only the `n`-gram when `n` is given)."""
        if k <= 0:
            return []
        sizes = [n] if n is not None else range(min(MAX_NGRAM, len(context)), MIN_NGRAM - 1, -1)
        for size in sizes:
            if size > len(context):
                continue
            end = self._last.get(tuple(context[len(context) - size :]))
            if end is not None and end < len(self.tokens):
                return self.tokens[end : end + k]
        return []


def draft_tokens(context: Sequence[int], indexes: Sequence[NgramIndex], k: int) -> list[int]:
    """A draft after the longest n-gram match in any index (earlier indexes win ties)."""
    for n in range(min(MAX_NGRAM, len(context)), MIN_NGRAM - 1, -1):
        for index in indexes:
            draft = index.continuation(context, k, n)
            if draft:
                return draft
    return []


def accepted_length(draft: Sequence[int], predicted: Sequence[int]) -> int:
    """How many draft tokens greedy decoding agrees with (`predicted[i]` follows draft[:i])."""
    n = 0
    for d, p in zip(draft, predicted, strict=False):
        if d != p:
            break
        n += 1
    return n


class DraftPacer:
    """Whether to draft at the next pass, from how drafts have done here so far.

    Verifying a draft costs more than a plain pass (the 4-bit model on one thread: a pass
    over 3 tokens ~1.8x one over 1 at a 1,000-token cache), so a draft pays only when it is
    usually right. After a draft greedy decoding rejected outright, the next `backoff`
    passes do not draft, and the backoff doubles (up to MAX_BACKOFF) while drafts keep
    failing; a draft with any accepted token resets it. Kept per document KV slot, across
    requests: whether lookup works depends on the document (repetitive tables: yes; a
    one-line completion in fresh code: rarely).
    """

    def __init__(self) -> None:
        self.backoff = 0
        self.wait = 0

    def ready(self) -> bool:
        """Called once per decode pass: True when this pass may draft."""
        if self.wait > 0:
            self.wait -= 1
            return False
        return True

    def record(self, accepted: int) -> None:
        """The outcome of a verified draft: how many of its tokens were accepted."""
        if accepted > 0:
            self.backoff = 0
        else:
            self.backoff = min(MAX_BACKOFF, max(1, 2 * self.backoff))
        self.wait = self.backoff
