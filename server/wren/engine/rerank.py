"""Choose among candidate completions using the code after the cursor (pure, no model).

A prefix-only model writes the line without seeing what follows it. Given a few candidate
lines (greedy plus alternatives), the model can still be asked how likely the real next
lines are after each one: a line that defines the name the next line uses, or closes what
the next line expects closed, makes the suffix likely. The candidates are ranked by the
joint log-probability of candidate and suffix,

    log P(candidate | prefix) + log P(suffix | prefix, candidate),

which is the infilling objective itself (the most likely middle given both sides), so no
weight is tuned on the benchmark. Candidates that did not survive post-processing (special
tokens, prose, parse errors: `clean_completion`) never get here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_SUFFIX_LINES = 3
MAX_SUFFIX_CHARS = 400


@dataclass(frozen=True)
class ScoredCandidate:
    """A cleaned candidate completion with the model's scores for it and for the suffix."""

    text: str
    source: str  # "greedy" | "alternative"
    candidate_logprob: float
    candidate_tokens: int
    suffix_logprob: float
    suffix_tokens: int

    @property
    def joint(self) -> float:
        return self.candidate_logprob + self.suffix_logprob

    def to_json(self) -> dict[str, object]:
        return {
            "text": self.text,
            "source": self.source,
            "candidate_logprob": round(self.candidate_logprob, 3),
            "suffix_logprob": round(self.suffix_logprob, 3),
            "joint": round(self.joint, 3),
        }


def scoring_suffix(
    text: str,
    offset: int,
    max_lines: int = MAX_SUFFIX_LINES,
    max_chars: int = MAX_SUFFIX_CHARS,
) -> str:
    """The suffix to score: the rest of the cursor's line and the next non-blank lines.

    Starts at the cursor (so the rest of the line, e.g. an auto-inserted `)`, comes first)
    and ends after `max_lines` non-blank lines, or `max_chars`, whichever is first. Blank
    lines in between are kept. "" when nothing but whitespace follows.
    """
    end_of_line = text.find("\n", offset)
    if end_of_line == -1:
        rest = text[offset:]
        return rest if rest.strip() else ""
    pos = end = end_of_line
    taken = 0
    while taken < max_lines and pos < len(text) and end - offset < max_chars:
        nxt = text.find("\n", pos + 1)
        line_end = len(text) if nxt == -1 else nxt
        if text[pos + 1 : line_end].strip():
            taken += 1
            end = line_end
        pos = line_end
    suffix = text[offset:end][:max_chars].rstrip("\r")
    return suffix if suffix.strip() else ""


def unique_texts(texts: Sequence[str]) -> list[str]:
    """Non-empty texts in order, without repeats (trailing whitespace ignored)."""
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        key = text.rstrip()
        if not key.strip() or key in seen:
            continue
        seen.add(key)
        out.append(text)
    return out


def choose(candidates: Sequence[ScoredCandidate], margin: float = 0.0) -> ScoredCandidate | None:
    """The candidate with the best joint score; the greedy one keeps its place unless
    another beats it by more than `margin` (nats). None when there are no candidates."""
    if not candidates:
        return None
    best = max(candidates, key=lambda c: c.joint)
    greedy = next((c for c in candidates if c.source == "greedy"), None)
    if greedy is not None and best is not greedy and best.joint - greedy.joint <= margin:
        return greedy
    return best
