"""decide_trigger on real code: where to complete, and whether a line or a block fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from wren.engine.trigger import decide_trigger
from wren.types import Mode, Snapshot, TriggerDecision

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def at(text: str, anchor: str, language_id: str = "python", before: bool = False) -> Snapshot:
    """A snapshot with the cursor right after (or before) the unique `anchor`."""
    assert text.count(anchor) == 1, f"anchor {anchor!r} must be unique"
    offset = text.index(anchor) + (0 if before else len(anchor))
    return Snapshot("file:///w/f", text, offset, language_id)


def blank_line_after(text: str, anchor: str, indent: str, language_id: str = "python") -> Snapshot:
    """Open a new line (holding only `indent`) after the line containing `anchor`."""
    assert text.count(anchor) == 1, f"anchor {anchor!r} must be unique"
    line_end = text.index("\n", text.index(anchor))
    new_text = text[: line_end + 1] + indent + "\n" + text[line_end + 1 :]
    return Snapshot("file:///w/f", new_text, line_end + 1 + len(indent), language_id)


def decide(snapshot: Snapshot, multiline: bool = True) -> TriggerDecision:
    decision = decide_trigger(snapshot, multiline_enabled=multiline)
    assert decision.reason.strip().endswith("."), "reasons are sentences for 'Why no completion?'"
    return decision


PY = load("inventory.py")


# --- Python -------------------------------------------------------------------------------


def test_ghost_text_mid_word_is_refused() -> None:
    decision = decide(at(PY, "def needs_reo"))
    assert decision.mode is Mode.NONE
    assert "needs_reorder" in decision.reason


def test_right_before_a_word_is_refused() -> None:
    decision = decide(at(PY, "return self._items.pop(", before=False))
    assert decision.mode is Mode.NONE
    assert "sku" in decision.reason


def test_text_after_the_cursor_is_refused() -> None:
    decision = decide(at(PY, "return self.price"))
    assert decision.mode is Mode.NONE
    assert "self.quantity" in decision.reason


def test_closing_brackets_after_the_cursor_are_fine() -> None:
    decision = decide(at(PY, "return self._items.pop(sku"))
    assert decision.mode is Mode.SINGLE_LINE


@pytest.mark.parametrize("suffix", [")", "]", "}", '"', "'", ");", "):", "),", ")]", '")', "`"])
def test_each_allowed_closer_after_the_cursor(suffix: str) -> None:
    text = f"value = compute(items{suffix}\n"
    snapshot = Snapshot("u", text, len("value = compute(items"), "python")
    assert decide(snapshot).mode is not Mode.NONE


def test_end_of_a_statement_line_is_single_line() -> None:
    decision = decide(at(PY, "        item.quantity += amount"))
    assert decision.mode is Mode.SINGLE_LINE


def test_mid_expression_is_single_line() -> None:
    text = PY.replace("total += item.total_value()", "total += item.")
    decision = decide(at(text, "total += item."))
    assert decision.mode is Mode.SINGLE_LINE


def test_blank_line_after_def_header_is_multi_line() -> None:
    text = PY + "\n\ndef most_valuable(inventory: Inventory) -> Item | None:\n    \n"
    snapshot = Snapshot("u", text, len(text) - 1, "python")
    decision = decide(snapshot)
    assert decision.mode is Mode.MULTI_LINE
    assert "most_valuable" in decision.reason


def test_blank_line_after_for_header_is_multi_line() -> None:
    decision = decide(blank_line_after(PY, "for record in json.load(fh):", " " * 12))
    assert decision.mode is Mode.MULTI_LINE


def test_end_of_a_def_header_line_is_multi_line() -> None:
    text = PY + "\n\ndef cheapest(inventory: Inventory) -> Item:\n"
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.MULTI_LINE


def test_docstring_only_body_is_multi_line() -> None:
    text = PY + '\n\ndef count_tags(inventory: Inventory) -> int:\n    """How many tags."""\n    \n'
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.MULTI_LINE
    assert "docstring" in decision.reason


def test_blank_line_between_statements_is_single_line() -> None:
    decision = decide(blank_line_after(PY, "item = self._items[sku]", " " * 8))
    assert decision.mode is Mode.SINGLE_LINE


def test_dict_entry_ending_with_colon_is_not_a_block() -> None:
    text = 'config = {\n    "name":\n'
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.SINGLE_LINE


def test_lambda_ending_with_colon_is_not_a_block() -> None:
    text = "key = lambda item:\n"
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.SINGLE_LINE


def test_comment_is_completed_single_line() -> None:
    text = PY.replace(
        "DEFAULT_REORDER_LEVEL = 5", "# Items below this level are \nDEFAULT_REORDER_LEVEL = 5"
    )
    decision = decide(at(text, "# Items below this level are "))
    assert decision.mode is Mode.SINGLE_LINE
    assert "comment" in decision.reason


def test_inside_a_string_is_single_line() -> None:
    text = PY.replace('f"duplicate sku: {item.sku}"', '"duplicate sku: "')
    decision = decide(at(text, 'raise ValueError("duplicate sku: '))
    assert decision.mode is Mode.SINGLE_LINE
    assert "string" in decision.reason


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_empty_document_allows_multi_line(text: str) -> None:
    decision = decide(Snapshot("u", text, len(text), "python"))
    assert decision.mode is Mode.MULTI_LINE


def test_multiline_disabled_downgrades_to_single_line() -> None:
    decision = decide(
        blank_line_after(PY, "for record in json.load(fh):", " " * 12), multiline=False
    )
    assert decision.mode is Mode.SINGLE_LINE
    assert "turned off" in decision.reason


def test_offset_outside_the_document() -> None:
    assert decide(Snapshot("u", "x = 1\n", 99, "python")).mode is Mode.NONE


def test_unsupported_language_still_uses_text_rules() -> None:
    assert decide(Snapshot("u", "hello wor", 7, "plaintext")).mode is Mode.NONE
    assert decide(Snapshot("u", "hello wor", 9, "plaintext")).mode is Mode.SINGLE_LINE


# --- Brace languages -----------------------------------------------------------------------

# (language, fixture, a line that ends with `{`, its body indentation, a word to split,
#  a mid-line spot with code after it, an end-of-statement spot)
BRACE_CASES = [
    (
        "javascript",
        "cart.js",
        "subtotal() {",
        "    ",
        "this.own",
        "return this.subtotal()",
        "this.owner = owner;",
    ),
    (
        "typescript",
        "router.ts",
        "add(path: string, handler: Handler): void {",
        "    ",
        "private rou",
        "const match = route.pattern",
        "keys.push(key);",
    ),
    (
        "typescriptreact",
        "Counter.tsx",
        "function increment() {",
        "    ",
        "useState(ini",
        "setCount((value) => value",
        "const [count, setCount] = useState(initial);",
    ),
    (
        "go",
        "server.go",
        "func NewCounter() *Counter {",
        "\t",
        "c.mu.Lo",
        "json.NewEncoder(w)",
        "c.counts[key]++",
    ),
    (
        "rust",
        "stack.rs",
        "pub fn len(&self) -> usize {",
        "        ",
        "self.items.la",
        "let mut stack: BoundedStack<char>",
        "self.items.push(item);",
    ),
    (
        "java",
        "LruCache.java",
        "public V get(K key) {",
        "        ",
        "index.rem",
        "this.capacity",
        "tail.prev = head;",
    ),
    (
        "c",
        "ring_buffer.c",
        "void rb_free(ring_buffer *rb) {",
        "    ",
        "callo",
        "size_t tail = (rb->head",
        "rb->count++;",
    ),
    (
        "cpp",
        "matrix.cpp",
        "double &at(std::size_t r, std::size_t c) {",
        "        ",
        "invalid_arg",
        "double sum =",
        "result.at(i, j) = sum;",
    ),
]


@pytest.mark.parametrize(
    ("language_id", "name", "opener", "indent", "word", "mid", "end"), BRACE_CASES
)
def test_brace_blank_line_in_an_empty_block_is_multi_line(
    language_id: str, name: str, opener: str, indent: str, word: str, mid: str, end: str
) -> None:
    """A new block being written (the editor closed the brace below): a block fits."""
    text = load(name)
    line_start = text.rfind("\n", 0, text.index(opener)) + 1
    line_end = text.index("\n", text.index(opener))
    opener_indent = text[line_start : text.index(opener)]
    new_text = text[: line_end + 1] + indent + "\n" + opener_indent + "}\n"
    snapshot = Snapshot("file:///w/f", new_text, line_end + 1 + len(indent), language_id)
    decision = decide(snapshot)
    assert decision.mode is Mode.MULTI_LINE
    assert opener.split("(")[0].split()[-1] in decision.reason
    at_brace = Snapshot("file:///w/f", text[:line_end] + "}\n", line_end, language_id)
    assert decide(at_brace).mode is Mode.MULTI_LINE


@pytest.mark.parametrize(
    ("language_id", "name", "opener", "indent", "word", "mid", "end"), BRACE_CASES
)
def test_brace_blank_line_above_an_existing_body_is_single_line(
    language_id: str, name: str, opener: str, indent: str, word: str, mid: str, end: str
) -> None:
    """The block already has its body below the cursor: one line, not a second body."""
    decision = decide(blank_line_after(load(name), opener, indent, language_id))
    assert decision.mode is Mode.SINGLE_LINE
    assert decide(at(load(name), opener, language_id)).mode is Mode.SINGLE_LINE


@pytest.mark.parametrize(
    ("language_id", "name", "opener", "indent", "word", "mid", "end"), BRACE_CASES
)
def test_brace_mid_word_is_refused(
    language_id: str, name: str, opener: str, indent: str, word: str, mid: str, end: str
) -> None:
    assert decide(at(load(name), word, language_id)).mode is Mode.NONE


@pytest.mark.parametrize(
    ("language_id", "name", "opener", "indent", "word", "mid", "end"), BRACE_CASES
)
def test_brace_code_after_cursor_is_refused(
    language_id: str, name: str, opener: str, indent: str, word: str, mid: str, end: str
) -> None:
    decision = decide(at(load(name), mid, language_id))
    assert decision.mode is Mode.NONE
    assert "follows the cursor" in decision.reason or "word" in decision.reason


@pytest.mark.parametrize(
    ("language_id", "name", "opener", "indent", "word", "mid", "end"), BRACE_CASES
)
def test_brace_end_of_statement_is_single_line(
    language_id: str, name: str, opener: str, indent: str, word: str, mid: str, end: str
) -> None:
    assert decide(at(load(name), end, language_id)).mode is Mode.SINGLE_LINE


@pytest.mark.parametrize("language_id", ["javascript", "go", "rust", "java", "c", "cpp"])
def test_empty_braces_on_one_line_are_multi_line(language_id: str) -> None:
    text = "void run() {}\n" if language_id in ("java", "c", "cpp") else "function run() {}\n"
    text = {"go": "func run() {}\n", "rust": "fn run() {}\n"}.get(language_id, text)
    snapshot = Snapshot("u", text, text.index("}"), language_id)
    assert decide(snapshot).mode is Mode.MULTI_LINE


def test_brace_comment_line_is_single_line() -> None:
    text = load("ring_buffer.c").replace(
        "/* A fixed-size ring buffer of bytes. */", "// A fixed-size "
    )
    decision = decide(at(text, "// A fixed-size ", "c"))
    assert decision.mode is Mode.SINGLE_LINE
    assert "comment" in decision.reason


def test_brace_after_a_closed_block_is_single_line() -> None:
    decision = decide(
        blank_line_after(
            load("cart.js"), "    this.items.push({ name, price, quantity });", "    ", "javascript"
        )
    )
    assert decision.mode is Mode.SINGLE_LINE


def test_object_literal_brace_in_typescript_is_multi_line() -> None:
    text = "const defaults = {\n  \n};\n"
    decision = decide(Snapshot("u", text, text.index("  \n") + 2, "typescript"))
    assert decision.mode is Mode.MULTI_LINE


def test_multi_line_signature_header_is_multi_line() -> None:
    text = PY + "\n\ndef report(\n    inventory: Inventory,\n    level: int = 3,\n) -> str:\n    \n"
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.MULTI_LINE


@pytest.mark.parametrize(
    "header",
    [
        "try:",
        "else:",
        "with path.open() as fh:",
        "class Empty:",
        "async def run():",
        "match command:",
    ],
)
def test_python_block_headers(header: str) -> None:
    text = f"def outer(path, command):\n    {header}\n        \n"
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.MULTI_LINE


def test_colon_inside_a_comment_is_not_a_header() -> None:
    text = "def outer():\n    x = 1  # note:\n    \n"
    decision = decide(Snapshot("u", text, len(text) - 1, "python"))
    assert decision.mode is Mode.SINGLE_LINE


def test_crlf_line_endings() -> None:
    text = "def f(x):\r\n    \r\n"
    decision = decide(Snapshot("u", text, text.index("    \r") + 4, "python"))
    assert decision.mode is Mode.MULTI_LINE
    text = "int f() {\r\n    int y = x\r\n}\r\n"
    decision = decide(Snapshot("u", text, text.index(" x\r") + 2, "c"))
    assert decision.mode is Mode.SINGLE_LINE
