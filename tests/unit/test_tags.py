"""The tree-sitter tags index (context/tags.py): definitions per language, the workspace
index (skips, bounds, updates) and the snippets a completion request gets from it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from tree_sitter import Parser

from wren.cards import ModelCard
from wren.config import ContextSettings, Settings
from wren.context import tags
from wren.context.tags import TagsIndex, definitions_in, names_near_cursor, tag_snippets
from wren.engine.completion import CompletionEngine
from wren.types import Snapshot

TS_CART = """import { Item } from "./item";

export interface Priced {
  price(): number;
}

export class Cart implements Priced {
  private items: Item[] = [];

  add(item: Item, quantity = 1): void {
    this.items.push(item);
    this.items.push(item);
  }

  count(): number {
    let total = 0;
    for (const item of this.items) {
      total += item.quantity;
    }
    return total;
  }

  price(): number {
    return 0;
  }

  private secret(): void {}
}

export function makeCart(owner: string): Cart {
  return new Cart();
}
"""

SAMPLES: dict[str, tuple[str, dict[str, str]]] = {
    "typescript": (TS_CART, {"Priced": "interface", "Cart": "class", "makeCart": "function"}),
    "javascript": (
        "class Store {\n  get(key) { return this.map[key]; }\n}\n"
        "function makeStore(options) {\n  return new Store(options);\n}\n"
        "const helper = (a, b) => a + b;\n",
        {"Store": "class", "get": "method", "makeStore": "function", "helper": "function"},
    ),
    "go": (
        "package cart\n\ntype Cart struct {\n\tItems []Item\n}\n\n"
        "type Pricer interface {\n\tPrice() int\n}\n\n"
        "func NewCart() *Cart { return &Cart{} }\n\n"
        "func (c *Cart) Count() int {\n\treturn len(c.Items)\n}\n",
        {"Cart": "type", "Pricer": "type", "NewCart": "function", "Count": "method"},
    ),
    "rust": (
        "pub struct Cart { items: Vec<Item> }\n"
        "pub trait Priced { fn price(&self) -> u32; }\n"
        "impl Cart {\n    pub fn count(&self) -> usize {\n        self.items.len()\n    }\n}\n"
        "pub fn total(cart: &Cart) -> u32 { 0 }\n",
        {"Cart": "class", "Priced": "interface", "count": "method", "total": "function"},
    ),
    "java": (
        "package shop;\npublic class Cart {\n    public int count() { return 0; }\n}\n"
        "interface Priced { int price(); }\nenum Color { RED, GREEN }\n",
        {"Cart": "class", "count": "method", "Priced": "interface", "Color": "enum"},
    ),
    "c": (
        "#define MAX_ITEMS 64\ntypedef struct cart { int count; } cart_t;\n"
        "int cart_count(const cart_t *cart);\n"
        "static int helper(int a, int b) {\n    return a + b;\n}\n",
        {"MAX_ITEMS": "macro", "cart_t": "type", "cart_count": "function", "helper": "function"},
    ),
    "cpp": (
        "namespace shop {\nclass Cart {\n public:\n  int count() const { return n_; }\n"
        " private:\n  int n_ = 0;\n};\nint total(const Cart& c);\n}\n",
        {"Cart": "class", "count": "function", "total": "function"},
    ),
}


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_definitions_are_found_in_every_language(language: str) -> None:
    text, expected = SAMPLES[language]
    found = {d.name: d.kind for d in definitions_in(language, text, "/w/f", "f")}
    for name, kind in expected.items():
        assert found.get(name) == kind, (name, found)


def test_a_long_definition_is_shown_by_its_signature_and_members() -> None:
    by_name = {d.name: d for d in definitions_in("typescript", TS_CART, "/w/cart.ts", "cart.ts")}
    cart = by_name["Cart"].text
    assert cart.startswith("export class Cart implements Priced {"), cart
    assert "  count(): number { ... }" in cart, cart
    assert "total += item.quantity" not in cart  # bodies are elided
    assert "secret" not in cart  # private members are left out
    assert cart.endswith("}")
    # A method comes with the class it belongs to.
    count = by_name["count"].text
    assert count.startswith("export class Cart implements Priced {\n  count(): number {"), count
    assert by_name["makeCart"].text.startswith("export function makeCart(owner: string): Cart")


def test_names_near_cursor_are_identifiers_outside_strings_and_comments() -> None:
    text = (
        "const first = makeCart('owner');\n"
        "// totalOf is only mentioned here\n"
        'const label = "priceOf";\n'
        "const n = first.count() + "
    )
    snap = Snapshot(uri="file:///w/a.ts", text=text, offset=len(text), language_id="typescript")
    names = [u.name for u in names_near_cursor(snap)]
    assert names[:3] == ["count", "first", "label"], names
    assert "makeCart" in names
    assert "totalOf" not in names and "priceOf" not in names


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def wait_until(check: Callable[[], bool], timeout: float = 60) -> bool:
    """Poll `check` (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, "src/cart.ts", TS_CART)
    write(root, "src/util.go", "package util\n\nfunc Clamp(v, lo, hi int) int { return v }\n")
    write(root, "node_modules/lib/index.ts", "export function vendored(a: number) {}\n")
    write(root, "static/app.min.js", "function minified(a){return a}\n")
    write(root, "static/bundle.js", "function bundled(a){return a}" * 60 + "\n")
    write(root, "gen/api.ts", "// @generated by protoc. DO NOT EDIT.\nexport function gen() {}\n")
    write(root, "secret/hidden.ts", "export function hidden() {}\n")
    write(root, ".gitignore", "secret/\n")
    write(root, "tools/build.py", "def python_only():\n    pass\n")
    return root


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(tags._indexes)
    tags._indexes.clear()
    yield
    for index in tags._indexes.values():
        index.close()
    tags._indexes.clear()
    tags._indexes.update(saved)


def built(root: Path, **kwargs: int | float) -> TagsIndex:
    index = TagsIndex(str(root), use_git=False, **kwargs)  # type: ignore[arg-type]
    index.start()
    assert index.wait(60)
    return index


def test_the_index_skips_vendored_minified_generated_ignored_and_python_files(
    workspace: Path,
) -> None:
    index = built(workspace)
    try:
        assert index.definitions("makeCart") and index.definitions("Clamp")
        for name in ("vendored", "minified", "bundled", "gen", "hidden", "python_only"):
            assert index.definitions(name) == [], name
        assert index.files_indexed == 2
        assert index.skipped.get("minified") == 2 and index.skipped.get("generated") == 1
    finally:
        index.close()


def test_the_index_is_bounded_by_files_and_bytes(tmp_path: Path) -> None:
    for i in range(10):
        write(
            tmp_path, f"src/m{i}.ts", f"export function f{i}(x: number): number {{ return x; }}\n"
        )
    few = built(tmp_path, max_files=3)
    small = built(tmp_path, max_total_bytes=200)
    try:
        assert few.files_indexed == 3
        assert 1 <= small.files_indexed < 10
        assert small.skipped.get("over the index's size limit", 0) >= 1
    finally:
        few.close()
        small.close()


def test_a_changed_file_is_indexed_again(workspace: Path) -> None:
    index = built(workspace, update_delay_s=0)
    try:
        path = workspace / "src" / "cart.ts"
        index.update(str(path), TS_CART.replace("makeCart", "buildCart"))
        assert wait_until(lambda: bool(index.definitions("buildCart")))
        assert index.definitions("makeCart") == []
        # Saved (or closed): the file on disk counts again.
        index.update(str(path), None)
        assert wait_until(lambda: bool(index.definitions("makeCart")))
        assert index.definitions("buildCart") == []
        # A new file in the workspace, told by the editor.
        new = write(workspace, "src/price.ts", "export function priceOf(c: Cart): number {}\n")
        index.update(str(new))
        assert wait_until(lambda: bool(index.definitions("priceOf")))
    finally:
        index.close()


MAIN_TS = """import { makeCart } from "./cart";

// total is just a comment word
export function checkout(owner: string): number {
  const cart = makeCart(owner);
  return cart.count() + """


def main_snapshot(root: Path, text: str = MAIN_TS) -> Snapshot:
    path = write(root, "src/main.ts", text + "0;\n}\n")  # the saved file; the editor has more
    return Snapshot(
        uri=path.as_uri(),
        text=text,
        offset=len(text),
        language_id="typescript",
        path=str(path),
    )


def test_definitions_from_other_files_reach_the_snippets(
    workspace: Path, clean_registry: None
) -> None:
    snapshot = main_snapshot(workspace)
    assert tag_snippets(snapshot, str(workspace), budget_s=5) == []  # no index: nothing
    tags.index_for(str(workspace), use_git=False).wait(60)
    snippets = tag_snippets(snapshot, str(workspace), budget_s=5)
    texts = {s.text.split("\n")[1].strip() if s.text.count("\n") else s.text for s in snippets}
    assert all(s.path == "src/cart.ts" and s.source == "symbol" for s in snippets), snippets
    assert "count(): number {" in texts, snippets  # the nearest name first ...
    assert any(s.text.startswith("export function makeCart(owner: string): Cart") for s in snippets)
    # ... the current file's own definitions and other languages' are not offered.
    assert not any("checkout" in s.text or "Clamp" in s.text for s in snippets)


class HeldBuild(TagsIndex):
    """An index whose build stops after its first file until the test lets it go on."""

    def __init__(self, root: str) -> None:
        super().__init__(root, use_git=False)
        self.go_on = threading.Event()
        self.first_file_done = threading.Event()

    def _index_file(self, path: str, text: str | None, parser: Parser) -> None:
        super()._index_file(path, text, parser)
        self.first_file_done.set()
        assert self.go_on.wait(60)


def test_a_lookup_while_the_index_is_being_built_finds_nothing_and_does_not_wait(
    workspace: Path, clean_registry: None
) -> None:
    index = HeldBuild(str(workspace))
    tags._indexes[index.root] = index
    snapshot = main_snapshot(workspace)
    index.start()
    try:
        assert index.first_file_done.wait(60)
        assert index.definitions("makeCart")  # src/cart.ts is in already ...
        assert tag_snippets(snapshot, str(workspace), budget_s=5) == []  # ... but not ready
    finally:
        index.go_on.set()
    assert index.wait(60)
    assert tag_snippets(snapshot, str(workspace), budget_s=5) != []


def test_a_name_defined_in_many_files_is_not_guessed(tmp_path: Path, clean_registry: None) -> None:
    for i in range(tags.MAX_AMBIGUOUS + 1):
        write(tmp_path, f"lib{i}/run.ts", f"export function count(v{i}: number) {{}}\n")
    tags.index_for(str(tmp_path), use_git=False).wait(60)
    text = "const n = count("
    path = write(tmp_path, "app/main.ts", text)
    snapshot = Snapshot(path.as_uri(), text, len(text), "typescript", path=str(path))
    assert tag_snippets(snapshot, str(tmp_path), budget_s=5) == []


def test_the_engine_uses_the_index_only_where_symbol_context_is_on(
    workspace: Path, clean_registry: None
) -> None:
    tags.index_for(str(workspace), use_git=False).wait(60)
    snapshot = main_snapshot(workspace)
    card = ModelCard(family="scripted", chat=True, context_window=8192, stop=("<|im_end|>",))
    engine = CompletionEngine(SimpleNamespace(), card)
    off = Settings(context=ContextSettings(budgetMs=5000, symbols={"typescript": False}))
    found = engine.gather_context(snapshot, off, str(workspace))
    assert [s for s in found if s.source == "symbol"] == []
    engine._context_memo.clear()
    on = Settings(context=ContextSettings(budgetMs=5000, symbols={"typescript": True}))
    found = engine.gather_context(snapshot, on, str(workspace))
    assert any(s.source == "symbol" and s.path == "src/cart.ts" for s in found), found
    assert on.context.symbols_on("python")  # the user's entry adds to the defaults


def test_a_long_definition_without_a_body_shows_its_lines_of_code() -> None:
    doc = "".join(f"\t// line {i} of a long explanation\n" for i in range(10))
    method = "\tfilter(s *state) applicableOption\n"
    text = f"package cmp\n\ntype Option interface {{\n{doc}{method}}}\n"
    (option,) = definitions_in("go", text, "/w/options.go", "options.go")
    assert option.text == "type Option interface {\n\tfilter(s *state) applicableOption\n}"


def test_names_every_type_defines_are_not_looked_up(tmp_path: Path, clean_registry: None) -> None:
    write(
        tmp_path,
        "src/lib.rs",
        "pub struct Foo { n: u32 }\n"
        "impl Clone for Foo {\n    fn clone(&self) -> Self { Foo { n: self.n } }\n}\n"
        "pub fn parse_header(line: &str, strict: bool) -> Option<u32> { None }\n",
    )
    tags.index_for(str(tmp_path), use_git=False).wait(60)
    text = "fn main() {\n    let a = b.clone();\n    let h = parse_header("
    path = write(tmp_path, "src/main.rs", text)
    snapshot = Snapshot(path.as_uri(), text, len(text), "rust", path=str(path))
    snippets = tag_snippets(snapshot, str(tmp_path), budget_s=5)
    assert [s.text.split("(")[0] for s in snippets] == ["pub fn parse_header"], snippets
