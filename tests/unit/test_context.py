# ruff: noqa: E501  -- code samples read best as one string per line
"""Context beyond the cursor: jedi symbols, similar snippets from open files, formatting."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from wren.context import symbols
from wren.context.neighbors import RecentDocuments, tokenize_line, uri_to_path
from wren.context.symbols import names_near_cursor, summarize_definition, symbol_snippets
from wren.engine.prompt.context_format import comment_prefix_for, format_context
from wren.types import ContextSnippet, Snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

B_PY = '''\
"""Pricing helpers."""


def compute_total(items: list[float], tax: float = 0.2) -> float:
    """Return the total price including tax."""
    return sum(items) * (1 + tax)


def apply_discount(price: float, percent: float) -> float:
    """Reduce a price by a percentage.

    Percentages above 100 are clamped, so a price never goes negative.
    """
    if percent > 100:
        percent = 100
    if percent < 0:
        raise ValueError("negative discount")
    factor = 1 - percent / 100
    discounted = price * factor
    return round(discounted, 2)


class Basket:
    """A list of prices with an owner."""

    currency = "EUR"

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.prices: list[float] = []

    def add(self, price: float) -> None:
        self.prices.append(price)

    def _check(self) -> None:
        assert all(p >= 0 for p in self.prices)

    def total(self) -> float:
        return compute_total(self.prices)


SHIPPING = 4.5
'''

A_PY = """\
from b import Basket, apply_discount, compute_total, SHIPPING


def local_helper(x: float) -> float:
    return x


def checkout(prices: list[float]) -> float:
    # compute_total in a comment does not count, nor "apply_discount" in a string
    total = compute_total(prices)
    total = apply_discount(total, 10)
    print(len(prices), local_helper(total))
    return total + SHIPPING
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "b.py").write_text(B_PY, encoding="utf-8")
    (tmp_path / "a.py").write_text(A_PY, encoding="utf-8")
    return tmp_path


def snapshot_of(path: Path, text: str, offset: int | None = None) -> Snapshot:
    return Snapshot(
        uri=path.as_uri(),
        text=text,
        offset=len(text) if offset is None else offset,
        language_id="python",
        path=str(path),
    )


# --- symbols (jedi) -------------------------------------------------------------------------


def test_symbol_snippet_from_another_file_has_the_signature(workspace: Path) -> None:
    snippets = symbol_snippets(snapshot_of(workspace / "a.py", A_PY), str(workspace), budget_s=30)
    by_text = "\n---\n".join(s.text for s in snippets)
    assert "def compute_total(items: list[float], tax: float = 0.2) -> float:" in by_text
    assert all(s.path == "b.py" and s.source == "symbol" for s in snippets)


def test_long_function_is_summarized(workspace: Path) -> None:
    snippets = symbol_snippets(snapshot_of(workspace / "a.py", A_PY), str(workspace), budget_s=30)
    discount = next(s for s in snippets if "apply_discount" in s.text)
    assert discount.text == (
        "def apply_discount(price: float, percent: float) -> float:\n"
        '    """Reduce a price by a percentage."""\n'
        "    ..."
    )


def test_current_file_and_builtins_are_skipped(workspace: Path) -> None:
    snippets = symbol_snippets(snapshot_of(workspace / "a.py", A_PY), str(workspace), budget_s=30)
    texts = "\n".join(s.text for s in snippets)
    assert "local_helper" not in texts
    assert "def len" not in texts and "def print" not in texts


def test_class_summary_lists_public_method_signatures(workspace: Path) -> None:
    text = "from b import Basket\n\nbasket = Basket('me')\n"
    snippets = symbol_snippets(snapshot_of(workspace / "c.py", text), str(workspace), budget_s=30)
    assert len(snippets) == 1
    summary = snippets[0].text
    assert summary.startswith('class Basket:\n    """A list of prices with an owner."""')
    assert "    def __init__(self, owner: str) -> None:" in summary
    assert "    def add(self, price: float) -> None:" in summary
    assert "_check" not in summary
    assert "self.prices.append" not in summary


def test_method_snippet_names_its_class(workspace: Path) -> None:
    text = "from b import Basket\n\nbasket = Basket('me')\nbasket.add(2.0)\n"
    snippets = symbol_snippets(snapshot_of(workspace / "c.py", text), str(workspace), budget_s=30)
    add = next(s for s in snippets if "def add" in s.text)
    assert add.text.startswith("class Basket:\n    def add(self, price: float) -> None:")


def test_max_snippets_is_respected(workspace: Path) -> None:
    snippets = symbol_snippets(
        snapshot_of(workspace / "a.py", A_PY), str(workspace), budget_s=30, max_snippets=1
    )
    assert len(snippets) == 1


def test_non_python_documents_get_nothing(workspace: Path) -> None:
    snapshot = Snapshot("file:///w/a.js", "computeTotal()", 14, "javascript", path="/w/a.js")
    assert symbol_snippets(snapshot, str(workspace)) == []


def test_broken_input_never_raises(tmp_path: Path) -> None:
    text = "from nowhere import (\n  ???\n def ::\n"
    snapshot = snapshot_of(tmp_path / "x.py", text, offset=len(text) + 50)  # offset past the end
    assert symbol_snippets(snapshot, str(tmp_path / "missing"), budget_s=5) == []


def test_tiny_budget_returns_promptly(workspace: Path) -> None:
    text = A_PY + "\nimport json\njson.dumps({})\n"
    started = time.perf_counter()
    result = symbol_snippets(snapshot_of(workspace / "a.py", text), str(workspace), budget_s=0.0)
    assert time.perf_counter() - started < 0.5
    assert isinstance(result, list)
    # let the abandoned lookup finish so later tests find jedi free
    assert symbols._jedi_lock.acquire(timeout=30)
    symbols._jedi_lock.release()


def test_names_near_cursor_skips_keywords_builtins_strings_and_comments() -> None:
    text = 'x = 1\n# helper_in_comment\nvalue = compute("apply_discount", other)\nif value:\n    print(len(value))\n'
    names = [use.name for use in names_near_cursor(Snapshot("u", text, len(text)))]
    assert names == ["value", "other", "compute", "x"]  # nearest to the cursor first


def test_names_near_cursor_positions_are_jedi_positions() -> None:
    text = "a = 1\nresult = compute_total(a)\n"
    uses = {use.name: use for use in names_near_cursor(Snapshot("u", text, len(text)))}
    assert (uses["compute_total"].line, uses["compute_total"].column) == (2, 9)


def test_summarize_short_definition_is_kept_whole() -> None:
    source = "def add(a: int, b: int) -> int:\n    return a + b\n"
    assert summarize_definition(source) == "def add(a: int, b: int) -> int:\n    return a + b"


def test_summarize_multi_line_signature() -> None:
    source = textwrap.dedent(
        '''\
        def connect(
            host: str,
            port: int = 5432,
        ) -> None:
            """Open a connection."""
            a = 1
            b = 2
            c = 3
            d = 4
        '''
    )
    assert summarize_definition(source) == (
        'def connect(\n    host: str,\n    port: int = 5432,\n) -> None:\n    """Open a connection."""\n    ...'
    )


# --- neighbors ------------------------------------------------------------------------------


def read(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_similar_snippet_comes_from_the_matching_window() -> None:
    docs = RecentDocuments()
    docs.update("file:///w/inventory.py", read("inventory.py"), "python")
    docs.update("file:///w/unrelated.py", "import os\n\nprint(os.getcwd())\n", "python")
    current = (
        "def count_low(inventory):\n"
        "    low = 0\n"
        "    for item in inventory._items.values():\n"
        "        if item.needs_reorder(level):\n"
    )
    snippets = docs.similar_snippets(Snapshot("file:///w/new.py", current, len(current), "python"))
    assert snippets, "the inventory file shares many tokens with the cursor's lines"
    best = snippets[0]
    assert best.path == "/w/inventory.py"
    assert best.source == "neighbor"
    assert "needs_reorder" in best.text
    assert 0 < best.score <= 1
    assert all(s.path != "/w/new.py" for s in snippets)


def test_current_document_is_excluded() -> None:
    docs = RecentDocuments()
    text = read("inventory.py")
    docs.update("file:///w/inventory.py", text, "python")
    snapshot = Snapshot("file:///w/inventory.py", text, len(text), "python")
    assert docs.similar_snippets(snapshot) == []


def test_other_language_families_are_excluded_but_js_and_ts_mix() -> None:
    docs = RecentDocuments()
    docs.update("file:///w/cart.js", read("cart.js"), "javascript")
    docs.update("file:///w/inventory.py", read("inventory.py"), "python")
    current = "class Cart {\n  subtotal() {\n    return this.items.reduce((sum, item) =>"
    ts = docs.similar_snippets(Snapshot("file:///w/c.ts", current, len(current), "typescript"))
    assert [s.path for s in ts] == ["/w/cart.js"]
    go = docs.similar_snippets(Snapshot("file:///w/c.go", current, len(current), "go"))
    assert go == []


def test_lru_capacity_and_remove() -> None:
    docs = RecentDocuments(capacity=2)
    docs.update("file:///a", "alpha beta", "python")
    docs.update("file:///b", "beta gamma", "python")
    docs.update("file:///a", "alpha beta delta", "python")  # touch: a is now the newest
    docs.update("file:///c", "gamma delta", "python")
    assert "file:///b" not in docs
    assert "file:///a" in docs and "file:///c" in docs
    docs.remove("file:///a")
    docs.remove("file:///never-added")
    assert len(docs) == 1


def test_max_snippets_and_one_window_per_document() -> None:
    docs = RecentDocuments()
    body = "total = price * quantity\nreturn total\n"
    for name in ("a", "b", "c"):
        docs.update(f"file:///w/{name}.py", body * 30, "python")
    current = "total = price * quantity\n"
    snippets = docs.similar_snippets(
        Snapshot("file:///w/x.py", current, len(current), "python"), max_snippets=2
    )
    assert len(snippets) == 2
    assert len({s.path for s in snippets}) == 2


def test_no_tokens_before_the_cursor_gives_nothing() -> None:
    docs = RecentDocuments()
    docs.update("file:///w/a.py", "x = 1\n", "python")
    assert docs.similar_snippets(Snapshot("file:///w/b.py", "\n\n", 2, "python")) == []


def test_zero_budget_returns_at_once() -> None:
    docs = RecentDocuments()
    docs.update("file:///w/inventory.py", read("inventory.py"), "python")
    current = "for item in self._items.values():\n"
    snapshot = Snapshot("file:///w/x.py", current, len(current), "python")
    assert docs.similar_snippets(snapshot, budget_s=0.0) == []


def test_tokenize_and_uri_helpers() -> None:
    assert tokenize_line("total += item.price * 2") == frozenset({"total", "item", "price", "2"})
    assert uri_to_path("file:///home/me/My%20Project/a.py") == "/home/me/My Project/a.py"
    assert uri_to_path("untitled:Untitled-1") == "untitled:Untitled-1"


# --- formatting -----------------------------------------------------------------------------

SNIPPETS = [
    ContextSnippet("pkg/b.py", "def f(x):\n    return x\n", "symbol"),
    ContextSnippet("pkg/c.py", "VALUE = 1", "neighbor"),
]


def test_format_file_sep() -> None:
    assert format_context(SNIPPETS, "file_sep") == (
        "<file_sep>pkg/b.py\ndef f(x):\n    return x\n<file_sep>pkg/c.py\nVALUE = 1\n"
    )


def test_format_comment_with_hash() -> None:
    assert format_context(SNIPPETS[:1], "comment", "#") == (
        "# Path: pkg/b.py\n# def f(x):\n#     return x\n"
    )


def test_format_comment_with_slashes_and_blank_lines() -> None:
    snippet = ContextSnippet("src/a.ts", "export const a = 1;\n\nexport const b = 2;", "neighbor")
    assert format_context([snippet], "comment", "//") == (
        "// Path: src/a.ts\n// export const a = 1;\n//\n// export const b = 2;\n"
    )


def test_format_nothing() -> None:
    assert format_context([], "file_sep") == ""
    assert format_context([], "comment") == ""
    assert format_context(SNIPPETS, "none") == ""
    assert format_context([ContextSnippet("a.py", "  \n", "symbol")], "file_sep") == ""


@pytest.mark.parametrize(
    ("language_id", "prefix"),
    [
        ("python", "#"),
        ("javascript", "//"),
        ("typescriptreact", "//"),
        ("go", "//"),
        ("rust", "//"),
        ("java", "//"),
        ("c", "//"),
        ("cpp", "//"),
        ("sql", "--"),
        ("lua", "--"),
        ("shellscript", "#"),
        ("something-new", "#"),
    ],
)
def test_comment_prefix_for(language_id: str, prefix: str) -> None:
    assert comment_prefix_for(language_id) == prefix


def test_local_variable_is_followed_to_its_class(workspace: Path) -> None:
    # `Basket` itself is more than 15 lines above the cursor: only `basket` leads to it
    filler = "".join(f"step_{i} = {i}\n" for i in range(20))
    text = f"from b import Basket\n\n\ndef make():\n    return Basket('me')\n\n\n{filler}basket = make()\nbasket.\n"
    snapshot = snapshot_of(workspace / "d.py", text, offset=len(text) - 1)
    snippets = symbol_snippets(snapshot, str(workspace), budget_s=30)
    assert any(s.text.startswith("class Basket:") for s in snippets)
