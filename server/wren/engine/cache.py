"""Completion cache: answer without the model when nothing that decides the answer changed.

Two layers:

- "typed through", per document: the last suggestion, with the whole text before and after
  the cursor it was made for. A request whose text before the cursor is that text plus
  characters the suggestion starts with, and whose text after the cursor is unchanged, gets
  the rest of the suggestion. Checked before any context is gathered (the keystroke path).
- "seen here before", an LRU keyed by a digest of everything the answer is computed from:
  the final prompt (which holds the context from other files), the document the clean-up
  reads (all of it: post-processing parses the file), the cursor, and the generation
  settings. Looked up once the prompt is built, so an edit anywhere above the cursor, or
  another file that merely ends the same way, never gets an answer made for other text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass


def context_key(*parts: str) -> str:
    """A digest of `parts`, each length-prefixed so that no two different lists collide by
    concatenation ("ab", "c" vs "a", "bc")."""
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class Shown:
    prefix: str  # the document's whole text before the cursor
    suffix: str  # and after it
    completion: str


class CompletionCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._last: dict[str, Shown] = {}
        self._lru: OrderedDict[str, str] = OrderedDict()

    def remember(self, uri: str, prefix: str, suffix: str, key: str, completion: str) -> None:
        """Keep `completion`, made for the document `prefix` + `suffix` (cursor between)
        and for everything digested into `key` (see `context_key`)."""
        if not completion:
            return
        self._last[uri] = Shown(prefix, suffix, completion)
        self._lru.pop(key, None)
        self._lru[key] = completion
        while len(self._lru) > self.max_entries:
            self._lru.popitem(last=False)

    def seen(self, key: str) -> str | None:
        """The completion made for exactly these inputs, or None."""
        hit = self._lru.get(key)
        if hit is not None:
            self._lru.move_to_end(key)
        return hit

    def typed_through(self, uri: str, prefix: str, suffix: str) -> str | None:
        """The rest of the document's last suggestion when the user has typed its start
        (and changed nothing else), or None."""
        shown = self._last.get(uri)
        if shown is None or suffix != shown.suffix or not prefix.startswith(shown.prefix):
            return None
        typed = prefix[len(shown.prefix) :]
        if typed and shown.completion.startswith(typed) and len(shown.completion) > len(typed):
            return shown.completion[len(typed) :]
        return None

    def clear(self) -> None:
        """Settings changed: earlier suggestions may not be what the new settings produce."""
        self._last.clear()
        self._lru.clear()

    def forget(self, uri: str) -> None:
        self._last.pop(uri, None)

    def __len__(self) -> int:
        return len(self._lru)
