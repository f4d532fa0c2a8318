# ruff: noqa: E501  -- completions and code samples read best as one string per line
"""Post-processing rules, one by one, and the classic failure modes end to end on real code."""

from __future__ import annotations

from pathlib import Path

import pytest

from wren.engine.postprocess import (
    CompletionContext,
    LexState,
    balance_cost,
    clean_completion,
    close_open_brackets,
    cut_at_block_end,
    cut_at_markdown_fence,
    cut_at_prose,
    cut_at_special_tokens,
    cut_at_stop_strings,
    cut_at_suffix_repeat,
    drop_repeated_lines,
    first_line_only,
    fix_indentation,
    is_prose_line,
    reject_nearby_repeat,
    reject_new_parse_errors,
    remove_suffix_overlap,
    scan,
    skip_leading_newlines,
    strip_trailing_whitespace,
)
from wren.engine.trigger import decide_trigger
from wren.types import Mode, Snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
S, M = Mode.SINGLE_LINE, Mode.MULTI_LINE


def load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def at(text: str, anchor: str, language_id: str = "python", before: bool = False) -> Snapshot:
    """The cursor right after (or before) the unique `anchor`."""
    assert text.count(anchor) == 1, f"anchor {anchor!r} must be unique"
    offset = text.index(anchor) + (0 if before else len(anchor))
    return Snapshot("file:///w/f", text, offset, language_id)


def blank_line_after(text: str, anchor: str, indent: str, language_id: str = "python") -> Snapshot:
    """Open a new line holding `indent` after the line containing `anchor`; cursor at its end."""
    assert text.count(anchor) == 1, f"anchor {anchor!r} must be unique"
    line_end = text.index("\n", text.index(anchor))
    new_text = text[: line_end + 1] + indent + "\n" + text[line_end + 1 :]
    return Snapshot("file:///w/f", new_text, line_end + 1 + len(indent), language_id)


def empty_body(text: str, header: str, body: str, indent: str, language_id: str) -> Snapshot:
    """Replace `body` (which follows `header`) with one blank line holding `indent`."""
    assert text.count(header + body) == 1
    new_text = text.replace(header + body, header + "\n" + indent + "\n")
    offset = new_text.index(header) + len(header) + 1 + len(indent)
    return Snapshot("file:///w/f", new_text, offset, language_id)


def ctx(snapshot: Snapshot, mode: Mode = S) -> CompletionContext:
    return CompletionContext(snapshot, mode)


def clean(snapshot: Snapshot, raw: str, mode: Mode, **kwargs: object) -> str:
    return clean_completion(raw, snapshot, mode, **kwargs).text  # type: ignore[arg-type]


def apply(snapshot: Snapshot, completion: str) -> str:
    return snapshot.text[: snapshot.offset] + completion + snapshot.text[snapshot.offset :]


PY = load("inventory.py")
JS = load("cart.js")
GO = load("server.go")
RS = load("stack.rs")
JAVA = load("LruCache.java")
C = load("ring_buffer.c")
CPP = load("matrix.cpp")
TS = load("router.ts")

# A blank, indented line inside `Inventory.by_tag`, after `result = []`.
PY_BLANK_IN_BODY = blank_line_after(PY, "        result = []", "        ")
# The body of `Inventory.restock` emptied: the cursor on its first (blank) line.
PY_EMPTY_RESTOCK = empty_body(
    PY,
    "    def restock(self, sku: str, amount: int) -> int:",
    "\n        item = self._items[sku]\n        item.quantity += amount\n        return item.quantity\n",
    "        ",
    "python",
)


# --- The rules, one at a time ------------------------------------------------------------


class TestSpecialTokens:
    def test_cuts_at_im_end(self) -> None:
        text, note = cut_at_special_tokens("return total<|im_end|>\n<|im_start|>user")
        assert text == "return total"
        assert note is not None and "<|im_end|>" in note

    def test_cuts_at_endoftext_and_file_sep(self) -> None:
        assert cut_at_special_tokens("x = 1<|endoftext|>junk")[0] == "x = 1"
        assert cut_at_special_tokens("x = 1\n<file_sep>other.py\nimport os")[0] == "x = 1\n"

    def test_earliest_token_wins(self) -> None:
        text, _ = cut_at_special_tokens("a<file_sep>b<|im_end|>c")
        assert text == "a"

    def test_model_specific_tokens_are_honoured(self) -> None:
        assert cut_at_special_tokens("done[EOS]more", ["[EOS]"])[0] == "done"

    def test_fim_tokens(self) -> None:
        assert cut_at_special_tokens("x<fim_middle>y")[0] == "x"
        assert cut_at_special_tokens("x<|fim_suffix|>y")[0] == "x"

    def test_tag_like_tokens_are_kept_in_jsx(self) -> None:
        raw = "<s>strike</s>"
        assert cut_at_special_tokens(raw, ["</s>"], "typescriptreact") == (raw, None)
        assert cut_at_special_tokens(raw, ["</s>"], "python")[0] == "<s>strike"

    def test_no_token_no_change(self) -> None:
        assert cut_at_special_tokens("return a < b and c > d") == ("return a < b and c > d", None)


class TestStopStrings:
    def test_cuts_at_the_earliest_stop(self) -> None:
        text, note = cut_at_stop_strings("a = 1\n\ndef g():", ["\ndef ", "\n\n"])
        assert text == "a = 1"
        assert note is not None

    def test_empty_stop_strings_are_ignored(self) -> None:
        assert cut_at_stop_strings("abc", ["", "zzz"]) == ("abc", None)


class TestMarkdownFence:
    def test_cuts_at_fence(self) -> None:
        text, note = cut_at_markdown_fence("total = 0\n```\n\nThis code sums.")
        assert text == "total = 0\n"
        assert note is not None and "fence" in note

    def test_fence_at_start_leaves_nothing(self) -> None:
        assert cut_at_markdown_fence("```python\ndef f():\n    pass\n```")[0] == ""


class TestProse:
    @pytest.mark.parametrize(
        "line",
        [
            "Here is the implementation:",
            "Here's the updated code.",
            "This function returns the total value of all items.",
            "Note: the list must be sorted first.",
            "Sure! Let me explain.",
            "The code above iterates over every item in the inventory.",
            "Explanation:",
            "It loops over the items and adds their prices together.",
            "**Explanation**",
            "1. First we look up the item.",
            "- The loop stops at the first match.",
            "Usage:",
            "Example output:",
            "Please note that the function assumes a sorted list.",
            "To use this function, call it with a path.",
        ],
    )
    def test_prose_lines(self, line: str) -> None:
        assert is_prose_line(line)

    @pytest.mark.parametrize(
        "line",
        [
            "return self.price * self.quantity",
            "for item in self._items.values():",
            "return a if b is not None else c",
            "if item and not item.tags or total:",
            "Item(sku, name, price)",
            "import json",
            "from pathlib import Path",
            "raise ValueError(message)",
            "# This function returns the total value of all items.",
            "String name = user.getName();",
            "const Total = items.length",
            "yield from generate all the items",
            "await Promise.all(tasks);",
            "**kwargs",
            "- offset",
            "default:",
            "public:",
            "outer:",
            "## comment in a shell-ish script",
            "x = 1. * y",
            "",
        ],
    )
    def test_code_lines(self, line: str) -> None:
        assert not is_prose_line(line)

    def test_cut_at_prose_keeps_code_before_it(self) -> None:
        raw = "total = sum(prices)\n        return total\n\nThis function adds up the prices of items."
        text, note = cut_at_prose(raw, ctx(PY_BLANK_IN_BODY, M))
        assert text == "total = sum(prices)\n        return total\n"
        assert note is not None and note.startswith("prose")

    def test_prose_inside_a_docstring_is_kept(self) -> None:
        text = PY.replace(
            '    """Read an inventory from a JSON file."""', '    """Read an inventory'
        )
        snapshot = at(text, '    """Read an inventory')
        raw = ' from a JSON file.\n\n    The file holds a list of records with all item fields.\n    """'
        assert cut_at_prose(raw, ctx(snapshot, M)) == (raw, None)

    def test_prose_in_a_comment_is_kept(self) -> None:
        snapshot = blank_line_after(PY, "        result = []", "        # ")
        raw = "Collect the items that carry the tag in insertion order."
        assert cut_at_prose(raw, ctx(snapshot, M)) == (raw, None)

    def test_markdown_document_is_not_checked(self) -> None:
        snapshot = Snapshot("u", "# Notes\n", 8, "markdown")
        raw = "Here is the plan for the release."
        assert cut_at_prose(raw, ctx(snapshot)) == (raw, None)


class TestLeadingNewline:
    def test_blank_cursor_line_skips_the_leading_newline(self) -> None:
        text, note = skip_leading_newlines("\n        result.append(1)", ctx(PY_BLANK_IN_BODY))
        assert text == "result.append(1)"
        assert note is not None

    def test_deeper_indent_on_the_next_line_is_kept_relative(self) -> None:
        snapshot = blank_line_after(PY, "        result = []", "    ")
        text, _ = skip_leading_newlines("\n        result.append(1)", ctx(snapshot))
        assert text == "    result.append(1)"

    def test_non_blank_cursor_line_keeps_the_newline(self) -> None:
        snapshot = at(PY, "        result = []")
        assert skip_leading_newlines("\n        x = 1", ctx(snapshot)) == ("\n        x = 1", None)

    def test_single_line_mode_end_of_line_suggests_the_next_line(self) -> None:
        snapshot = at(PY, "        result = []")
        text, note = first_line_only(
            "\n        for item in items:\n            pass", ctx(snapshot)
        )
        assert text == "\n        for item in items:"
        assert note is not None


class TestFirstLineOnly:
    def test_keeps_the_first_line(self) -> None:
        text, note = first_line_only("a = 1\nb = 2\nc = 3", ctx(PY_BLANK_IN_BODY))
        assert text == "a = 1"
        assert note is not None and "single-line" in note

    def test_trailing_blank_lines_are_no_news(self) -> None:
        assert first_line_only("a = 1\n\n", ctx(PY_BLANK_IN_BODY)) == ("a = 1", None)


class TestIndentation:
    def test_extra_indentation_on_the_first_line_is_removed(self) -> None:
        text, note = fix_indentation("    return result", ctx(PY_BLANK_IN_BODY))
        assert text == "return result"
        assert note is not None and "indentation" in note

    def test_consistently_over_indented_block_is_shifted(self) -> None:
        raw = "    for item in items:\n                result.append(item)"
        text, _ = fix_indentation(raw, ctx(PY_BLANK_IN_BODY, M))
        assert text == "for item in items:\n            result.append(item)"

    def test_correct_extra_indent_after_a_header_is_kept(self) -> None:
        # the editor left the cursor at the header's indentation; the model indents the body
        snapshot = blank_line_after(PY, "            if tag in item.tags:", "            ")
        assert fix_indentation("    result.append(item)", ctx(snapshot)) == (
            "    result.append(item)",
            None,
        )

    def test_python_body_at_column_zero_is_indented(self) -> None:
        text = PY + "\n\ndef names(inventory: Inventory) -> list[str]:\n\n"
        snapshot = Snapshot("u", text, len(text) - 1, "python")
        fixed, note = fix_indentation("return []", ctx(snapshot, M))
        assert fixed == "    return []"
        assert note is not None

    def test_tabs_become_spaces_in_a_space_indented_file(self) -> None:
        text, _ = fix_indentation(
            "for item in items:\n\t\t\tresult.append(item)", ctx(PY_BLANK_IN_BODY, M)
        )
        assert text == "for item in items:\n" + " " * 12 + "result.append(item)"

    def test_spaces_become_tabs_in_go(self) -> None:
        snapshot = blank_line_after(GO, "c.mu.Lock()", "\t", "go")
        text, _ = fix_indentation("if c == nil {\n        return 0\n    }", ctx(snapshot, M))
        assert text == "if c == nil {\n\t\treturn 0\n\t}"


class TestBlockEnd:
    def test_python_dedent_ends_the_block(self) -> None:
        raw = "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity\n\n    def other(self):\n        pass"
        text, note = cut_at_block_end(raw, ctx(PY_EMPTY_RESTOCK, M))
        assert (
            text
            == "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity"
        )
        assert note is not None and "block end" in note

    def test_python_nested_block_is_kept(self) -> None:
        raw = "for item in self._items.values():\n            if tag in item.tags:\n                result.append(item)\n        return result"
        assert cut_at_block_end(raw, ctx(PY_BLANK_IN_BODY, M)) == (raw, None)

    def test_python_multiline_string_may_dedent(self) -> None:
        raw = 'text = """\nfirst\nsecond\n"""\n        return text'
        assert cut_at_block_end(raw, ctx(PY_BLANK_IN_BODY, M)) == (raw, None)

    def test_python_bracket_continuation_may_dedent(self) -> None:
        raw = "values = [\n    1,\n]\n        return values"
        assert cut_at_block_end(raw, ctx(PY_BLANK_IN_BODY, M)) == (raw, None)

    def test_python_else_closes_the_if_body_being_written(self) -> None:
        snapshot = blank_line_after(PY, "            if tag in item.tags:", "                ")
        raw = "result.append(item)\n            else:\n                continue"
        assert cut_at_block_end(raw, ctx(snapshot, M))[0] == "result.append(item)"

    def test_top_level_stops_at_a_second_definition(self) -> None:
        snapshot = Snapshot("u", "", 0, "python")
        raw = "def one():\n    return 1\n\n\ndef two():\n    return 2"
        assert cut_at_block_end(raw, ctx(snapshot, M))[0] == "def one():\n    return 1"

    def test_brace_block_end_when_the_suffix_has_the_brace(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = "free(rb->data);\n    free(rb);\n}\n\nint other(void) {\n    return 0;\n}"
        assert cut_at_block_end(raw, ctx(snapshot, M))[0] == "free(rb->data);\n    free(rb);"

    def test_brace_inner_blocks_are_kept(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = 'if (rb == NULL) {\n        puts("}");\n        return;\n    }\n    free(rb);'
        assert cut_at_block_end(raw, ctx(snapshot, M)) == (raw, None)

    def test_brace_missing_in_suffix_is_kept_then_cut(self) -> None:
        text = "int f(int x) {\n    \n"
        snapshot = Snapshot("u", text, len(text) - 1, "c")
        raw = "return x;\n}\n\nint g(void) {\n    return 1;\n}"
        assert cut_at_block_end(raw, ctx(snapshot, M))[0] == "return x;\n}"

    def test_empty_braces_on_one_line_keep_the_brace_on_its_own_line(self) -> None:
        text = "function run() {}\n"
        snapshot = Snapshot("u", text, text.index("}"), "javascript")
        raw = "\n  console.log('run');\n}\n\nfunction other() {}"
        assert clean(snapshot, raw, M) == "\n  console.log('run');\n"


class TestRepeats:
    def test_repeated_lines_collapse_to_one(self) -> None:
        text, note = drop_repeated_lines("x += 1\nx += 1\nx += 1\ny = 2")
        assert text == "x += 1\ny = 2"
        assert note is not None

    def test_first_line_compares_with_its_indentation(self) -> None:
        assert drop_repeated_lines("x += 1\n    x += 1", "    ")[0] == "x += 1"

    def test_a_two_line_loop_is_cut(self) -> None:
        raw = "a = f()\nb = g(a)\na = f()\nb = g(a)\na = f()"
        assert drop_repeated_lines(raw)[0] == "a = f()\nb = g(a)"

    def test_distinct_lines_are_kept(self) -> None:
        assert drop_repeated_lines("a = 1\nb = 2\n}\n}") == ("a = 1\nb = 2\n}\n}", None)

    def test_cut_where_a_line_repeats_the_next_line(self) -> None:
        snapshot = blank_line_after(PY, "        item = self._items[sku]", "        ")
        raw = "item.restocked = True\n        item.quantity += amount\n        return item.quantity"
        text, note = cut_at_suffix_repeat(raw, ctx(snapshot, M))
        assert text == "item.restocked = True"
        assert note is not None and "next line" in note

    def test_closing_brace_of_an_inner_block_is_not_the_next_line(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = "if (rb) {\n        free(rb->data);\n    }"
        # `free(rb->data);` is the next line: cut there, though the inner `}` alone would not match
        assert cut_at_suffix_repeat(raw, ctx(snapshot, M))[0] == "if (rb) {"
        assert cut_at_suffix_repeat("if (rb) {\n        x();\n    }", ctx(snapshot, M))[1] is None

    def test_reject_repeat_of_the_previous_line(self) -> None:
        text, note = reject_nearby_repeat("result = []", ctx(PY_BLANK_IN_BODY))
        assert text == ""
        assert note is not None and "previous line" in note

    def test_reject_repeat_of_the_next_line(self) -> None:
        text, note = reject_nearby_repeat(
            "for item in self._items.values():", ctx(PY_BLANK_IN_BODY)
        )
        assert text == ""
        assert note is not None and "next line" in note

    def test_new_line_is_accepted(self) -> None:
        assert reject_nearby_repeat("seen = set()", ctx(PY_BLANK_IN_BODY)) == ("seen = set()", None)


class TestTrailingWhitespace:
    def test_strips_every_line(self) -> None:
        text, note = strip_trailing_whitespace("a = 1   \nb = 2\t\n\n  ", ctx(PY_BLANK_IN_BODY, M))
        assert text == "a = 1\nb = 2"
        assert note == "trailing whitespace"


class TestSuffixOverlap:
    def test_drops_a_retyped_paren(self) -> None:
        snapshot = at(PY, "return self._items.pop(", before=False)
        snapshot = Snapshot(
            "u", PY.replace("pop(sku)", "pop()"), PY.index("pop(sku)") + 4, "python"
        )
        text, note = remove_suffix_overlap("sku)", ctx(snapshot))
        assert text == "sku"
        assert note == "suffix overlap: ')'"

    def test_keeps_a_paren_that_closes_a_call_it_opened(self) -> None:
        snapshot = Snapshot("u", "print()\n", 6, "python")
        assert remove_suffix_overlap("len(items)", ctx(snapshot)) == ("len(items)", None)

    def test_drops_a_quote_and_paren(self) -> None:
        snapshot = Snapshot("u", 'log("")\n', 5, "python")
        assert remove_suffix_overlap('saved")', ctx(snapshot))[0] == "saved"

    def test_drops_a_retyped_bracket_and_semicolon(self) -> None:
        text = "const first = items[];\n"
        snapshot = Snapshot("u", text, text.index("]"), "javascript")
        assert remove_suffix_overlap("0];", ctx(snapshot))[0] == "0"

    def test_nothing_after_the_cursor(self) -> None:
        snapshot = Snapshot("u", "x = \n", 4, "python")
        assert remove_suffix_overlap("f(1)", ctx(snapshot)) == ("f(1)", None)


class TestCloseBrackets:
    def test_closes_a_call_the_completion_opened(self) -> None:
        snapshot = Snapshot("u", "total = \n", 8, "python")
        text, note = close_open_brackets("sum(prices", ctx(snapshot))
        assert text == "sum(prices)"
        assert note is not None

    def test_does_not_add_a_closer_the_suffix_has(self) -> None:
        snapshot = Snapshot("u", "total = sum()\n", 12, "python")
        assert close_open_brackets("prices", ctx(snapshot)) == ("prices", None)

    def test_closes_inner_call_when_suffix_closes_outer(self) -> None:
        snapshot = Snapshot("u", "print()\n", 6, "python")
        assert close_open_brackets("len(items", ctx(snapshot))[0] == "len(items)"

    def test_leaves_the_users_open_bracket_alone(self) -> None:
        snapshot = Snapshot("u", "total = sum(\n", 12, "python")
        assert close_open_brackets("prices", ctx(snapshot)) == ("prices", None)

    def test_block_opener_at_end_of_line_is_not_closed(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        assert close_open_brackets("if (rb == NULL) {", ctx(snapshot)) == (
            "if (rb == NULL) {",
            None,
        )

    def test_a_call_the_next_lines_close_is_left_open(self) -> None:
        # libpng's pngtest.c: the arguments go on on the next line, which closes the call.
        text = (
            "int f(void) {\n   if (\n          &unit_type) != 0)\n      return 1;\n"
            "   return 0;\n}\n"
        )
        snapshot = Snapshot("u", text, text.index("if (") + 4, "c")
        raw = "png_get_pHYs(read_ptr, read_info_ptr, &res_x, &res_y,"
        assert close_open_brackets(raw, ctx(snapshot)) == (raw, None)
        # ... and when nothing after the cursor closes it, the completion closes it.
        closed = Snapshot("u", "int f(void) {\n   g(\n}\n", 19, "c")
        assert close_open_brackets("h(1, 2", ctx(closed))[0] == "h(1, 2)"

    def test_brackets_in_strings_do_not_count(self) -> None:
        snapshot = Snapshot("u", "label = \n", 8, "python")
        assert close_open_brackets('"(" + name', ctx(snapshot)) == ('"(" + name', None)

    def test_closes_a_string_the_completion_opened(self) -> None:
        snapshot = Snapshot("u", "name = \n", 7, "python")
        assert close_open_brackets('"unknown', ctx(snapshot))[0] == '"unknown"'


class TestParseCheck:
    def test_rejects_a_completion_that_breaks_the_code(self) -> None:
        text, note = reject_new_parse_errors("return result +", ctx(PY_BLANK_IN_BODY))
        assert text == ""
        assert note is not None and "syntax error" in note

    def test_accepts_a_block_header_in_single_line_mode(self) -> None:
        raw = "for item in self._items.values():"
        assert reject_new_parse_errors(raw, ctx(PY_BLANK_IN_BODY)) == (raw, None)

    def test_rejects_an_unbalanced_brace_in_c(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = "if (rb == NULL) {\n        return;\n"
        assert reject_new_parse_errors(raw, ctx(snapshot, M))[0] == ""

    def test_accepts_a_line_whose_block_the_file_already_closes(self) -> None:
        # The masked line of a real JDK method (ServiceLoader): the else body and its `}` are
        # below the cursor, so `} else {` must not be given a closing brace of its own.
        text = (
            "class A {\n    int f(int x) {\n        if (x > 0) {\n            return 1;\n"
            "        \n            return 2;\n        }\n    }\n}\n"
        )
        snapshot = Snapshot("u", text, text.index("        \n") + 8, "java")
        assert reject_new_parse_errors("} else {", ctx(snapshot)) == ("} else {", None)
        assert reject_new_parse_errors("} else {{", ctx(snapshot))[0] == ""

    def test_no_opinion_when_the_code_is_already_broken(self) -> None:
        text = PY.replace("        result = []", "        result = [")
        snapshot = at(text, "        result = [")
        assert reject_new_parse_errors("x +", ctx(snapshot)) == ("x +", None)

    def test_unsupported_language_is_not_checked(self) -> None:
        snapshot = Snapshot("u", "", 0, "plaintext")
        assert reject_new_parse_errors("((", ctx(snapshot)) == ("((", None)


class TestLexer:
    def test_python_strings_and_comments(self) -> None:
        result = scan("x = ('(' # )\n", "python")
        assert [b.char for b in result.open] == ["("]

    def test_rust_lifetimes_and_char_literals(self) -> None:
        result = scan("fn peek<'a>(&'a self) -> char { '}' }", "rust")
        assert result.open == [] and result.unmatched_closers == []

    def test_block_comment_state_carries_over(self) -> None:
        result = scan("/* { */ {", "c", LexState())
        assert [b.char for b in result.open] == ["{"]
        assert (
            scan("} still comment */ x", "c", LexState(block_comment=True)).unmatched_closers == []
        )

    def test_balance_cost(self) -> None:
        assert balance_cost("f(x)", "python") == 0
        assert balance_cost("f(x))", "python") == 1
        assert balance_cost('f("x', "python") == 2


# --- The classic failure modes, end to end -------------------------------------------------


class TestDuplicatedClosingBracket:
    def test_python(self) -> None:
        text = PY.replace("return self._items.pop(sku)", "return self._items.pop()")
        snapshot = Snapshot("u", text, text.index("pop()") + 4, "python")
        assert clean(snapshot, "sku)", S) == "sku"

    def test_javascript(self) -> None:
        text = JS.replace("this.items.push({ name, price, quantity });", "this.items.push();")
        snapshot = Snapshot("u", text, text.index("push();") + 5, "javascript")
        cleaned = clean(snapshot, "{ name, price, quantity });", S)
        assert cleaned == "{ name, price, quantity }"
        assert "push({ name, price, quantity });" in apply(snapshot, cleaned)

    def test_go_string_and_paren(self) -> None:
        text = GO.replace('fmt.Println("listening on :8080")', 'fmt.Println("")')
        snapshot = Snapshot("u", text, text.index('Println("")') + 9, "go")
        assert clean(snapshot, 'listening on :8080")', S) == "listening on :8080"


class TestRepeatingTheNextLine:
    def test_python_single_line(self) -> None:
        snapshot = blank_line_after(PY, "        item = self._items[sku]", "        ")
        result = clean_completion("item.quantity += amount", snapshot, S)
        assert result.text == ""
        assert any("next line" in note for note in result.removed)

    def test_python_multi_line(self) -> None:
        snapshot = blank_line_after(PY, "        item = self._items[sku]", "        ")
        raw = "if amount < 0:\n            raise ValueError(amount)\n        item.quantity += amount\n        return item.quantity"
        assert clean(snapshot, raw, M) == "if amount < 0:\n            raise ValueError(amount)"

    def test_java(self) -> None:
        snapshot = blank_line_after(JAVA, "head.next = tail;", "        ", "java")
        assert clean(snapshot, "tail.prev = head;", S) == ""


class TestWrongIndentation:
    def test_python_double_indented_first_line(self) -> None:
        assert clean(PY_BLANK_IN_BODY, "    seen = set()", S) == "seen = set()"

    def test_python_multi_line_over_indented(self) -> None:
        raw = "    item = self._items[sku]\n            item.quantity += amount\n            return item.quantity"
        assert clean(PY_EMPTY_RESTOCK, raw, M) == (
            "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity"
        )

    def test_go_spaces_in_a_tab_file(self) -> None:
        snapshot = empty_body(
            GO,
            "func NewCounter() *Counter {",
            "\n\treturn &Counter{counts: make(map[string]int)}\n",
            "\t",
            "go",
        )
        raw = "c := &Counter{}\n    c.counts = make(map[string]int)\n    return c"
        assert (
            clean(snapshot, raw, M)
            == "c := &Counter{}\n\tc.counts = make(map[string]int)\n\treturn c"
        )


class TestGhostTextMidWord:
    @pytest.mark.parametrize(
        ("text", "anchor", "language_id"),
        [
            (PY, "def needs_reo", "python"),
            (JS, "formatPri", "javascript"),
            (GO, "NewCoun", "go"),
            (CPP, "invalid_arg", "cpp"),
        ],
    )
    def test_no_completion_inside_a_word(self, text: str, anchor: str, language_id: str) -> None:
        snapshot = at(text, anchor, language_id) if text.count(anchor) == 1 else None
        if snapshot is None:
            index = text.index(anchor) + len(anchor)
            snapshot = Snapshot("u", text, index, language_id)
        decision = decide_trigger(snapshot)
        assert decision.mode is Mode.NONE
        assert clean_completion("rder(self)", snapshot, decision.mode).text == ""


class TestRunningPastTheBlockEnd:
    def test_python(self) -> None:
        raw = (
            "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity\n"
            "\n    def low_stock(self):\n        return []"
        )
        assert clean(PY_EMPTY_RESTOCK, raw, M) == (
            "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity"
        )

    @pytest.mark.parametrize(
        ("text", "header", "body", "indent", "language_id", "raw", "expected"),
        [
            (
                JS,
                "  subtotal() {",
                "\n    return this.items.reduce((sum, item) => sum + item.price * item.quantity, 0);\n",
                "    ",
                "javascript",
                "let sum = 0;\n    for (const item of this.items) {\n      sum += item.price;\n    }\n    return sum;\n  }\n\n  total() {\n    return 0;\n  }",
                "let sum = 0;\n    for (const item of this.items) {\n      sum += item.price;\n    }\n    return sum;",
            ),
            (
                TS,
                "  add(path: string, handler: Handler): void {",
                '\n    const keys: string[] = [];\n    const source = path.replace(/:(\\w+)/g, (_match, key: string) => {\n      keys.push(key);\n      return "([^/]+)";\n    });\n    this.routes.push({ pattern: new RegExp(`^${source}$`), keys, handler });\n',
                "    ",
                "typescript",
                "this.routes.push({ pattern: new RegExp(path), keys: [], handler });\n  }\n\n  remove(path: string): void {}\n}",
                "this.routes.push({ pattern: new RegExp(path), keys: [], handler });",
            ),
            (
                GO,
                "func NewCounter() *Counter {",
                "\n\treturn &Counter{counts: make(map[string]int)}\n",
                "\t",
                "go",
                "return &Counter{counts: map[string]int{}}\n}\n\nfunc (c *Counter) Reset() {\n}",
                "return &Counter{counts: map[string]int{}}",
            ),
            (
                RS,
                "    pub fn len(&self) -> usize {",
                "\n        self.items.len()\n",
                "        ",
                "rust",
                "self.items.len()\n    }\n\n    pub fn is_empty(&self) -> bool {\n        self.items.is_empty()\n    }",
                "self.items.len()",
            ),
            (
                JAVA,
                "    private void unlink(Node<K, V> node) {",
                "\n        node.prev.next = node.next;\n        node.next.prev = node.prev;\n",
                "        ",
                "java",
                "node.prev.next = node.next;\n        node.next.prev = node.prev;\n    }\n\n    public int size() {\n        return index.size();\n    }",
                "node.prev.next = node.next;\n        node.next.prev = node.prev;",
            ),
            (
                C,
                "void rb_free(ring_buffer *rb) {",
                "\n    free(rb->data);\n    free(rb);\n",
                "    ",
                "c",
                "free(rb->data); /* } */\n    free(rb);\n}\n\nint rb_size(ring_buffer *rb) {\n    return (int)rb->count;\n}",
                "free(rb->data); /* } */\n    free(rb);",
            ),
            (
                CPP,
                "    double &at(std::size_t r, std::size_t c) {",
                '\n        if (r >= rows_ || c >= cols_) {\n            throw std::out_of_range("matrix index");\n        }\n        return data_[r * cols_ + c];\n',
                "        ",
                "cpp",
                "return data_.at(r * cols_ + c);\n    }\n\n    std::size_t rows() const { return rows_; }",
                "return data_.at(r * cols_ + c);",
            ),
        ],
    )
    def test_brace_languages(
        self,
        text: str,
        header: str,
        body: str,
        indent: str,
        language_id: str,
        raw: str,
        expected: str,
    ) -> None:
        snapshot = empty_body(text, header, body, indent, language_id)
        assert decide_trigger(snapshot).mode is Mode.MULTI_LINE
        assert clean(snapshot, raw, M) == expected


class TestLeakedSpecialTokens:
    def test_chat_end_token(self) -> None:
        result = clean_completion(
            "seen = set()<|im_end|>\n<|im_start|>assistant", PY_BLANK_IN_BODY, S
        )
        assert result.text == "seen = set()"
        assert any("<|im_end|>" in note for note in result.removed)

    def test_file_separator_in_multi_line(self) -> None:
        raw = "item = self._items[sku]\n        return item.quantity\n<file_sep>utils.py\nimport os"
        assert (
            clean(PY_EMPTY_RESTOCK, raw, M)
            == "item = self._items[sku]\n        return item.quantity"
        )

    def test_model_token_list_from_the_backend(self) -> None:
        raw = "return 0;<|endofmask|>"
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        assert clean(snapshot, raw, S, special_tokens=["<|endofmask|>"]) == "return 0;"


class TestMarkdownFenceEndToEnd:
    def test_fence_after_code(self) -> None:
        raw = "item = self._items[sku]\n        return item.quantity\n```\n\nThis restocks."
        assert (
            clean(PY_EMPTY_RESTOCK, raw, M)
            == "item = self._items[sku]\n        return item.quantity"
        )

    def test_fence_first(self) -> None:
        result = clean_completion(
            "```python\ndef restock(self):\n    pass\n```", PY_EMPTY_RESTOCK, M
        )
        assert result.text == ""
        assert any("fence" in note for note in result.removed)


class TestProseEndToEnd:
    def test_prose_instead_of_code(self) -> None:
        result = clean_completion(
            "This method adds the amount to the stock of the item.", PY_EMPTY_RESTOCK, M
        )
        assert result.text == ""
        assert any(note.startswith("prose") for note in result.removed)

    def test_prose_after_code(self) -> None:
        raw = "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity\n\nHere is how it works: the item is looked up first."
        assert clean(PY_EMPTY_RESTOCK, raw, M) == (
            "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity"
        )

    def test_prose_in_javascript(self) -> None:
        snapshot = empty_body(
            JS,
            "  total() {",
            "\n    return this.subtotal() * (1 + TAX_RATE);\n",
            "    ",
            "javascript",
        )
        raw = "return this.subtotal() * (1 + TAX_RATE);\n\nThis returns the total including tax."
        assert clean(snapshot, raw, M) == "return this.subtotal() * (1 + TAX_RATE);"


class TestEndToEnd:
    def test_clean_text_passes_through_unchanged(self) -> None:
        result = clean_completion("seen = set()", PY_BLANK_IN_BODY, S)
        assert result.text == "seen = set()"
        assert result.removed == []

    def test_mode_none_returns_nothing(self) -> None:
        assert clean_completion("x", PY_BLANK_IN_BODY, Mode.NONE).text == ""

    def test_whitespace_only_output_is_empty(self) -> None:
        assert clean(PY_BLANK_IN_BODY, "   \n  ", M) == ""

    def test_result_of_a_multi_line_completion_parses(self) -> None:
        raw = "item = self._items[sku]\n        item.quantity += amount\n        return item.quantity\n"
        cleaned = clean(PY_EMPTY_RESTOCK, raw, M)
        from wren.context import syntax

        assert not syntax.has_error_near(
            "python", apply(PY_EMPTY_RESTOCK, cleaned), PY_EMPTY_RESTOCK.offset
        )

    def test_crlf_documents_get_crlf(self) -> None:
        text = "def f(x):\r\n    \r\n"
        snapshot = Snapshot("u", text, text.index("    \r") + 4, "python")
        assert clean(snapshot, "y = x * 2\n    return y", M) == "y = x * 2\r\n    return y"

    def test_stop_strings_from_the_card(self) -> None:
        raw = "item = self._items[sku]\n        return item.quantity\n\n\nclass Other:"
        assert clean(PY_EMPTY_RESTOCK, raw, M, stop_strings=["\nclass "]) == (
            "item = self._items[sku]\n        return item.quantity"
        )

    def test_rust_char_literal_brace_does_not_end_the_block(self) -> None:
        snapshot = empty_body(
            RS,
            "    pub fn len(&self) -> usize {",
            "\n        self.items.len()\n",
            "        ",
            "rust",
        )
        raw = "let _brace = '}';\n        self.items.len()\n    }\n\n    fn other() {}"
        assert clean(snapshot, raw, M) == "let _brace = '}';\n        self.items.len()"


class TestUnfinishedTail:
    def test_truncated_block_is_trimmed_to_complete_lines(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = (
            'rb->head = 0;\n    if (rb->count > 0) {\n        rb->count = 0;\n        puts("cleared'
        )
        assert clean(snapshot, raw, M) == "rb->head = 0;"

    def test_truncated_call_is_trimmed_to_complete_lines(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = "rb->head = 0;\n    memset(rb->data,\n           0,"
        assert clean(snapshot, raw, M) == "rb->head = 0;"

    def test_truncated_brace_block_gets_its_closing_brace(self) -> None:
        snapshot = blank_line_after(C, "void rb_free(ring_buffer *rb) {", "    ", "c")
        raw = "rb->head = 0;\n    if (rb->count > 0) {\n        rb->count = 0;"
        assert (
            clean(snapshot, raw, M)
            == "rb->head = 0;\n    if (rb->count > 0) {\n        rb->count = 0;\n    }"
        )

    def test_nested_blocks_are_closed_innermost_first(self) -> None:
        snapshot = blank_line_after(JS, "  subtotal() {", "    ", "javascript")
        raw = "for (const item of this.items) {\n      if (item.price > 0) {\n        count++;"
        assert clean(snapshot, raw, M) == (
            "for (const item of this.items) {\n      if (item.price > 0) {\n        count++;\n      }\n    }"
        )

    def test_docstring_line_is_not_rejected(self) -> None:
        text = PY.replace(
            '    """Read an inventory from a JSON file."""',
            '    """Read an inventory from a JSON file.\n\n    \n    """',
        )
        snapshot = at(text, "from a JSON file.\n\n    ")
        assert (
            clean(snapshot, "The file holds one record per item.", S)
            == "The file holds one record per item."
        )

    def test_truncated_python_call_is_trimmed(self) -> None:
        raw = "item = self._items[sku]\n        item.quantity = max(\n            0,"
        assert clean(PY_EMPTY_RESTOCK, raw, M) == "item = self._items[sku]"

    def test_a_header_on_the_last_line_is_fine(self) -> None:
        raw = "item = self._items[sku]\n        if amount > 0:"
        assert clean(PY_EMPTY_RESTOCK, raw, M) == raw


FIXTURE_LANGUAGES = {
    "inventory.py": "python",
    "cart.js": "javascript",
    "router.ts": "typescript",
    "Counter.tsx": "typescriptreact",
    "server.go": "go",
    "stack.rs": "rust",
    "LruCache.java": "java",
    "ring_buffer.c": "c",
    "matrix.cpp": "cpp",
}
RAW_SAMPLES = [
    "x = f(a, [b, {c: 'd'}])<|im_end|>",
    '\n    }\n}\n```\nHere is the code.\n"""\'`/* (',
]


@pytest.mark.parametrize(("name", "language_id"), sorted(FIXTURE_LANGUAGES.items()))
def test_every_position_is_handled_without_errors(name: str, language_id: str) -> None:
    text = load(name)
    for offset in range(0, len(text) + 1, 17):
        snapshot = Snapshot("u", text, offset, language_id)
        mode = decide_trigger(snapshot).mode
        for raw in RAW_SAMPLES:
            for use_mode in {mode, M}:
                result = clean_completion(raw, snapshot, use_mode)
                assert "<|im_end|>" not in result.text
                assert "```" not in result.text
                lines = result.text.split("\n")
                assert all(line == line.rstrip() for line in lines[:-1]), result


@pytest.mark.parametrize(
    ("text", "header", "body", "indent", "language_id", "good"),
    [
        (
            PY,
            "    def restock(self, sku: str, amount: int) -> int:",
            "\n        item = self._items[sku]\n        item.quantity += amount\n        return item.quantity\n",
            "        ",
            "python",
            'if amount <= 0:\n            raise ValueError(f"bad amount: {amount}")\n        item = self._items[sku]\n        item.quantity += amount\n        return item.quantity',
        ),
        (
            JS,
            "  subtotal() {",
            "\n    return this.items.reduce((sum, item) => sum + item.price * item.quantity, 0);\n",
            "    ",
            "javascript",
            "let sum = 0;\n    for (const { price, quantity } of this.items) {\n      sum += price * quantity;\n    }\n    return sum;",
        ),
        (
            GO,
            "func NewCounter() *Counter {",
            "\n\treturn &Counter{counts: make(map[string]int)}\n",
            "\t",
            "go",
            'c := &Counter{}\n\tc.counts = map[string]int{"{": 0}\n\treturn c',
        ),
        (
            RS,
            "    pub fn pop(&mut self) -> Result<T, StackError> {",
            "\n        self.items.pop().ok_or(StackError::Empty)\n",
            "        ",
            "rust",
            "match self.items.pop() {\n            Some(item) => Ok(item),\n            None => Err(StackError::Empty),\n        }",
        ),
        (
            JAVA,
            "    private void unlink(Node<K, V> node) {",
            "\n        node.prev.next = node.next;\n        node.next.prev = node.prev;\n",
            "        ",
            "java",
            "Node<K, V> before = node.prev;\n        Node<K, V> after = node.next;\n        before.next = after;\n        after.prev = before;",
        ),
        (
            CPP,
            "    double &at(std::size_t r, std::size_t c) {",
            '\n        if (r >= rows_ || c >= cols_) {\n            throw std::out_of_range("matrix index");\n        }\n        return data_[r * cols_ + c];\n',
            "        ",
            "cpp",
            'if (r >= rows_ || c >= cols_) {\n            throw std::out_of_range("at(): index out of range");\n        }\n        return data_[r * cols_ + c];',
        ),
    ],
)
def test_good_multi_line_completions_pass_unchanged(
    text: str, header: str, body: str, indent: str, language_id: str, good: str
) -> None:
    snapshot = empty_body(text, header, body, indent, language_id)
    result = clean_completion(good, snapshot, M)
    assert result.text == good, result.removed
    assert result.removed == []


@pytest.mark.parametrize(
    ("text", "anchor", "language_id", "good"),
    [
        (PY, "        result = []", "python", "  # items carrying the tag"),
        (JS, "const TAX_RATE = 0.2;", "javascript", " // VAT"),
        (GO, 'key := r.URL.Query().Get("key")', "go", "\n\tkey = strings.TrimSpace(key)"),
        (C, "rb->count = 0;", "c", "\n    rb->data[0] = '{';"),
    ],
)
def test_good_single_line_completions_pass_unchanged(
    text: str, anchor: str, language_id: str, good: str
) -> None:
    snapshot = at(text, anchor, language_id)
    assert decide_trigger(snapshot).mode is S
    result = clean_completion(good, snapshot, S)
    assert result.text == good, result.removed


def test_a_deliberate_dedent_is_not_pushed_back_into_the_block() -> None:
    # The user dedented to write the line after the loop: the suggestion stays at that level.
    text = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    "
    snap = Snapshot(uri="file:///t.py", text=text, offset=len(text))
    cleaned = clean_completion("return s", snap, Mode.SINGLE_LINE)
    assert cleaned.text == "return s"
