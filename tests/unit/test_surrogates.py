"""Lone UTF-16 surrogates (JSON can carry `"\\ud800"`) in positions and in model input."""

from __future__ import annotations

import pytest

from wren.context.documents import UTF8, UTF16, UTF32, Document, units_len
from wren.model.tokenizable import tokenizable


@pytest.mark.parametrize(("encoding", "units"), [(UTF16, 3), (UTF8, 5), (UTF32, 3)])
def test_units_len_counts_a_lone_surrogate(encoding: str, units: int) -> None:
    assert units_len("a\ud800b", encoding) == units


def test_positions_round_trip_on_a_line_with_a_lone_surrogate() -> None:
    doc = Document("file:///s.py", 'x = 1\nname = "\udc00"; y = ')
    end = len(doc.text)
    line, character = doc.position_at(end, UTF16)
    assert (line, character) == (1, len('name = "\udc00"; y = '))
    assert doc.offset_at(line, character, UTF16) == end
    assert doc.offset_at(*doc.position_at(end, UTF8), encoding=UTF8) == end


def test_the_tokenizer_gets_a_replacement_character_instead() -> None:
    assert tokenizable('s = "\ud800"') == 's = "\ufffd"'
    assert tokenizable("pair \U0001f600 stays") == "pair \U0001f600 stays"
    plain = "nothing to replace"
    assert tokenizable(plain) is plain
