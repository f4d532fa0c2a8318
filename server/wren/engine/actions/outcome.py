"""Results of Fix and Generate: a proposed edit (never applied here), and how it was checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProposedEdit:
    """Replace `text[start:end]` with `new_text` (character offsets into the request's text)."""

    start: int
    end: int
    new_text: str

    def apply(self, text: str) -> str:
        return text[: self.start] + self.new_text + text[self.end :]


def minimal_edit(text: str, start: int, end: int, new_text: str) -> ProposedEdit:
    """The same change with unchanged leading and trailing lines left out of the edit.

    Keeps the diff the user reviews small and leaves untouched lines byte for byte alone.
    """
    old = text[start:end]
    old_lines = old.splitlines(keepends=True)
    new_lines = new_text.splitlines(keepends=True)
    head = 0
    while head < len(old_lines) and head < len(new_lines) and old_lines[head] == new_lines[head]:
        head += 1
    tail = 0
    while (
        tail < len(old_lines) - head
        and tail < len(new_lines) - head
        and old_lines[-1 - tail] == new_lines[-1 - tail]
    ):
        tail += 1
    a = start + sum(len(x) for x in old_lines[:head])
    b = end - sum(len(x) for x in old_lines[len(old_lines) - tail :]) if tail else end
    replacement = "".join(new_lines[head : len(new_lines) - tail])
    return ProposedEdit(a, b, replacement)


@dataclass
class Attempt:
    """One write (or repair) round."""

    round: int
    code: str | None
    passed: bool
    reason: str
    # "answer" | "layout" | "repeat" | "unchanged" | "content" | "syntax" | "names" |
    # "redefines" | "run" | "ok"
    stage: str
    seconds: float
    edit: ProposedEdit | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "passed": self.passed,
            "stage": self.stage,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "code": self.code,
        }


@dataclass
class EditOutcome:
    """What Fix/Generate propose. `edit` is None when there is nothing worth offering."""

    edit: ProposedEdit | None
    verified: bool
    reason: str
    rounds: int
    title: str
    model_calls: int = 0
    checks: tuple[str, ...] = ()
    attempts: list[Attempt] = field(default_factory=list)
    plan: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "reason": self.reason,
            "rounds": self.rounds,
            "title": self.title,
            "model_calls": self.model_calls,
            "checks": list(self.checks),
            "attempts": [a.to_json() for a in self.attempts],
        }


def refused(reason: str, title: str) -> EditOutcome:
    return EditOutcome(edit=None, verified=False, reason=reason, rounds=0, title=title)
