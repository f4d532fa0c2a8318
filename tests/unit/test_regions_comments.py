"""Generate from Comment finds comments through the grammar, not with marker patterns."""

from __future__ import annotations

import pytest

from wren.engine.actions.regions import (
    BadInput,
    comment_lines,
    fallback_comment_lines,
    find_generate_spec,
    is_comment_line,
)


def test_c_pointer_store_is_code_not_a_comment() -> None:
    text = "void reset(int *p) {\n    *p = 0;\n    \n}\n"
    row = 1
    assert not is_comment_line("c", text, row)
    with pytest.raises(BadInput, match="comment"):
        find_generate_spec("c", text, text.index("    \n}") + 4)


def test_c_block_comment_spans_lines_and_loses_its_stars() -> None:
    text = (
        "int main(void) {\n    /*\n     * count the arguments\n     * and print them\n"
        "     */\n    \n}\n"
    )
    spec = find_generate_spec("c", text, text.index("    \n}") + 4)
    assert spec.kind == "comment"
    assert spec.request == "count the arguments and print them"
    assert spec.insert_start == text.index("    \n}")
    assert spec.indent == "    "


def test_c_block_comment_followed_by_code_on_its_line_is_not_a_comment_line() -> None:
    text = "/* one */ int x = 1;\n/* two */\n"
    found = comment_lines("c", text, 0, 1)
    assert found == {1: "two"}


def test_typescript_line_comments() -> None:
    text = "class Cart {\n  // sum the quantities\n  // of all items\n  \n}\n"
    spec = find_generate_spec("typescript", text, text.index("  \n}") + 2)
    assert spec.request == "sum the quantities of all items"
    assert spec.indent == "  "


def test_typescript_comment_inside_a_template_string_is_not_a_comment() -> None:
    text = "const s = `\n// not a comment\n`;\n"
    assert not is_comment_line("typescript", text, 1)
    with pytest.raises(BadInput, match="comment"):
        find_generate_spec("typescript", text, text.index("\n`;"))


def test_go_comment_above_a_blank_line() -> None:
    text = "package main\n\n// Max returns the larger of a and b.\n"
    spec = find_generate_spec("go", text, len(text))
    assert spec.request == "Max returns the larger of a and b."
    assert spec.context == "package main"


def test_rust_doc_comments() -> None:
    text = "/// Adds two numbers\n/// and returns the sum.\n"
    spec = find_generate_spec("rust", text, len(text))
    assert spec.request == "Adds two numbers and returns the sum."
    text = "//! Crate docs\n"
    assert comment_lines("rust", text, 0, 0) == {0: "Crate docs"}


def test_python_hash_comment_and_hash_inside_a_string() -> None:
    text = 'x = """\n# not a comment\n"""\n# double x\n'
    assert not is_comment_line("python", text, 1)
    with pytest.raises(BadInput, match="comment"):
        find_generate_spec("python", text, text.index('\n"""\n'))
    spec = find_generate_spec("python", text, len(text))
    assert spec.request == "double x"


def test_python_comment_block_stops_at_a_string_line() -> None:
    text = 's = """\n# inside\n"""\n# outside\n'
    spec = find_generate_spec("python", text, len(text))
    assert spec.request == "outside"


def test_fallback_without_a_grammar_reads_hash_comments() -> None:
    # No grammar for shell: the fallback uses the language's line-comment marker.
    text = "set -e\n# list the files\n"
    spec = find_generate_spec("shellscript", text, len(text))
    assert spec.request == "list the files"
    assert is_comment_line("shellscript", text, 1)
    assert comment_lines("shellscript", text, 0, 1) is None


def test_fallback_for_a_slash_language_follows_block_comments() -> None:
    text = "int f() {\n  *p = 0;\n  /*\n   * swap them\n   */\n}\n"
    found = fallback_comment_lines("kotlin", text, 0, 5)
    assert 1 not in found
    assert found[2] == "" and found[3] == "swap them" and found[4] == ""
