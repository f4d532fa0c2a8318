"""Tree-sitter helpers: parse a document, find the node/scope at the cursor, check for errors.

Everything here works on Python `str` offsets (code points), while tree-sitter works on
UTF-8 bytes; `SourceText` converts between the two. Parsing is bounded: oversized input
(more than `MAX_PARSE_BYTES`, or a line longer than `MAX_LINE_CHARS`, typically minified
or generated code) is not parsed at all, and a parse that runs past `PARSE_TIMEOUT_S`
is abandoned. Every public function returns `None`/`False` instead of raising when a
document cannot be parsed, so callers treat "no tree" as "no syntactic knowledge".
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from tree_sitter import Language, Node, Parser, Point, Tree

log = logging.getLogger(__name__)

MAX_PARSE_BYTES = 1_000_000
MAX_LINE_CHARS = 10_000
PARSE_TIMEOUT_S = 0.25

# LSP language id -> grammar key.
_LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",  # the JavaScript grammar parses JSX
    "typescript": "typescript",
    "typescriptreact": "tsx",
    "go": "go",
    "rust": "rust",
    "java": "java",
    "c": "c",
    "cpp": "cpp",
    "cuda-cpp": "cpp",
}

# grammar key -> (module, function returning the language pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

# Python statements that own an indented block (a body may follow their header line).
PY_BLOCK_NODES = frozenset(
    {
        "function_definition",
        "class_definition",
        "if_statement",
        "elif_clause",
        "else_clause",
        "for_statement",
        "while_statement",
        "with_statement",
        "try_statement",
        "except_clause",
        "finally_clause",
        "match_statement",
        "case_clause",
    }
)
# Node types that count as a scope for `enclosing_scope`, per grammar key.
_PY_SCOPES = PY_BLOCK_NODES | {"module"}
_JS_SCOPES = frozenset(
    {
        "statement_block",
        "class_body",
        "object",
        "function_declaration",
        "function_expression",
        "arrow_function",
        "method_definition",
        "class_declaration",
        "interface_body",
        "enum_body",
        "switch_body",
        "program",
    }
)
_SCOPE_TYPES: dict[str, frozenset[str]] = {
    "python": _PY_SCOPES,
    "javascript": _JS_SCOPES,
    "typescript": _JS_SCOPES,
    "tsx": _JS_SCOPES,
    "go": frozenset(
        {
            "block",
            "function_declaration",
            "method_declaration",
            "func_literal",
            "literal_value",
            "field_declaration_list",
            "source_file",
        }
    ),
    "rust": frozenset(
        {
            "block",
            "function_item",
            "impl_item",
            "trait_item",
            "declaration_list",
            "field_declaration_list",
            "match_block",
            "closure_expression",
            "source_file",
        }
    ),
    "java": frozenset(
        {
            "block",
            "class_body",
            "interface_body",
            "enum_body",
            "constructor_body",
            "switch_block",
            "method_declaration",
            "constructor_declaration",
            "class_declaration",
            "lambda_expression",
            "program",
        }
    ),
    "c": frozenset(
        {
            "compound_statement",
            "function_definition",
            "field_declaration_list",
            "enumerator_list",
            "initializer_list",
            "translation_unit",
        }
    ),
    "cpp": frozenset(
        {
            "compound_statement",
            "function_definition",
            "field_declaration_list",
            "declaration_list",
            "enumerator_list",
            "initializer_list",
            "lambda_expression",
            "class_specifier",
            "struct_specifier",
            "namespace_definition",
            "translation_unit",
        }
    ),
}

_languages: dict[str, Language] = {}
_languages_lock = threading.Lock()
_thread_state = threading.local()  # one Parser per grammar per thread: parsers are not thread-safe


def language_for(language_id: str) -> str | None:
    """The grammar key for an LSP language id, or None when Wren has no grammar for it."""
    return _LANGUAGE_IDS.get(language_id)


def get_language(grammar: str) -> Language | None:
    """The tree-sitter `Language` for a grammar key, loaded once per process."""
    lang = _languages.get(grammar)
    if lang is not None:
        return lang
    spec = _GRAMMARS.get(grammar)
    if spec is None:
        return None
    with _languages_lock:
        lang = _languages.get(grammar)
        if lang is None:
            try:
                module = importlib.import_module(spec[0])
                lang = Language(getattr(module, spec[1])())
            except Exception:  # a missing or broken grammar wheel: no syntax, no crash
                log.warning("tree-sitter grammar %s could not be loaded", grammar, exc_info=True)
                return None
            _languages[grammar] = lang
    return lang


def _parser_for(grammar: str) -> Parser | None:
    parsers: dict[str, Parser] | None = getattr(_thread_state, "parsers", None)
    if parsers is None:
        parsers = {}
        _thread_state.parsers = parsers
    parser = parsers.get(grammar)
    if parser is None:
        lang = get_language(grammar)
        if lang is None:
            return None
        parser = Parser(lang)
        parsers[grammar] = parser
    return parser


class SourceText:
    """A text with its UTF-8 encoding, converting code-point offsets to byte offsets and back."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.data = text.encode("utf-8", errors="surrogatepass")
        self.is_ascii = len(self.data) == len(text)

    def byte_of(self, offset: int) -> int:
        offset = max(0, min(offset, len(self.text)))
        if self.is_ascii:
            return offset
        return len(self.text[:offset].encode("utf-8", errors="surrogatepass"))

    def char_of(self, byte: int) -> int:
        byte = max(0, min(byte, len(self.data)))
        if self.is_ascii:
            return byte
        return len(self.data[:byte].decode("utf-8", errors="ignore"))

    def row_of(self, offset: int) -> int:
        return self.text.count("\n", 0, max(0, offset))


def is_parseable(text: str) -> bool:
    """False for input too large to parse quickly (huge files, minified lines)."""
    if len(text) > MAX_PARSE_BYTES:
        return False
    if len(text) > MAX_LINE_CHARS:
        start = 0
        while True:
            end = text.find("\n", start)
            if end == -1:
                return len(text) - start <= MAX_LINE_CHARS
            if end - start > MAX_LINE_CHARS:
                return False
            start = end + 1
    return True


# A few recent parses, shared by the trigger, post-processing and prompt code, which
# all look at the same document version within one request.
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str], Tree] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_get(grammar: str, text: str) -> Tree | None:
    with _cache_lock:
        tree = _cache.get((grammar, text))
        if tree is not None:
            _cache.move_to_end((grammar, text))
        return tree


def _cache_put(grammar: str, text: str, tree: Tree) -> None:
    with _cache_lock:
        _cache[(grammar, text)] = tree
        _cache.move_to_end((grammar, text))
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def _parse_bytes(
    parser: Parser, data: bytes, old_tree: Tree | None = None, timeout_s: float | None = None
) -> Tree | None:
    timeout_s = PARSE_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.perf_counter() + timeout_s
    chunk = 1 << 16

    def read(byte: int, _point: Point) -> bytes:
        return data[byte : byte + chunk]

    def progress(_offset: int, _has_error: bool) -> bool:
        return time.perf_counter() > deadline  # True stops the parse

    try:
        if old_tree is None:
            return parser.parse(read, progress_callback=progress)
        return parser.parse(read, old_tree, progress_callback=progress)
    except ValueError:  # "Parsing failed": the deadline passed
        log.debug("tree-sitter parse abandoned after %.0f ms", timeout_s * 1000)
        parser.reset()
        return None


def _common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix of `a` and `b` (block compares first: they run in C)."""
    limit = min(len(a), len(b))
    step = 4096
    i = 0
    while i + step <= limit and a[i : i + step] == b[i : i + step]:
        i += step
    while i < limit and a[i] == b[i]:
        i += 1
    return i


def _common_suffix_len(a: str, b: str, limit: int) -> int:
    """Length of the common suffix of `a` and `b`, at most `limit`."""
    limit = min(limit, len(a), len(b))
    step = 4096
    la, lb = len(a), len(b)
    n = 0
    while n + step <= limit and a[la - n - step : la - n] == b[lb - n - step : lb - n]:
        n += step
    while n < limit and a[la - n - 1] == b[lb - n - 1]:
        n += 1
    return n


def _point_of(text: str, offset: int) -> Point:
    line_start = text.rfind("\n", 0, offset) + 1
    column = len(text[line_start:offset].encode("utf-8", errors="surrogatepass"))
    return Point(text.count("\n", 0, offset), column)


def _edited_copy(
    old_tree: Tree, old_text: str, new_text: str, start: int, old_end: int, new_end: int
) -> Tree:
    """A copy of `old_tree` told that old_text[start:old_end] became new_text[start:new_end]."""
    old_src, new_src = SourceText(old_text), SourceText(new_text)
    edited = old_tree.copy()
    edited.edit(
        start_byte=old_src.byte_of(start),
        old_end_byte=old_src.byte_of(old_end),
        new_end_byte=new_src.byte_of(new_end),
        start_point=_point_of(old_text, start),
        old_end_point=_point_of(old_text, old_end),
        new_end_point=_point_of(new_text, new_end),
    )
    return edited


def _incremental_base(grammar: str, text: str) -> tuple[Tree, str, int, int, int] | None:
    """A recently parsed text of the same grammar that differs from `text` in one region:
    (its tree, its text, edit start, old end, new end). Typing changes a few characters of
    a large file; re-parsing incrementally costs a fraction of a fresh parse."""
    with _cache_lock:
        recent = [(key[1], tree) for key, tree in reversed(_cache.items()) if key[0] == grammar][:3]
    best: tuple[Tree, str, int, int, int] | None = None
    best_shared = len(text) // 2  # less shared text than this: parse from scratch
    for old_text, tree in recent:
        prefix = _common_prefix_len(old_text, text)
        suffix = _common_suffix_len(old_text, text, min(len(old_text), len(text)) - prefix)
        if prefix + suffix > best_shared:
            best_shared = prefix + suffix
            best = (tree, old_text, prefix, len(old_text) - suffix, len(text) - suffix)
    return best


def parse(language_id: str, text: str) -> Tree | None:
    """Parse `text`; None for an unsupported language, oversized input, or a timeout.

    Re-uses a recent tree of a similar text (the same document a keystroke ago) when there
    is one, so parsing while typing stays cheap in large files.
    """
    grammar = language_for(language_id)
    if grammar is None or not is_parseable(text):
        return None
    tree = _cache_get(grammar, text)
    if tree is not None:
        return tree
    parser = _parser_for(grammar)
    if parser is None:
        return None
    data = SourceText(text).data
    base = _incremental_base(grammar, text) if len(text) > 20_000 else None
    if base is not None:
        old_tree, old_text, start, old_end, new_end = base
        edited = _edited_copy(old_tree, old_text, text, start, old_end, new_end)
        tree = _parse_bytes(parser, data, edited)
    else:
        tree = _parse_bytes(parser, data)
    if tree is not None:
        _cache_put(grammar, text, tree)
    return tree


def remember_tree(language_id: str, text: str, tree: Tree) -> None:
    """Seed the parse cache with a tree someone else parsed (e.g. incrementally)."""
    grammar = language_for(language_id)
    if grammar is not None:
        _cache_put(grammar, text, tree)


def parse_with_insertion(
    language_id: str, text: str, offset: int, inserted: str
) -> tuple[str, Tree] | None:
    """Parse `text` with `inserted` placed at `offset`, reusing the tree of `text`.

    Returns the new text and its tree. Incremental: only the edited region is re-parsed.
    """
    new_text = text[:offset] + inserted + text[offset:]
    grammar = language_for(language_id)
    if grammar is None or not is_parseable(new_text):
        return None
    cached = _cache_get(grammar, new_text)
    if cached is not None:
        return new_text, cached
    parser = _parser_for(grammar)
    if parser is None:
        return None
    old = parse(language_id, text)
    data = SourceText(new_text).data
    if old is not None:
        edited = _edited_copy(old, text, new_text, offset, offset, offset + len(inserted))
        tree = _parse_bytes(parser, data, edited)
    else:
        tree = _parse_bytes(parser, data)
    if tree is None:
        return None
    _cache_put(grammar, new_text, tree)
    return new_text, tree


def iter_error_nodes(node: Node, first_row: int, last_row: int) -> Iterator[Node]:
    """ERROR and MISSING nodes under `node` that touch rows `first_row..last_row`."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.end_point.row < first_row or current.start_point.row > last_row:
            continue
        if current.is_error or current.is_missing:
            yield current
            continue
        if not current.has_error:
            continue
        stack.extend(reversed(current.children))


def count_errors(tree: Tree, limit: int = 1000) -> int:
    """The number of ERROR and MISSING nodes in `tree` (stops counting at `limit`)."""
    count = 0
    for _ in iter_error_nodes(tree.root_node, 0, tree.root_node.end_point.row + 1):
        count += 1
        if count >= limit:
            break
    return count


def errors_near_in_tree(tree: Tree, row: int, window_lines: int) -> bool:
    """True when `tree` has a parse error within `window_lines` lines of `row`."""
    if not tree.root_node.has_error:
        return False
    errors = iter_error_nodes(tree.root_node, row - window_lines, row + window_lines)
    return next(errors, None) is not None


def has_error_near(language_id: str, text: str, offset: int, window_lines: int = 20) -> bool:
    """True when the parse tree has an error within `window_lines` lines of `offset`.

    False when the text cannot be parsed (unsupported language, too large): no evidence.
    """
    tree = parse(language_id, text)
    if tree is None:
        return False
    return errors_near_in_tree(tree, text.count("\n", 0, max(0, offset)), window_lines)


def node_at(tree: Tree, byte: int) -> Node:
    """The deepest node spanning `byte` (a leaf at a boundary when two nodes touch)."""
    node = tree.root_node.descendant_for_byte_range(byte, byte)
    return node if node is not None else tree.root_node


def ancestors(node: Node | None) -> Iterator[Node]:
    """`node` and its parents up to the root."""
    while node is not None:
        yield node
        node = node.parent


_STRING_TYPES = frozenset(
    {
        "string",
        "string_content",
        "string_fragment",
        "template_string",
        "string_literal",
        "raw_string_literal",
        "interpreted_string_literal",
        "char_literal",
        "character_literal",
        "text_block",
    }
)


def _is_string(node: Node) -> bool:
    return node.type in _STRING_TYPES


def _is_comment(node: Node) -> bool:
    return "comment" in node.type


@dataclass(frozen=True)
class CursorContext:
    """What tree-sitter says about the cursor position."""

    in_string: bool
    in_comment: bool
    node_type: str
    ancestor_types: tuple[str, ...]


def cursor_context(language_id: str, text: str, offset: int) -> CursorContext | None:
    """Whether the cursor sits inside a string or a comment, and the node types around it."""
    tree = parse(language_id, text)
    if tree is None:
        return None
    byte = SourceText(text).byte_of(offset)
    node = node_at(tree, byte)
    # At a boundary tree-sitter may hand back the token after the cursor; look at the one
    # ending at the cursor too.
    candidates = [node]
    if byte > 0:
        candidates.append(node_at(tree, byte - 1))
    in_string = in_comment = False
    for cand in candidates:
        for anc in ancestors(cand):
            if _is_string(anc) and anc.start_byte < byte < anc.end_byte:
                in_string = True
            if _is_comment(anc) and anc.start_byte < byte:
                closed_block = (anc.text or b"").rstrip().endswith(b"*/")
                if byte < anc.end_byte or (byte == anc.end_byte and not closed_block):
                    in_comment = True
    return CursorContext(
        in_string=in_string,
        in_comment=in_comment,
        node_type=node.type,
        ancestor_types=tuple(a.type for a in ancestors(node)),
    )


def _line_indent(text: str, offset: int) -> int:
    start = text.rfind("\n", 0, offset) + 1
    end = start
    while end < len(text) and text[end] in " \t":
        end += 1
    return end - start


def _python_scope_for_blank_line(
    tree: Tree, src: SourceText, offset: int, scopes: frozenset[str]
) -> tuple[int, int] | None:
    """Python blocks end at their last statement, so a blank indented line after it is
    'outside' every node. Use indentation: the innermost scope whose header is less
    indented than the cursor and that contains the previous non-blank line."""
    text = src.text
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : line_end if line_end != -1 else len(text)]
    if line.strip():
        return None
    cursor_indent = len(text[line_start:offset]) if not text[line_start:offset].strip() else 0
    cursor_indent = max(cursor_indent, len(line) - len(line.lstrip()))
    prev = text[:line_start].rstrip()
    if not prev:
        return None
    node: Node | None = node_at(tree, src.byte_of(len(prev) - 1))
    for anc in ancestors(node):
        if anc.type in scopes and anc.type != "module":
            header_indent = _line_indent(text, src.char_of(anc.start_byte))
            if header_indent < cursor_indent:
                return src.char_of(anc.start_byte), max(src.char_of(anc.end_byte), offset)
    return None


def enclosing_scope(language_id: str, text: str, offset: int) -> tuple[int, int] | None:
    """Char offsets (start, end) of the innermost function/class/block containing `offset`."""
    grammar = language_for(language_id)
    tree = parse(language_id, text)
    if tree is None or grammar is None:
        return None
    scopes = _SCOPE_TYPES[grammar]
    src = SourceText(text)
    if grammar == "python":
        found = _python_scope_for_blank_line(tree, src, offset, scopes)
        if found is not None:
            return found
    byte = src.byte_of(offset)
    for anc in ancestors(node_at(tree, byte)):
        if anc.type in scopes and anc.start_byte <= byte <= anc.end_byte:
            if anc.parent is None:  # the whole file is not a useful scope
                return None
            return src.char_of(anc.start_byte), src.char_of(anc.end_byte)
    return None


@dataclass(frozen=True)
class LiteralAt:
    """The string or block comment that an offset sits inside, if any."""

    string_delimiter: str | None  # the closing delimiter, e.g. '"""', '"', '`'
    block_comment: bool
    line_comment: bool


_PY_STRING_PREFIX = "rRbBuUfFtT"


def _opening_delimiter(node: Node) -> str:
    raw = (node.text or b"")[:8].decode("utf-8", errors="replace")
    if node.type == "raw_string_literal" and raw.startswith("`"):
        return "`"
    body = raw.lstrip(_PY_STRING_PREFIX) if node.type == "string" else raw
    if node.type == "raw_string_literal" and raw[:1] in ("r", "R"):
        return '"'
    for triple in ('"""', "'''"):
        if body.startswith(triple):
            return triple
    return body[:1] if body[:1] in ("'", '"', "`") else '"'


def literal_at(language_id: str, text: str, offset: int) -> LiteralAt | None:
    """Whether `offset` is inside a string literal (and its delimiter) or a comment."""
    tree = parse(language_id, text)
    if tree is None:
        return None
    byte = SourceText(text).byte_of(offset)
    delimiter: str | None = None
    block = line = False
    seen: set[int] = set()
    for start in (byte, byte - 1) if byte > 0 else (byte,):
        for anc in ancestors(node_at(tree, start)):
            if anc.id in seen:
                continue
            seen.add(anc.id)
            if _is_string(anc) and anc.start_byte < byte < anc.end_byte:
                if anc.type not in ("string_content", "string_fragment"):
                    delimiter = _opening_delimiter(anc)  # outermost wins: keep overwriting
            elif _is_comment(anc) and anc.start_byte < byte:
                content = anc.text or b""
                if content.startswith(b"/*"):
                    if byte < anc.end_byte or not content.rstrip().endswith(b"*/"):
                        block = True
                elif byte <= anc.end_byte:
                    line = True
    return LiteralAt(delimiter, block, line)


def comment_spans(
    language_id: str, text: str, first_row: int, last_row: int
) -> list[tuple[int, int]] | None:
    """Char offsets (start, end) of the grammar's comment nodes touching rows
    `first_row..last_row`, in order; None when the text cannot be parsed (no grammar,
    too large, timeout), so the caller knows the grammar could not say."""
    tree = parse(language_id, text)
    if tree is None:
        return None
    src = SourceText(text)
    found: list[tuple[int, int]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.end_point.row < first_row or node.start_point.row > last_row:
            continue
        if _is_comment(node):  # the outermost: a Rust doc comment holds a `doc_comment`
            found.append((src.char_of(node.start_byte), src.char_of(node.end_byte)))
            continue
        stack.extend(node.children)
    found.sort()
    return found
