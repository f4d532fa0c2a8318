"""Snippets from other open/recently edited documents that look like the code at the cursor.

The classic "neighboring tabs" heuristic: the ~20 lines before the cursor are compared,
as a set of tokens, with sliding windows of lines from other documents of the same
language family; the windows with the highest Jaccard similarity become prompt context.
Pure Python, bounded in memory (LRU of documents) and time (`budget_s`).
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import unquote, urlparse

from wren.types import ContextSnippet, Snapshot

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
MAX_DOCUMENTS = 20
MAX_DOCUMENT_CHARS = 500_000  # larger documents are not indexed (generated or data files)
MIN_SCORE = 0.05

# Documents in one family can borrow from each other.
_FAMILIES: dict[str, str] = {
    "javascript": "js",
    "javascriptreact": "js",
    "typescript": "js",
    "typescriptreact": "js",
    "c": "c",
    "cpp": "c",
    "cuda-cpp": "c",
    "objective-c": "c",
    "objective-cpp": "c",
}


def language_family(language_id: str) -> str:
    return _FAMILIES.get(language_id, language_id)


def tokenize_line(line: str) -> frozenset[str]:
    """The identifier/number tokens of a line, as a set."""
    return frozenset(_TOKEN.findall(line))


def uri_to_path(uri: str) -> str:
    """A readable path for a document uri (the uri itself when it is not a file uri)."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return uri


@dataclass
class _Document:
    """A stored document. Its token index is built on first use: `update` runs on every
    keystroke of the active document, which is never compared with itself."""

    text: str
    language_id: str

    @cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @cached_property
    def line_tokens(self) -> list[frozenset[str]]:
        return [tokenize_line(line) for line in self.lines]


class RecentDocuments:
    """A bounded store of open/recently edited documents (LRU, `capacity` entries)."""

    def __init__(self, capacity: int = MAX_DOCUMENTS) -> None:
        self.capacity = capacity
        self._docs: OrderedDict[str, _Document] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, uri: object) -> bool:
        return uri in self._docs

    def update(self, uri: str, text: str, language_id: str) -> None:
        """Record the latest text of a document and mark it most recently used."""
        if len(text) > MAX_DOCUMENT_CHARS:
            self.remove(uri)
            return
        with self._lock:
            current = self._docs.get(uri)
            if current is None or current.text != text or current.language_id != language_id:
                current = _Document(text, language_id)
            self._docs[uri] = current
            self._docs.move_to_end(uri)
            while len(self._docs) > self.capacity:
                self._docs.popitem(last=False)

    def remove(self, uri: str) -> None:
        with self._lock:
            self._docs.pop(uri, None)

    def similar_snippets(
        self,
        snapshot: Snapshot,
        max_snippets: int = 2,
        window_lines: int = 20,
        budget_s: float = 0.02,
    ) -> list[ContextSnippet]:
        """The windows of other documents most similar to the lines before the cursor.

        At most one window per document, best first; stops looking when `budget_s` is spent.
        """
        if max_snippets <= 0 or window_lines <= 0:
            return []
        deadline = time.perf_counter() + budget_s
        query_lines = snapshot.prefix.split("\n")[-window_lines:]
        query: set[str] = set()
        for line in query_lines:
            query |= tokenize_line(line)
        if not query:
            return []
        family = language_family(snapshot.language_id)
        with self._lock:
            # most recently used first: when the budget runs out, the freshest were seen
            candidates = [
                (uri, doc)
                for uri, doc in reversed(self._docs.items())
                if uri != snapshot.uri and language_family(doc.language_id) == family
            ]
        found: list[ContextSnippet] = []
        for uri, doc in candidates:
            if time.perf_counter() > deadline:
                break
            best = _best_window(doc, query, window_lines, deadline)
            if best is None:
                continue
            score, start = best
            text = "\n".join(doc.lines[start : start + window_lines]).strip("\n")
            if text.strip():
                found.append(ContextSnippet(uri_to_path(uri), text, "neighbor", score))
        found.sort(key=lambda s: s.score, reverse=True)
        return found[:max_snippets]


def _best_window(
    doc: _Document, query: set[str], window_lines: int, deadline: float
) -> tuple[float, int] | None:
    """(Jaccard score, first line) of the best window of `doc`, sliding one line at a time.

    The window's token multiset is kept in a Counter so each step costs only the tokens of
    the line entering and the line leaving.
    """
    n = len(doc.line_tokens)
    if n == 0:
        return None
    size = min(window_lines, n)
    counts: Counter[str] = Counter()
    shared = 0  # distinct tokens of the window that are also in the query

    def add(tokens: frozenset[str]) -> int:
        gained = 0
        for tok in tokens:
            counts[tok] += 1
            if counts[tok] == 1 and tok in query:
                gained += 1
        return gained

    def drop(tokens: frozenset[str]) -> int:
        lost = 0
        for tok in tokens:
            counts[tok] -= 1
            if counts[tok] == 0:
                del counts[tok]
                if tok in query:
                    lost += 1
        return lost

    for i in range(size):
        shared += add(doc.line_tokens[i])
    best: tuple[float, int] | None = None
    start = 0
    while True:
        union = len(counts) + len(query) - shared
        score = shared / union if union else 0.0
        if score >= MIN_SCORE and (best is None or score > best[0]):
            best = (score, start)
        end = start + size
        if end >= n or (start % 64 == 0 and time.perf_counter() > deadline):
            break
        shared -= drop(doc.line_tokens[start])
        shared += add(doc.line_tokens[end])
        start += 1
    return best
