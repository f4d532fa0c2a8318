"""tree-sitter helpers on real code in every supported language."""

from __future__ import annotations

from pathlib import Path

import pytest

from wren.context import syntax

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

LANGUAGE_FILES = {
    "python": "inventory.py",
    "javascript": "cart.js",
    "typescript": "router.ts",
    "typescriptreact": "Counter.tsx",
    "go": "server.go",
    "rust": "stack.rs",
    "java": "LruCache.java",
    "c": "ring_buffer.c",
    "cpp": "matrix.cpp",
}


def load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def offset_after(text: str, anchor: str) -> int:
    assert text.count(anchor) == 1, f"anchor {anchor!r} must be unique"
    return text.index(anchor) + len(anchor)


@pytest.mark.parametrize(
    ("language_id", "grammar"),
    [
        ("python", "python"),
        ("javascript", "javascript"),
        ("javascriptreact", "javascript"),
        ("typescript", "typescript"),
        ("typescriptreact", "tsx"),
        ("go", "go"),
        ("rust", "rust"),
        ("java", "java"),
        ("c", "c"),
        ("cpp", "cpp"),
    ],
)
def test_language_for_maps_lsp_ids_to_grammars(language_id: str, grammar: str) -> None:
    assert syntax.language_for(language_id) == grammar


@pytest.mark.parametrize("language_id", ["plaintext", "markdown", "cobol", ""])
def test_language_for_unsupported_is_none(language_id: str) -> None:
    assert syntax.language_for(language_id) is None
    assert syntax.parse(language_id, "x = 1") is None


@pytest.mark.parametrize(("language_id", "name"), sorted(LANGUAGE_FILES.items()))
def test_fixtures_parse_without_errors(language_id: str, name: str) -> None:
    tree = syntax.parse(language_id, load(name))
    assert tree is not None
    assert not tree.root_node.has_error


def test_parse_is_cached_for_the_same_text() -> None:
    text = load("inventory.py")
    assert syntax.parse("python", text) is syntax.parse("python", text)


def test_parse_refuses_huge_input() -> None:
    assert syntax.parse("python", "x = 1\n" * 200_000) is None  # 1.2 MB


def test_parse_refuses_minified_lines() -> None:
    assert syntax.parse("javascript", "var a=1;" * 2_000) is None  # one 16k-char line
    assert syntax.has_error_near("javascript", "var a=(;" * 2_000, 10) is False


def test_parse_handles_non_ascii_offsets() -> None:
    text = 'name = "Zoë 🦜"\ndef f(x):\n    return x\n'
    start, end = syntax.enclosing_scope("python", text, text.index("return")) or (0, 0)
    assert text[start:end] == "def f(x):\n    return x"


def test_has_error_near_is_false_for_valid_code() -> None:
    text = load("inventory.py")
    assert not syntax.has_error_near("python", text, offset_after(text, "def restock"))


def test_has_error_near_finds_an_error_in_the_window() -> None:
    text = load("inventory.py").replace("item.quantity += amount", "item.quantity += (amount")
    offset = offset_after(text, "def restock")
    assert syntax.has_error_near("python", text, offset)


def test_has_error_near_ignores_errors_far_away() -> None:
    text = load("inventory.py")
    broken = text.replace("def save_inventory(inventory", "def save_inventory((inventory")
    offset = offset_after(broken, "class Item:")
    assert syntax.has_error_near("python", broken, offset, window_lines=100)
    assert not syntax.has_error_near("python", broken, offset, window_lines=10)


def test_has_error_near_reports_unbalanced_paren_in_c() -> None:
    text = load("ring_buffer.c")
    broken = text.replace("rb->head = (rb->head + 1) %", "rb->head = (rb->head + 1 %")
    assert syntax.has_error_near("c", broken, offset_after(broken, "int rb_pop("))


def test_count_errors_sees_a_missing_brace_at_the_end_of_the_file() -> None:
    # tree-sitter reports a missing `}` where it gives up: at the end of the file, far from
    # the edit. A windowed check misses it; the error count does not.
    text = load("ring_buffer.c")
    broken = text.replace("        return -1;\n    }\n    *out", "        return -1;\n    *out")
    tree = syntax.parse("c", broken)
    assert tree is not None
    assert not syntax.has_error_near("c", broken, offset_after(broken, "int rb_pop("))
    assert syntax.count_errors(tree) == 1


def test_enclosing_scope_python_method() -> None:
    text = load("inventory.py")
    start, end = syntax.enclosing_scope("python", text, offset_after(text, "item.quantity +=")) or (
        0,
        0,
    )
    scope = text[start:end]
    assert scope.startswith("def restock(self, sku: str, amount: int) -> int:")
    assert scope.endswith("return item.quantity")


def test_enclosing_scope_python_inner_block() -> None:
    text = load("inventory.py")
    start, end = syntax.enclosing_scope("python", text, offset_after(text, "result.append(")) or (
        0,
        0,
    )
    assert text[start:end].startswith("if tag in item.tags:")


def test_enclosing_scope_python_blank_line_after_block_body() -> None:
    text = load("inventory.py")
    anchor = "        return item.quantity\n"
    offset = offset_after(text, anchor)
    text = text[:offset] + "        \n" + text[offset:]
    cursor = offset + len("        ")
    start, end = syntax.enclosing_scope("python", text, cursor) or (0, 0)
    assert text[start:].startswith("def restock")
    assert end >= cursor


def test_enclosing_scope_top_level_is_none() -> None:
    text = load("inventory.py")
    assert (
        syntax.enclosing_scope("python", text, offset_after(text, "DEFAULT_REORDER_LEVEL ="))
        is None
    )


@pytest.mark.parametrize(
    ("language_id", "anchor", "expected_start"),
    [
        ("javascript", "throw new Error(", "{\n      throw new Error"),
        ("typescript", "keys.push(key);", "{\n      keys.push(key);"),
        ("go", "c.counts[key]++", "{\n\tc.mu.Lock()"),
        ("rust", "return Err(StackError::Full);", "{\n            return Err"),
        ("java", 'throw new IllegalArgumentException("', "{\n            throw new"),
        ("c", "rb->data[tail] = byte;", "{\n    if (rb->count == rb->capacity)"),
        ("cpp", "sum += at(i, k)", "{\n                    sum += at"),
    ],
)
def test_enclosing_scope_brace_block(language_id: str, anchor: str, expected_start: str) -> None:
    text = load(LANGUAGE_FILES[language_id])
    scope = syntax.enclosing_scope(language_id, text, offset_after(text, anchor))
    assert scope is not None
    start, end = scope
    assert text[start:end].startswith(expected_start)
    assert text[end - 1] == "}"


def test_enclosing_scope_empty_braces() -> None:
    text = "int main(void) {}\n"
    start, end = syntax.enclosing_scope("c", text, text.index("}")) or (0, 0)
    assert text[start:end] == "{}"


def test_cursor_context_string_and_comment() -> None:
    text = 'x = "abc"  # note\ny = 2\n'
    inside_string = syntax.cursor_context("python", text, text.index("bc"))
    inside_comment = syntax.cursor_context("python", text, text.index("note") + 2)
    in_code = syntax.cursor_context("python", text, text.index("y ="))
    assert inside_string is not None and inside_string.in_string
    assert inside_comment is not None and inside_comment.in_comment
    assert in_code is not None and not in_code.in_string and not in_code.in_comment


def test_literal_at_reports_delimiters() -> None:
    py = 'def f():\n    """Doc\n    more\n    """\n'
    js = "const s = `a\nb`; /* c\nd */"
    assert syntax.literal_at("python", py, py.index("more")) == syntax.LiteralAt(
        '"""', False, False
    )
    at_template = syntax.literal_at("javascript", js, js.index("b`"))
    assert at_template is not None and at_template.string_delimiter == "`"
    at_comment = syntax.literal_at("javascript", js, js.index("d */"))
    assert at_comment is not None and at_comment.block_comment


def test_parse_with_insertion_matches_a_fresh_parse() -> None:
    text = load("inventory.py")
    offset = offset_after(text, "        item.quantity += amount\n")
    inserted = "        item.restocked = True\n"
    result = syntax.parse_with_insertion("python", text, offset, inserted)
    assert result is not None
    new_text, tree = result
    assert new_text == text[:offset] + inserted + text[offset:]
    assert str(tree.root_node) == str(
        syntax._parse_bytes(syntax._parser_for("python"), new_text.encode()).root_node
    )  # type: ignore[union-attr]


def test_parse_with_insertion_detects_an_introduced_error() -> None:
    text = load("cart.js")
    offset = offset_after(text, "    this.items.push({ name, price, quantity });\n")
    result = syntax.parse_with_insertion("javascript", text, offset, "    if (x {\n")
    assert result is not None
    assert syntax.errors_near_in_tree(result[1], text.count("\n", 0, offset), 5)


def test_incremental_reparse_matches_a_fresh_parse() -> None:
    base = load("inventory.py") * 12  # > 20k chars: parse() re-uses the previous tree
    assert syntax.parse("python", base) is not None
    edits = [
        ("        item.quantity += amount\n", "        item.quantity += amount * 2\n"),
        ("class Inventory:", "class Inventory(object):"),
        ('"""One stock-keeping unit."""', '"""One SKU — Zoë\'s 🦜 unit."""'),
        ("    def remove(self, sku: str) -> Item:\n", ""),
        (
            "def load_inventory(path: Path) -> Inventory:",
            "def load_inventory(path: Path) -> Inventory:\n    if (",
        ),
    ]
    text = base
    parser = syntax._parser_for("python")
    assert parser is not None
    for old, new in edits:
        text = text.replace(old, new, 1)
        incremental = syntax.parse("python", text)
        fresh = parser.parse(text.encode("utf-8"))
        assert incremental is not None
        assert str(incremental.root_node) == str(fresh.root_node)


def test_common_prefix_and_suffix() -> None:
    a = "x" * 10_000 + "abc" + "y" * 9_000
    b = "x" * 10_000 + "aXc" + "y" * 9_000
    assert syntax._common_prefix_len(a, b) == 10_001
    assert syntax._common_suffix_len(a, b, len(a)) == 9_001
    assert syntax._common_suffix_len("ab", "b", 1) == 1
    assert syntax._common_prefix_len("", "abc") == 0


def test_a_parse_past_the_time_limit_is_abandoned(monkeypatch: pytest.MonkeyPatch) -> None:
    text = load("inventory.py") * 150  # ~400 kB: many progress callbacks
    monkeypatch.setattr(syntax, "PARSE_TIMEOUT_S", 0.0)
    assert syntax.parse("python", text) is None
    assert not syntax.has_error_near("python", text, 10)
    monkeypatch.setattr(syntax, "PARSE_TIMEOUT_S", 5.0)
    tree = syntax.parse("python", text)  # the parser is usable again afterwards
    assert tree is not None and not tree.root_node.has_error
