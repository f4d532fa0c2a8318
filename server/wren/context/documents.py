"""Document snapshots with LSP-exact line handling and position conversion.

LSP lines end at "\\n", "\\r\\n" or a lone "\\r" — nothing else (unlike `str.splitlines`, which
also splits at form feeds and U+2028). Positions count UTF-16 code units by default, or
UTF-8 bytes / code points when negotiated. Out-of-range positions are clamped: a character
past the end of a line means the end of that line; a line past the end means end of file.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from dataclasses import dataclass, field

_EOL = re.compile(r"\r\n|\r|\n")

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def _units(ch: str, encoding: str) -> int:
    cp = ord(ch)
    if encoding == UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def units_len(text: str, encoding: str) -> int:
    """Length of `text` in the position encoding's units. A lone surrogate (JSON and
    JavaScript strings can hold one) counts as one UTF-16 unit / three UTF-8 bytes, as
    `_units` counts it, instead of failing to encode."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF16:
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    return len(text.encode("utf-8", "surrogatepass"))


@dataclass
class Document:
    uri: str
    text: str
    version: int = 0
    language_id: str = "plaintext"
    _starts: list[int] | None = field(default=None, repr=False)

    @property
    def line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _EOL.finditer(self.text)]
        return self._starts

    def line_end(self, line: int) -> int:
        """Offset of the end of `line`'s content (before its line break)."""
        starts = self.line_starts
        end = starts[line + 1] if line + 1 < len(starts) else len(self.text)
        while end > starts[line] and self.text[end - 1] in "\r\n":
            end -= 1
        return end

    def offset_at(self, line: int, character: int, encoding: str = UTF16) -> int:
        """Character offset for an LSP position, clamped into the document."""
        starts = self.line_starts
        if line < 0:
            return 0
        if line >= len(starts):
            return len(self.text)
        start, end = starts[line], self.line_end(line)
        if character <= 0:
            return start
        if encoding == UTF32 or self.text[start:end].isascii():
            return min(start + character, end)
        used = 0
        for i in range(start, end):
            used += _units(self.text[i], encoding)
            if used > character:
                return i  # a position inside a surrogate pair / multi-byte char snaps back
            if used == character:
                return i + 1
        return end

    def position_at(self, offset: int, encoding: str = UTF16) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.line_starts, offset) - 1
        # An offset between "\r" and "\n" belongs to the end of that line.
        start = self.line_starts[line]
        return line, units_len(self.text[start:offset], encoding)

    def apply_change(
        self,
        start: tuple[int, int] | None,
        end: tuple[int, int] | None,
        new_text: str,
        encoding: str = UTF16,
    ) -> None:
        """Apply one content change; `start`/`end` None means a full replacement."""
        if start is None or end is None:
            self.text = new_text
        else:
            a = self.offset_at(*start, encoding=encoding)
            b = self.offset_at(*end, encoding=encoding)
            if b < a:
                a, b = b, a
            self.text = self.text[:a] + new_text + self.text[b:]
        self._starts = None


class DocumentStore:
    """The open documents. Mutated on the event loop; snapshots are read by the worker."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}
        self._lock = threading.Lock()

    def open(self, uri: str, text: str, version: int, language_id: str) -> Document:
        with self._lock:
            doc = Document(uri, text, version, language_id)
            self._docs[uri] = doc
            return doc

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def close(self, uri: str) -> None:
        with self._lock:
            self._docs.pop(uri, None)

    def __contains__(self, uri: str) -> bool:
        return uri in self._docs

    def __len__(self) -> int:
        return len(self._docs)
