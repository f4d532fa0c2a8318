"""Text as the tokenizer can take it.

Editors can send a lone UTF-16 surrogate (JSON `"\\ud800"`, a JavaScript string holding half a
pair); Python keeps it in a str, but the Rust tokenizers refuse such a string outright. The
model sees U+FFFD in its place; everything else is passed through untouched.
"""

from __future__ import annotations


def tokenizable(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (the same object when it has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text
