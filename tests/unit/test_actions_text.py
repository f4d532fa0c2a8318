"""Pure text handling for the actions: code extraction, layout (indentation, CRLF), examples."""

from __future__ import annotations

import pytest

from wren.engine.actions.examples import check_script, examples_from_docstring, examples_in_code
from wren.engine.actions.extract import (
    drop_example_usage,
    extract_code,
    function_body,
)
from wren.engine.actions.layout import (
    dedent,
    detect_eol,
    detect_indent_unit,
    has_long_lines,
    looks_binary,
    reindent,
    to_eol,
)
from wren.engine.actions.outcome import minimal_edit
from wren.engine.actions.prompts import number_lines

# -- extraction -----------------------------------------------------------------------------


def test_prefilled_fence_takes_code_up_to_the_closing_fence() -> None:
    answer = "def f():\n    return 1\n```\nThis function returns one."
    got = extract_code(answer, "python", prefilled_fence=True)
    assert got.code == "def f():\n    return 1\n"
    assert got.complete


def test_prefilled_fence_without_closing_fence_is_incomplete() -> None:
    got = extract_code("def f():\n    return 1", "python", prefilled_fence=True)
    assert got.code == "def f():\n    return 1\n"
    assert not got.complete


def test_fence_glued_to_the_last_line() -> None:
    got = extract_code("def f():\n    return 1```", "python", prefilled_fence=True)
    assert got.code == "def f():\n    return 1\n"


def test_prose_around_a_fenced_block_is_dropped() -> None:
    answer = "Sure! Here is the code:\n\n```python\nx = 1\n```\n\nIt sets x.\n"
    assert extract_code(answer, "python").code == "x = 1\n"


def test_the_block_in_the_requested_language_wins() -> None:
    answer = "```bash\npip install foo\n```\n```py\nimport foo\n```\n"
    assert extract_code(answer, "python").code == "import foo\n"


def test_tilde_fences_and_special_tokens() -> None:
    answer = "~~~python\ny = 2\n~~~<|im_end|>"
    assert extract_code(answer, "python").code == "y = 2\n"


@pytest.mark.parametrize(
    "answer",
    ["I cannot help with that.", "Sure", "", "The function adds two numbers and returns it."],
)
def test_no_code_block_gives_a_reason(answer: str) -> None:
    got = extract_code(answer, "python")
    assert got.code is None
    assert "code" in got.reason


def test_empty_prefilled_answer_gives_a_reason() -> None:
    got = extract_code("```\n", "python", prefilled_fence=True)
    assert got.code is None and got.reason


def test_bare_code_without_fence_is_accepted_for_python() -> None:
    assert extract_code("def g(x):\n    return x * 2\n", "python").code == (
        "def g(x):\n    return x * 2\n"
    )


def test_drop_example_usage_after_definitions() -> None:
    code = (
        "import math\n\ndef area(r):\n    return math.pi * r * r\n\n"
        "# Test the function\nprint(area(2))\nif __name__ == '__main__':\n    area(1)\n"
    )
    assert drop_example_usage(code) == "import math\n\ndef area(r):\n    return math.pi * r * r\n"
    assert drop_example_usage("x = 1\nprint(x)\n") == "x = 1\nprint(x)\n"  # no definitions


def test_function_body_skips_the_docstring() -> None:
    code = 'def f(a):\n    """Doc."""\n    # why\n    b = a + 1\n    return b\n\nprint(f(1))\n'
    assert function_body(code, "f") == "# why\nb = a + 1\nreturn b\n"
    assert function_body(code, "missing") is None
    assert function_body('def f():\n    """Only a docstring."""\n', "f") is None


# -- layout ---------------------------------------------------------------------------------


def test_detect_eol() -> None:
    assert detect_eol("a\r\nb\r\nc\n") == "\r\n"
    assert detect_eol("a\nb\n") == "\n"
    assert detect_eol("no line break") == "\n"
    assert detect_eol("old\rmac\r") == "\r"


def test_to_eol_writes_every_break_the_same_way() -> None:
    assert to_eol("a\nb\r\nc\rd\n", "\r\n") == "a\r\nb\r\nc\r\nd\r\n"
    assert to_eol("a\r\nb\r\n", "\n") == "a\nb\n"


def test_detect_indent_unit() -> None:
    assert detect_indent_unit("def f():\n\tif x:\n\t\treturn 1\n") == "\t"
    assert detect_indent_unit("def f():\n  if x:\n    return 1\n") == "  "
    assert detect_indent_unit("x = 1\n") == "    "


def test_reindent_to_a_method_with_tabs() -> None:
    code = "def m(self):\n    if self.x:\n        return 1\n    return 2\n"
    out = reindent(code, "\t", "\t")
    assert out == "\tdef m(self):\n\t\tif self.x:\n\t\t\treturn 1\n\t\treturn 2\n"


def test_reindent_from_two_spaces_to_four() -> None:
    code = "  def f():\n    return 1\n\n  x = 2"
    assert reindent(code, "    ", "    ") == "    def f():\n        return 1\n\n    x = 2"


def test_dedent_keeps_relative_indentation_and_empties_blank_lines() -> None:
    assert dedent("    a\n      b\n   \n    c") == "a\n  b\n\nc"


def test_minimal_edit_leaves_unchanged_lines_alone() -> None:
    text = "a = 1\r\nb = 2\r\nc = 3\r\n"
    edit = minimal_edit(text, 0, len(text), "a = 1\r\nb = 20\r\nc = 3\r\n")
    assert text[edit.start : edit.end] == "b = 2\r\n"
    assert edit.new_text == "b = 20\r\n"
    assert edit.apply(text) == "a = 1\r\nb = 20\r\nc = 3\r\n"


def test_long_lines_and_binary() -> None:
    assert has_long_lines("x" * 5001)
    assert not has_long_lines("x" * 5000 + "\n" + "y" * 10)
    assert looks_binary("abc\x00def")
    assert looks_binary("".join(chr(i) for i in range(1, 9)) * 10)
    assert not looks_binary("def f():\n\treturn 1\n")


def test_number_lines_right_aligns() -> None:
    assert number_lines("a\nb\n", 9) == " 9| a\n10| b"


# -- examples -------------------------------------------------------------------------------


def test_doctest_examples() -> None:
    doc = ">>> add(1, 2)\n3\n>>> add(0, 0)\n0\n"
    got = examples_from_docstring(doc, {"add"})
    assert [(e.call, e.expected) for e in got] == [("add(1, 2)", "3"), ("add(0, 0)", "0")]


@pytest.mark.parametrize(
    "line",
    [
        "add(1, 2) == 3",
        "add(1, 2) ➞ 3",
        "add(1, 2) -> 3",
        "add(1, 2) => 3",
        "add(1, 2) ==> 3",
        "add(1, 2) should return 3",
        "Example: add(1, 2) returns 3.",
        ">>> add(1, 2) == 3",
        "add(1, 2)   # returns 3",
    ],
)
def test_arrow_examples(line: str) -> None:
    (ex,) = examples_from_docstring(line, {"add"})
    assert (ex.call, ex.expected) == ("add(1, 2)", "3")


def test_examples_that_are_not_code_are_ignored() -> None:
    doc = "is_happy(a) => False\nother(1) == 2\nadd(1, 2) -> 19 - 5 = 8\n"
    assert examples_from_docstring(doc, {"is_happy", "add"}) == []


def test_examples_in_code_reads_docstrings() -> None:
    code = (
        'def double(x):\n    """Twice x.\n\n    >>> double(2)\n    4\n    """\n    return x * 2\n'
    )
    (ex,) = examples_in_code(code)
    assert ex.describe() == "double(2) == 4"


def test_check_script_reports_failures() -> None:
    from wren.engine.actions.sandbox import run_python

    code = "def double(x):\n    return x + 2\n"
    examples = examples_in_code(
        'def double(x):\n    """\n    >>> double(2)\n    4\n    >>> double(5)\n    10\n    """\n'
    )
    result = run_python(check_script(code, examples), timeout_s=10)
    assert not result.ok
    assert "double(5) returned 7, expected 10" in result.reason
    ok = run_python(check_script("def double(x):\n    return 2 * x\n", examples), timeout_s=10)
    assert ok.ok, ok.stderr


def test_check_script_float_tolerance_and_given_test() -> None:
    from wren.engine.actions.examples import Example
    from wren.engine.actions.sandbox import run_python

    code = "def third():\n    return 1 / 3\n"
    script = check_script(code, [Example("third()", "0.3333333333")], "assert third() < 1")
    assert run_python(script, timeout_s=10).ok
    failing = check_script(code, [], "assert third() > 1, 'too small'")
    result = run_python(failing, timeout_s=10)
    assert not result.ok and "too small" in result.reason
