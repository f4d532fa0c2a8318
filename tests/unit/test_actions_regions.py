"""What the actions work on: definitions, fix regions, generate specs."""

from __future__ import annotations

import pytest

from wren.engine.actions.regions import (
    BadInput,
    enclosing_definition,
    explain_region,
    find_generate_spec,
    fix_region,
    indentation_block,
    whole_lines,
)

CODE = '''import os


class Store:
    """Keeps things."""

    def __init__(self):
        self.items = []

    @property
    def size(self):
        return len(self.items)


def main():
    s = Store()

    print(s.size)
'''


def test_enclosing_definition_is_the_innermost_function() -> None:
    offset = CODE.index("len(self")
    start, end = enclosing_definition("python", CODE, offset) or (0, 0)
    assert CODE[start:end].startswith("@property\n    def size")  # decorators included


def test_blank_line_inside_a_body_belongs_to_it() -> None:
    offset = CODE.index("\n\n    print") + 1
    start, _ = enclosing_definition("python", CODE, offset) or (0, 0)
    assert CODE[start:].startswith("def main")


def test_explain_region_falls_back_to_the_file() -> None:
    region = explain_region("python", CODE, 0, 0)
    assert region.source == "file" and region.first_row == 0


def test_selection_is_whole_lines_and_a_trailing_column_zero_does_not_count() -> None:
    text = "a = 1\nb = 2\nc = 3\n"
    region = whole_lines(text, 2, 6, "selection")  # "= 1\n" ends at the start of line 2
    assert (region.first_row, region.last_row) == (0, 0)
    assert region.text_of(text) == "a = 1\n"


def test_fix_region_for_a_one_token_diagnostic_is_the_function() -> None:
    offset = CODE.index("self.items = []")
    region = fix_region("python", CODE, offset, offset + 4)
    assert region.text_of(CODE).lstrip().startswith("def __init__")


def test_fix_region_in_a_broken_file_uses_indentation() -> None:
    text = "class A:\n    def m(self)\n        return 1\n\n    def n(self):\n        return 2\n"
    region = fix_region("python", text, text.index("m(self)"), text.index("m(self)"))
    assert region.text_of(text) == "    def m(self)\n        return 1\n"


def test_indentation_block_stops_at_the_next_statement() -> None:
    text = "x = f(\n    1,\n)\ny = 2\n"
    assert indentation_block(text, 1) == (0, 2)


def test_comment_spec_and_insertion_point() -> None:
    text = "import os\n\n# list the files\n# in a folder\n\nprint(1)\n"
    spec = find_generate_spec("python", text, text.index("\n\nprint") + 1)
    assert spec.kind == "comment"
    assert spec.request == "list the files in a folder"
    assert spec.insert_start == text.index("\n\nprint") + 1
    assert spec.context == "import os"


def test_comment_on_the_last_line_without_a_line_break() -> None:
    text = "x = 1\n# double x"
    spec = find_generate_spec("python", text, len(text))
    assert spec.insert_start == len(text) and spec.needs_leading_eol


def test_docstring_spec_replaces_a_stub() -> None:
    text = 'def f(a):\n    """Add one."""\n    ...\n\nx = 1\n'
    spec = find_generate_spec("python", text, text.index("Add"))
    assert spec.kind == "docstring" and spec.function_name == "f"
    assert text[spec.insert_start : spec.insert_end] == "    ...\n"
    assert spec.indent == "    "


def test_function_with_a_body_is_not_a_spec() -> None:
    text = 'def f(a):\n    """Add one."""\n    return a + 1\n'
    with pytest.raises(BadInput, match="comment"):
        find_generate_spec("python", text, text.index("Add"))


def test_javascript_comment_spec() -> None:
    text = "// add two numbers\n"
    spec = find_generate_spec("javascript", text, len(text))
    assert spec.request == "add two numbers" and spec.kind == "comment"
