"""A workspace tags index: the definitions of every language Wren parses besides Python.

What `symbols.py` does with jedi for Python, done with tree-sitter for TypeScript, JavaScript,
Go, Rust, Java, C and C++: the model that sees `count(): number { ... }` of `class Cart` from
another file calls it correctly. The index maps a name to where it is defined (file, kind,
row) and a short form of the definition (whole when short; otherwise its signature, and for
a class-like definition the one-line forms of its members).

Definitions come from the grammars' own `queries/tags.scm` (the `@definition.*` captures;
TypeScript's file adds to JavaScript's, as the tree-sitter CLI combines them) plus a few
patterns they lack (TypeScript type aliases and enums, Java enums and records, C macros).

The index is built on a background thread from the workspace's source files
(`workspace_files.list_candidate_files`: `git ls-files` where allowed, else a walk; vendored,
generated, minified and huge files skipped; at most `MAX_FILES` files and `MAX_TOTAL_BYTES`).
A file is re-read when the editor says it changed (`update`, coalesced and delayed so typing
does not re-parse on every keystroke). A lookup before the index is ready finds nothing; a
lookup never waits for the index and never parses anything but the current document (whose
tree the request's other stages have usually parsed already).

Nothing here raises to its caller.
"""

from __future__ import annotations

import importlib
import logging
import os
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Language, Node, Parser, Point, Query, QueryCursor, Tree

from wren.context.syntax import SourceText, get_language, language_for, parse
from wren.types import ContextSnippet, Snapshot
from wren.workspace_files import MAX_FILE_BYTES, list_candidate_files, skip_reason

log = logging.getLogger(__name__)

LOOKBACK_LINES = 15
MAX_LOOKUPS = 24  # names per request, nearest first
MAX_SNIPPETS = 4
MAX_AMBIGUOUS = 3  # a name defined in more files than this says nothing about which one
# Method names every other type defines (trait and interface methods, accessors): a
# definition found by such a name alone is most likely some other type's.
# fmt: off
COMMON_NAMES = frozenset({
    "new", "clone", "len", "get", "set", "next", "iter", "map", "into", "from", "fmt", "eq",
    "hash", "default", "drop", "deref", "push", "pop", "insert", "remove", "contains", "size",
    "equals", "hashCode", "toString", "compareTo", "length", "apply", "call", "then", "value",
    "name", "key", "init", "close", "run", "start", "stop", "update", "add", "has", "delete",
    "clear", "keys", "values", "toJSON", "valueOf", "constructor", "main", "String", "Error",
})
# fmt: on
SHORT_DEFINITION_LINES = 8
MAX_SNIPPET_LINES = 16
MAX_HEADER_LINES = 6
MAX_FILES = 3000
MAX_TOTAL_BYTES = 24_000_000
PARSE_TIMEOUT_S = 0.5  # per file, on the indexing thread
UPDATE_DELAY_S = 1.0  # edits are indexed this long after the last one arrived

# File suffix -> LSP language id (the grammar follows from it); Python is jedi's.
SUFFIX_LANGUAGES: dict[str, str] = {
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "cpp",  # the C++ grammar reads C headers too
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".tcc": "cpp",
}
# Grammars whose files see each other's definitions.
_FAMILY: dict[str, str] = {
    "javascript": "js",
    "typescript": "js",
    "tsx": "js",
    "c": "c",
    "cpp": "c",
    "go": "go",
    "rust": "rust",
    "java": "java",
}
# grammar key -> (package whose queries/tags.scm to use, patterns added after it)
_EXTRA_TS = """
(type_alias_declaration name: (type_identifier) @name) @definition.type
(enum_declaration name: (identifier) @name) @definition.enum
(class_declaration name: (type_identifier) @name) @definition.class
"""
_EXTRA_C = """
(preproc_def name: (identifier) @name) @definition.macro
(preproc_function_def name: (identifier) @name) @definition.macro
"""
_TAG_SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "javascript": (("tree_sitter_javascript",), ""),
    "typescript": (("tree_sitter_javascript", "tree_sitter_typescript"), _EXTRA_TS),
    "tsx": (("tree_sitter_javascript", "tree_sitter_typescript"), _EXTRA_TS),
    "go": (("tree_sitter_go",), ""),
    "rust": (("tree_sitter_rust",), ""),
    "java": (
        ("tree_sitter_java",),
        """
(enum_declaration name: (identifier) @name) @definition.enum
(record_declaration name: (identifier) @name) @definition.class
""",
    ),
    "c": (("tree_sitter_c",), _EXTRA_C),
    "cpp": (("tree_sitter_cpp",), _EXTRA_C),
}
_SKIPPED_KINDS = frozenset({"module"})  # a namespace or `mod` is the whole file, not a definition
_CLASS_KINDS = frozenset({"class", "interface", "enum", "type"})
# Identifier leaves of the grammars (not keywords, not inside strings or comments).
_IDENTIFIER_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "property_identifier",
        "field_identifier",
        "shorthand_property_identifier",
        "namespace_identifier",
        "package_identifier",
    }
)
# Declarators and declarations a tags capture sits inside: the whole declaration is shown.
_WRAPPERS = frozenset(
    {
        "pointer_declarator",
        "reference_declarator",
        "function_declarator",
        "parenthesized_declarator",
        "function_definition",
        "declaration",
        "field_declaration",
        "template_declaration",
        "lexical_declaration",
        "variable_declaration",
        "export_statement",
        "ambient_declaration",
        "type_declaration",
    }
)
# Node types that hold a method: its snippet opens with their header.
_CONTAINERS = frozenset(
    {
        "class_declaration",
        "abstract_class_declaration",
        "class",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "impl_item",
        "trait_item",
        "class_specifier",
        "struct_specifier",
    }
)


@dataclass(frozen=True)
class Definition:
    name: str
    path: str  # absolute
    rel: str  # relative to the workspace root, for the prompt
    kind: str  # function | method | class | interface | type | enum | macro | constant
    row: int  # 0-based
    family: str
    text: str  # the short form shown to the model


# -- queries --------------------------------------------------------------------------------

_queries: dict[str, Query | None] = {}
_queries_lock = threading.Lock()


def _tags_query(grammar: str) -> Query | None:
    """The grammar's tags query (its `queries/tags.scm` plus our additions), compiled once."""
    with _queries_lock:
        if grammar in _queries:
            return _queries[grammar]
        query: Query | None = None
        language = get_language(grammar)
        spec = _TAG_SOURCES.get(grammar)
        if language is not None and spec is not None:
            query = _compile(language, grammar, *spec)
        _queries[grammar] = query
        return query


def _compile(language: Language, grammar: str, packages: tuple[str, ...], extra: str) -> Query:
    parts = []
    for package in packages:
        try:
            parts.append(str(getattr(importlib.import_module(package), "TAGS_QUERY", "")))
        except Exception:  # an old grammar wheel without queries: our patterns only
            log.debug("no tags query in %s", package, exc_info=True)
    try:
        return Query(language, "\n".join([*parts, extra]))
    except Exception:
        log.warning("the tags query of %s did not compile; using Wren's patterns", grammar)
        return Query(language, extra or "(ERROR) @skip")


# -- reading definitions out of one file ----------------------------------------------------


def _outer(node: Node) -> Node:
    """The declaration a tags capture belongs to (`int f(void)` for the declarator `f(void)`,
    `export const f = () => ...` for the declarator `f = ...`)."""
    while node.parent is not None and node.parent.type in _WRAPPERS:
        if node.parent.type == "type_declaration" and node.parent.named_child_count > 1:
            break
        node = node.parent
    return node


def _body(node: Node, depth: int = 0) -> Node | None:
    """The `{ ... }` part of a definition, looking through wrappers and declarators."""
    if node.type == "template_declaration" and node.named_children and depth < 3:
        return _body(node.named_children[-1], depth + 1)
    for field in ("body", "declaration", "value", "declarator", "type"):
        child = node.child_by_field_name(field)
        if child is None:
            continue
        if field == "body" or child.type in ("field_declaration_list", "class_body"):
            return child
        if depth < 3:
            found = _body(child, depth + 1)
            if found is not None:
                return found
    return None


class _File:
    """One file's text with line access by row."""

    def __init__(self, text: str) -> None:
        self.src = SourceText(text)
        self.lines = text.split("\n")

    def char(self, byte: int) -> int:
        return self.src.char_of(byte)

    def from_line_start(self, node: Node, end_byte: int) -> str:
        """The text from the start of `node`'s line to `end_byte`."""
        start = self.char(node.start_byte)
        start = self.src.text.rfind("\n", 0, start) + 1
        return self.src.text[start : self.char(end_byte)]

    def rows(self, first: int, last: int) -> list[str]:
        return self.lines[first : last + 1]


def _one_line(f: _File, node: Node) -> str | None:
    """A member of a class as one line: itself when it is one line, else its signature with
    the body elided; None for private members and comments."""
    if "comment" in node.type or node.type in ("{", "}"):
        return None
    first = f.lines[node.start_point.row].strip()
    if first.startswith(("private ", "#")):
        return None
    if node.start_point.row == node.end_point.row:
        return f.lines[node.start_point.row].rstrip()
    body = _body(node)
    if body is not None and body.start_point.row - node.start_point.row < 3:
        head = f.from_line_start(node, body.start_byte).rstrip()
        if (body.text or b"").startswith(b"{"):
            return head + " { ... }"
        return head + " ..."
    return f.lines[node.start_point.row].rstrip() + " ..."


def _closing(f: _File, node: Node) -> str:
    last = f.lines[_last_row(node)]
    indent = f.lines[node.start_point.row]
    indent = indent[: len(indent) - len(indent.lstrip())]
    end = last.strip()
    return indent + (end if end.startswith("}") else "}")


def _is_comment_line(line: str) -> bool:
    return line.strip().startswith(("//", "/*", "*", "#"))


def _last_row(node: Node) -> int:
    """The last row with text of `node` (a `#define` node ends after its line break)."""
    end = node.end_point
    return end.row - 1 if end.column == 0 and end.row > node.start_point.row else end.row


def _short_form(f: _File, node: Node, kind: str) -> list[str]:
    """The lines shown for a definition (not dedented)."""
    first, last = node.start_point.row, _last_row(node)
    if last - first + 1 <= SHORT_DEFINITION_LINES:
        return f.rows(first, last)
    body = _body(node)
    if body is None or body.start_point.row - first >= MAX_HEADER_LINES:
        # No body to elide (a Go interface, a long type): its first lines of code.
        code = [line for line in f.rows(first, last) if not _is_comment_line(line)]
        if len(code) <= SHORT_DEFINITION_LINES:
            return code
        return [*code[: SHORT_DEFINITION_LINES - 1], "..."]
    head = f.from_line_start(node, body.start_byte).rstrip().split("\n")
    if kind in _CLASS_KINDS and (body.text or b"").startswith(b"{"):
        out = [*head[:-1], head[-1] + " {"]
        for member in body.named_children:
            if len(out) >= MAX_SNIPPET_LINES:
                indent = f.lines[member.start_point.row]
                out.append(indent[: len(indent) - len(indent.lstrip())] + "...")
                break
            line = _one_line(f, member)
            if line is not None:
                out.extend(line.split("\n"))
        out.append(_closing(f, node))
        return out
    if (body.text or b"").startswith(b"{"):
        return [*head[:-1], head[-1] + " { ... }"]
    return [*head, "..."]


def _container(node: Node) -> Node | None:
    """The class (struct, impl, trait, ...) a method is defined in, if any."""
    parent = node.parent
    while parent is not None:
        if parent.type in _CONTAINERS:
            return parent
        if "function" in parent.type or "method" in parent.type or "lambda" in parent.type:
            return None  # a function inside a function
        parent = parent.parent
    return None


def _render(f: _File, node: Node, kind: str) -> str:
    lines = _short_form(f, node, kind)
    if kind in ("method", "function"):
        holder = _container(node)
        body = _body(holder) if holder is not None else None
        if holder is not None and body is not None and body.start_point.row < node.start_point.row:
            head = f.from_line_start(holder, body.start_byte).rstrip().split("\n")
            lines = [*head[-MAX_HEADER_LINES:-1], head[-1] + " {", *lines, _closing(f, holder)]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def definitions_in(
    language_id: str, text: str, path: str, rel: str, parser: Parser | None = None
) -> list[Definition]:
    """The definitions tree-sitter's tags query finds in one file."""
    grammar = language_for(language_id)
    family = _FAMILY.get(grammar or "")
    query = _tags_query(grammar) if grammar else None
    if grammar is None or family is None or query is None:
        return []
    tree = _parse_for_index(grammar, text, parser)
    if tree is None:
        return []
    f = _File(text)
    found: dict[int, tuple[str, Node, str]] = {}  # node id -> (name, node, kind)
    for _pattern, captures in QueryCursor(query).matches(tree.root_node):
        names = captures.get("name", [])
        for capture, nodes in captures.items():
            if not capture.startswith("definition.") or not names or not nodes:
                continue
            kind = capture.split(".", 1)[1]
            if kind in _SKIPPED_KINDS:
                continue
            node = _outer(nodes[0])
            name = (names[0].text or b"").decode("utf-8", errors="replace")
            previous = found.get(node.id)
            if previous is None or (kind == "method" and previous[2] == "function"):
                found[node.id] = (name, node, kind)
    out = []
    for name, node, kind in sorted(found.values(), key=lambda item: item[1].start_byte):
        if not name or name == "constructor":
            continue
        try:
            short = _render(f, node, kind)
        except Exception:  # an odd tree: skip this one definition
            log.debug("cannot render %s in %s", name, rel, exc_info=True)
            continue
        out.append(Definition(name, path, rel, kind, node.start_point.row, family, short))
    return out


def _parse_for_index(grammar: str, text: str, parser: Parser | None) -> Tree | None:
    """A fresh parse, time-limited (the request-side parse cache is not filled with workspace
    files)."""
    language = get_language(grammar)
    if language is None:
        return None
    if parser is None:
        parser = Parser(language)
    elif parser.language != language:
        parser.language = language
    data = SourceText(text).data
    deadline = time.perf_counter() + PARSE_TIMEOUT_S

    def read(byte: int, _point: Point) -> bytes:
        return data[byte : byte + 65536]

    def progress(_offset: int, _has_error: bool) -> bool:
        return time.perf_counter() > deadline  # True stops the parse

    try:
        return parser.parse(read, progress_callback=progress)
    except ValueError:  # the deadline passed
        parser.reset()
        return None


# -- the workspace index --------------------------------------------------------------------


def language_of_path(path: str) -> str | None:
    """The LSP language id the index reads a file as, from its suffix (None: not indexed)."""
    return SUFFIX_LANGUAGES.get(os.path.splitext(path)[1].lower())


class TagsIndex:
    """Definitions of one workspace's files, by name. Built and updated on its own thread."""

    def __init__(
        self,
        root: str,
        use_git: bool = True,
        max_files: int = MAX_FILES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        update_delay_s: float = UPDATE_DELAY_S,
    ) -> None:
        self.root = os.path.realpath(root)
        self.use_git = use_git
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes
        self.update_delay_s = update_delay_s
        self.ready = threading.Event()
        self.files_indexed = 0
        self.skipped: dict[str, int] = {}
        self._by_name: dict[str, list[Definition]] = {}
        self._by_file: dict[str, list[Definition]] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, str | None] = {}  # path -> new text (None: read the file)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> TagsIndex:
        """Build in the background (once); returns self."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wren-tags", daemon=True)
                self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the first build is done (scripts and tests; requests never wait)."""
        return self.ready.wait(timeout)

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def update(self, path: str, text: str | None = None) -> None:
        """The editor changed or saved `path` (`text` is its content; None: read the file).
        Indexed on the index's thread a moment later; files outside the root are ignored."""
        real = os.path.realpath(path)
        if language_of_path(real) is None or not real.startswith(self.root + os.sep):
            return
        with self._lock:
            self._pending[real] = text
        self._wake.set()

    def _run(self) -> None:
        try:
            self._build()
        except Exception:
            log.warning("the tags index of %s could not be built", self.root, exc_info=True)
        finally:
            self.ready.set()
        while not self._closed:
            self._wake.wait()
            if self._closed:
                return
            time.sleep(self.update_delay_s)  # let a burst of keystrokes settle
            self._wake.clear()
            with self._lock:
                pending, self._pending = self._pending, {}
            for path, text in pending.items():
                try:
                    self._index_file(path, text, Parser())
                except Exception:
                    log.debug("tags update of %s failed", path, exc_info=True)

    def _build(self) -> None:
        t0 = time.perf_counter()
        root = Path(self.root)
        parser = Parser()
        total = 0
        for rel in list_candidate_files(root, use_git=self.use_git):
            if self._closed or self.files_indexed >= self.max_files:
                break
            if language_of_path(rel) is None:
                continue
            path = root / rel
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                size = path.stat().st_size
                if total + size > self.max_total_bytes:
                    self._skip("over the index's size limit")
                    continue
                data = path.read_bytes() if size <= MAX_FILE_BYTES else b""
            except OSError:
                continue
            reason = skip_reason(rel, data, SUFFIX_LANGUAGES) if data else "huge"
            if reason is not None:
                self._skip(reason)
                continue
            total += size
            self._index_file(str(path), data.decode("utf-8"), parser)
            time.sleep(0)  # let request threads run between files
        log.info(
            "tags index of %s: %d files, %d names in %.1f s (skipped: %s)",
            self.root,
            self.files_indexed,
            len(self._by_name),
            time.perf_counter() - t0,
            self.skipped or "none",
        )

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _index_file(self, path: str, text: str | None, parser: Parser) -> None:
        language = language_of_path(path)
        if text is None:
            try:
                data = Path(path).read_bytes()
            except OSError:
                data = b""  # deleted: forget its definitions
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            if data and skip_reason(rel, data, SUFFIX_LANGUAGES) is not None:
                data = b""
            text = data.decode("utf-8", errors="replace")
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        found = definitions_in(language, text, path, rel, parser) if language and text else []
        with self._lock:
            for old in self._by_file.pop(path, []):
                same = self._by_name.get(old.name)
                if same is not None:
                    same[:] = [d for d in same if d.path != path]
                    if not same:
                        del self._by_name[old.name]
            if found:
                self._by_file[path] = found
                for d in found:
                    self._by_name.setdefault(d.name, []).append(d)
            else:
                self._by_file.pop(path, None)
            self.files_indexed = len(self._by_file)

    # -- lookups --------------------------------------------------------------------------

    def definitions(self, name: str) -> list[Definition]:
        with self._lock:
            return list(self._by_name.get(name, ()))

    def names_in(self, path: str) -> set[str]:
        with self._lock:
            return {d.name for d in self._by_file.get(os.path.realpath(path), ())}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._by_name.values())


_indexes: dict[str, TagsIndex] = {}
_indexes_lock = threading.Lock()


def index_for(root: str, use_git: bool = True) -> TagsIndex:
    """The (started) index of workspace `root`, created on first use."""
    key = os.path.realpath(root)
    with _indexes_lock:
        index = _indexes.get(key)
        if index is None:
            index = TagsIndex(key, use_git=use_git)
            _indexes[key] = index
    return index.start()


def existing_index(root: str | None) -> TagsIndex | None:
    if not root:
        return None
    with _indexes_lock:
        return _indexes.get(os.path.realpath(root))


def file_changed(root: str | None, path: str, text: str | None = None) -> None:
    """Tell the index of `root` (if there is one) that `path` changed."""
    index = existing_index(root)
    if index is not None and path:
        index.update(path, text)


# -- the request side -----------------------------------------------------------------------


@dataclass(frozen=True)
class NameUse:
    name: str
    row: int  # 0-based


def names_near_cursor(snapshot: Snapshot, lookback_lines: int = LOOKBACK_LINES) -> list[NameUse]:
    """Distinct identifiers of the last `lookback_lines` lines before the cursor, nearest
    first, as the grammar sees them (no keywords, nothing inside strings or comments)."""
    tree = parse(snapshot.language_id, snapshot.text)
    if tree is None:
        return []
    src = SourceText(snapshot.text)
    cursor = src.byte_of(snapshot.offset)
    last_row = src.row_of(snapshot.offset)
    first_row = max(0, last_row - lookback_lines + 1)
    uses: list[tuple[int, str, int]] = []  # (end byte, name, row)
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.end_point.row < first_row or node.start_point.row > last_row:
            continue
        if node.start_byte >= cursor:
            continue
        if node.type in _IDENTIFIER_TYPES and node.end_byte <= cursor:
            text = (node.text or b"").decode("utf-8", errors="replace")
            uses.append((node.end_byte, text, node.start_point.row))
            continue
        if "comment" in node.type or node.type in ("string", "string_literal"):
            continue
        stack.extend(node.children)
    seen: set[str] = set()
    found = []
    for _end, name, row in sorted(uses, reverse=True):
        if len(name) < 2 or name in seen:
            continue
        seen.add(name)
        found.append(NameUse(name, row))
    return found


def _shared_prefix(a: str, b: str) -> int:
    return len(os.path.commonpath([a, b])) if a and b else 0


def _pick(definitions: list[Definition], current: str) -> Definition | None:
    """The definition of a name a file most likely means: in the nearest directory."""
    files = {d.path for d in definitions}
    if not definitions or len(files) > MAX_AMBIGUOUS:
        return None
    return max(definitions, key=lambda d: (_shared_prefix(d.path, current), -d.row))


def tag_snippets(
    snapshot: Snapshot,
    workspace_root: str | None,
    budget_s: float = 0.05,
    max_snippets: int = MAX_SNIPPETS,
) -> list[ContextSnippet]:
    """Short definitions, from other workspace files, of the names used near the cursor.

    Uses the index of `workspace_root` when one was started (`index_for`) and is ready;
    returns [] otherwise, for Python (jedi's), and on any error.
    """
    try:
        return _tag_snippets(snapshot, workspace_root, budget_s, max_snippets)
    except Exception:
        log.debug("tags lookup failed", exc_info=True)
        return []


def _tag_snippets(
    snapshot: Snapshot, workspace_root: str | None, budget_s: float, max_snippets: int
) -> list[ContextSnippet]:
    grammar = language_for(snapshot.language_id)
    family = _FAMILY.get(grammar or "")
    index = existing_index(workspace_root)
    if family is None or index is None or not index.ready.is_set() or max_snippets <= 0:
        return []
    deadline = time.perf_counter() + budget_s
    current = os.path.realpath(snapshot.path) if snapshot.path else ""
    local = index.names_in(current) if current else set()
    out: list[ContextSnippet] = []
    shown: set[tuple[str, int]] = set()
    for use in names_near_cursor(snapshot)[:MAX_LOOKUPS]:
        if time.perf_counter() > deadline or len(out) >= max_snippets:
            break
        if use.name in local or use.name in COMMON_NAMES:
            continue  # this file defines it (the model sees that), or too many types do
        candidates = [
            d for d in index.definitions(use.name) if d.family == family and d.path != current
        ]
        best = _pick(candidates, current)
        if best is None or (best.path, best.row) in shown:
            continue
        shown.add((best.path, best.row))
        out.append(ContextSnippet(path=best.rel, text=best.text, source="symbol", score=1.0))
    return out
