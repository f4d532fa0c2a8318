"""Completion cache: answer without the model when the user types into the suggestion.

Two layers: per document, the last suggestion and the prefix it was made for ("typing
through": the new prefix is the old one plus characters the suggestion starts with); and an
LRU keyed by the text around the cursor, for returning to a place already completed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

KEY_PREFIX_CHARS = 400
KEY_SUFFIX_CHARS = 80


@dataclass(frozen=True)
class Shown:
    prefix: str
    suffix_line: str
    completion: str


class CompletionCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._last: dict[str, Shown] = {}
        self._lru: OrderedDict[tuple[str, str], str] = OrderedDict()

    @staticmethod
    def _key(prefix: str, suffix_line: str) -> tuple[str, str]:
        return prefix[-KEY_PREFIX_CHARS:], suffix_line[:KEY_SUFFIX_CHARS]

    def remember(self, uri: str, prefix: str, suffix_line: str, completion: str) -> None:
        if not completion:
            return
        self._last[uri] = Shown(prefix, suffix_line, completion)
        key = self._key(prefix, suffix_line)
        self._lru.pop(key, None)
        self._lru[key] = completion
        while len(self._lru) > self.max_entries:
            self._lru.popitem(last=False)

    def lookup(self, uri: str, prefix: str, suffix_line: str) -> str | None:
        """A completion for this exact context, or None. Never stale: keys are the text itself."""
        found = self.find(uri, prefix, suffix_line)
        return found[0] if found else None

    def find(self, uri: str, prefix: str, suffix_line: str) -> tuple[str, str] | None:
        """(completion, how): how is "typed through" or "seen here before"."""
        hit = self._lru.get(self._key(prefix, suffix_line))
        if hit is not None:
            return hit, "seen here before"
        rest = self._typed_through(uri, prefix, suffix_line)
        return (rest, "typed through") if rest is not None else None

    def _typed_through(self, uri: str, prefix: str, suffix_line: str) -> str | None:
        shown = self._last.get(uri)
        if shown is None or not prefix.startswith(shown.prefix):
            return None
        typed = prefix[len(shown.prefix) :]
        if not typed or suffix_line != shown.suffix_line:
            return None
        if shown.completion.startswith(typed) and len(shown.completion) > len(typed):
            rest = shown.completion[len(typed) :]
            # Don't carry a multi-line remainder onto a line the user has just finished.
            return rest
        return None

    def clear(self) -> None:
        """Settings changed: earlier suggestions may not be what the new settings produce."""
        self._last.clear()
        self._lru.clear()

    def forget(self, uri: str) -> None:
        self._last.pop(uri, None)

    def __len__(self) -> int:
        return len(self._lru)
