"""Document store: LSP line endings, position encodings, clamping, incremental edits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wren.context.documents import UTF8, UTF16, UTF32, Document

TEXT = "a😋b\r\nçé\rx\ny"  # emoji (astral), CRLF, lone CR, combining-free accents


def test_line_starts_follow_lsp_line_endings_only() -> None:
    doc = Document("u", "one\x0ctwo\u2028three\r\nfour\rfive\nsix")
    # Form feed and U+2028 are not line breaks in LSP.
    assert len(doc.line_starts) == 4
    assert doc.text[doc.line_starts[1] :].startswith("four")


@pytest.mark.parametrize(
    ("encoding", "character", "expected"),
    [(UTF16, 3, 2), (UTF8, 5, 2), (UTF32, 2, 2), (UTF16, 1, 1), (UTF16, 4, 3)],
)
def test_offset_in_each_encoding(encoding: str, character: int, expected: int) -> None:
    # Line 0 is "a😋b": 😋 is 2 UTF-16 units and 4 UTF-8 bytes.
    assert Document("u", TEXT).offset_at(0, character, encoding) == expected


def test_position_inside_a_surrogate_pair_snaps_back() -> None:
    assert Document("u", TEXT).offset_at(0, 2, UTF16) == 1


def test_positions_are_clamped() -> None:
    doc = Document("u", TEXT)
    assert doc.offset_at(0, 99) == doc.line_end(0) == 3
    assert doc.offset_at(99, 0) == len(TEXT)
    assert doc.offset_at(-1, 0) == 0


@pytest.mark.parametrize("encoding", [UTF8, UTF16, UTF32])
def test_position_round_trip(encoding: str) -> None:
    doc = Document("u", TEXT)
    for offset in range(len(TEXT) + 1):
        if TEXT[offset - 1 : offset + 1] == "\r\n":
            continue  # between CR and LF is not a position
        line, char = doc.position_at(offset, encoding)
        assert doc.offset_at(line, char, encoding) == offset


def _pos(doc: Document, offset: int, encoding: str) -> tuple[int, int]:
    return doc.position_at(offset, encoding)


alphabet = st.sampled_from([*list("ab \n\r\t"), "\r\n", "😋", "中", "é", "é", "𝔘", "\x0c"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(alphabet, max_size=30).map("".join),
    st.lists(
        st.tuples(
            st.integers(0, 60), st.integers(0, 60), st.lists(alphabet, max_size=5).map("".join)
        ),
        max_size=12,
    ),
    st.sampled_from([UTF8, UTF16, UTF32]),
)
def test_incremental_edits_match_plain_string_edits(
    start: str, edits: list[tuple[int, int, str]], encoding: str
) -> None:
    doc = Document("u", start)
    expected = start
    for a, b, new in edits:
        a, b = sorted((min(a, len(expected)), min(b, len(expected))))
        # Never split a CRLF pair: LSP positions can't point between CR and LF.
        if 0 < a < len(expected) and expected[a - 1 : a + 1] == "\r\n":
            a -= 1
        if 0 < b < len(expected) and expected[b - 1 : b + 1] == "\r\n":
            b += 1
        doc.apply_change(_pos(doc, a, encoding), _pos(doc, b, encoding), new, encoding)
        expected = expected[:a] + new + expected[b:]
        assert doc.text == expected
