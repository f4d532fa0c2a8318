"""The completion cache: typing through a suggestion, returning to a place, never stale.

The engine-level tests use a backend whose answer is a function of the whole prompt, so an
answer served for other inputs shows: it differs from what the model says for these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from wren.cards import load_cards
from wren.config import CompletionSettings, ContextSettings, Settings
from wren.engine.cache import CompletionCache, context_key
from wren.engine.completion import CompletionDetails, CompletionEngine
from wren.types import CancelToken, GenerationParams, GenerationResult, Snapshot

# -- the cache itself ----------------------------------------------------------------------


def test_typing_through_the_suggestion() -> None:
    cache = CompletionCache()
    cache.remember("u", "x = compute(", ")\n", "k", "values, 3")
    assert cache.typed_through("u", "x = compute(val", ")\n") == "ues, 3"
    assert cache.typed_through("u", "x = compute(values, 3", ")\n") is None  # fully typed
    assert cache.typed_through("u", "x = compute(", ")\n") is None  # nothing typed: not this layer


def test_typing_through_never_serves_after_another_edit() -> None:
    cache = CompletionCache()
    prefix = "def f(count):\n    x = compute("
    cache.remember("u", prefix, ")\nprint(x)\n", "k", "count, 3")
    assert cache.typed_through("u", prefix + "z", ")\nprint(x)\n") is None  # typed other text
    assert cache.typed_through("u", prefix + "c", "), 4\nprint(x)\n") is None  # line changed
    assert cache.typed_through("u", prefix + "c", ")\nprint(y)\n") is None  # a later line
    renamed = prefix.replace("count", "total")
    assert cache.typed_through("u", renamed + "c", ")\nprint(x)\n") is None  # an earlier line
    assert cache.typed_through("other", prefix + "c", ")\nprint(x)\n") is None  # another file


def test_seen_answers_only_the_exact_key_and_is_bounded() -> None:
    cache = CompletionCache(max_entries=3)
    for i in range(5):
        cache.remember("u", f"line{i} = ", "", f"key{i}", f"value{i}")
    assert len(cache) == 3
    assert cache.seen("key4") == "value4"
    assert cache.seen("key0") is None


def test_context_key_separates_its_parts() -> None:
    assert context_key("ab", "c") != context_key("a", "bc")
    assert context_key("a", "b") == context_key("a", "b")
    assert context_key("\ud800") != context_key("\udc00")  # lone surrogates hash too


def test_clear_forgets_everything() -> None:
    cache = CompletionCache()
    cache.remember("u", "x = ", "", "k", "1")
    cache.clear()
    assert len(cache) == 0 and cache.seen("k") is None
    assert cache.typed_through("u", "x = ", "") is None


# -- through the completion engine -----------------------------------------------------------


class PromptHashBackend:
    """Answers with a name derived from the whole prompt: different inputs, different answer."""

    name = "prompt-hash"
    device = "cpu"

    def __init__(self) -> None:
        self.calls = 0

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text[::4]]

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
        return GenerationResult(self.answer(prompt), 3, len(prompt), 0, 0.0, 0.0, "newline")

    @staticmethod
    def answer(prompt: str) -> str:
        return "value_" + hashlib.sha1(prompt.encode()).hexdigest()[:8]


def _card() -> Any:
    return next(c for c in load_cards() if c.family == "smollm")


SETTINGS = Settings(
    completion=CompletionSettings(rerank=False), context=ContextSettings(enabled=False)
)


def long_function(param: str) -> str:
    """A function whose parameter is named 30+ lines above the cursor (end of the text)."""
    body = "".join(f"    step_{i} = helper({i}, scale=2)\n" for i in range(32))
    return f"def process({param}, options=None):\n" + body + "    return "


def complete(engine: CompletionEngine, uri: str, text: str) -> CompletionDetails:
    details = CompletionDetails(uri=uri, line=0, character=0, version=0)
    engine.complete(Snapshot(uri, text, len(text)), SETTINGS, CancelToken(), details)
    return details


def test_an_edit_thirty_lines_up_is_not_answered_with_the_old_suggestion() -> None:
    backend = PromptHashBackend()
    engine = CompletionEngine(backend, _card())
    uri = "file:///w/process.py"
    before, after = long_function("records"), long_function("rows")
    assert before[-400:] == after[-400:]  # the old key (last 400 chars) could not tell them apart
    first = complete(engine, uri, before)
    assert first.source == "model" and first.completion
    again = complete(engine, uri, before)  # the same place, nothing changed: from the cache
    assert again.source == "cache" and again.completion == first.completion
    renamed = complete(engine, uri, after)
    assert renamed.source == "model"
    assert renamed.completion != first.completion
    assert renamed.completion == complete(CompletionEngine(backend, _card()), uri, after).completion


def test_another_file_ending_the_same_way_gets_its_own_answer() -> None:
    backend = PromptHashBackend()
    engine = CompletionEngine(backend, _card())
    tail = long_function("records")
    a = '"""Orders."""\nimport orders\n\n\n' + tail
    b = '"""Invoices."""\nimport invoices\n\n\n' + tail
    assert a[-400:] == b[-400:]
    first = complete(engine, "file:///w/a.py", a)
    other = complete(engine, "file:///w/b.py", b)
    assert other.source == "model"
    assert other.completion != first.completion
    assert backend.calls == 2


def test_typing_through_through_the_engine_and_nothing_else() -> None:
    backend = PromptHashBackend()
    engine = CompletionEngine(backend, _card())
    uri = "file:///w/process.py"
    text = long_function("records")
    first = complete(engine, uri, text)
    suggestion = first.completion
    through = complete(engine, uri, text + suggestion[:3])
    assert through.source == "cache" and through.completion == suggestion[3:]
    assert "typed through" in through.reason
    edited = text.replace("records", "rows") + suggestion[:3]  # typed, and renamed above
    assert complete(engine, uri, edited).source == "model"
    assert backend.calls == 2
