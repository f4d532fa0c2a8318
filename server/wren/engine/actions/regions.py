"""What an action works on: the selected lines, the enclosing function, the comment to implement.

Also the checks for input an action should refuse (empty, whitespace, binary, minified).
Offsets are character offsets into the document text; rows are 0-based.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wren.context.syntax import (
    SourceText,
    ancestors,
    comment_spans,
    iter_error_nodes,
    language_for,
    node_at,
    parse,
)
from wren.engine.actions.layout import has_long_lines, line_indent, looks_binary
from wren.engine.prompt.context_format import comment_prefix_for

MAX_LINE_CHARS = 5000

# Node types that make a good unit to explain or fix, per grammar.
_DEFINITIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "class_definition", "decorated_definition"}),
    "javascript": frozenset(
        {
            "function_declaration",
            "method_definition",
            "class_declaration",
            "arrow_function",
            "function_expression",
            "generator_function_declaration",
        }
    ),
    "go": frozenset({"function_declaration", "method_declaration", "type_declaration"}),
    "rust": frozenset({"function_item", "impl_item", "trait_item", "struct_item", "enum_item"}),
    "java": frozenset(
        {
            "method_declaration",
            "constructor_declaration",
            "class_declaration",
            "interface_declaration",
            "enum_declaration",
        }
    ),
    "c": frozenset({"function_definition", "struct_specifier"}),
    "cpp": frozenset({"function_definition", "class_specifier", "struct_specifier"}),
}
_DEFINITIONS["typescript"] = _DEFINITIONS["javascript"] | {"interface_declaration"}
_DEFINITIONS["tsx"] = _DEFINITIONS["typescript"]


class BadInput(Exception):  # a refusal with a user-facing reason
    """The input is not something the action can work on; `str(err)` says why."""


@dataclass(frozen=True)
class Region:
    """Whole lines `start..end` (offsets; `end` after the last line's line break, if any)."""

    start: int
    end: int
    first_row: int
    last_row: int
    source: str  # "selection" | "definition" | "lines" | "file"

    def text_of(self, text: str) -> str:
        return text[self.start : self.end]


def check_document(text: str, action: str) -> None:
    """Refuse documents no action can use."""
    if not text.strip():
        raise BadInput(f"The file is empty: there is nothing to {action}.")
    if looks_binary(text):
        raise BadInput(f"The file looks binary, not source code: Wren does not {action} it.")


def check_region_text(region_text: str, action: str) -> None:
    if not region_text.strip():
        raise BadInput(f"The selection is empty or only whitespace: there is nothing to {action}.")
    if looks_binary(region_text):
        raise BadInput(f"The selection looks binary, not source code: Wren does not {action} it.")
    if has_long_lines(region_text, MAX_LINE_CHARS):
        raise BadInput(
            f"The code has a line longer than {MAX_LINE_CHARS} characters (minified or "
            f"generated code?): Wren does not {action} it."
        )


def line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, max(0, offset)) + 1


def line_end_after_break(text: str, offset: int) -> int:
    """Offset just after the line break ending the line that holds `offset` (or the end)."""
    nl = text.find("\n", offset)
    return len(text) if nl == -1 else nl + 1


def row_of(text: str, offset: int) -> int:
    return text.count("\n", 0, max(0, offset))


def whole_lines(text: str, start: int, end: int, source: str) -> Region:
    """The lines that `start..end` touches. A selection ending at column 0 ends the line before."""
    if end > start and end == line_start(text, end) and end > 0:
        end -= 1  # "line 3 col 0" selected after a full line: do not take line 3
    a = line_start(text, start)
    b = line_end_after_break(text, max(a, end if end > start else start))
    return Region(a, b, row_of(text, a), row_of(text, max(a, b - 1)), source)


def enclosing_definition(language_id: str, text: str, offset: int) -> tuple[int, int] | None:
    """(start, end) offsets of the innermost function/class around `offset`, decorators included."""
    grammar = language_for(language_id)
    tree = parse(language_id, text)
    if tree is None or grammar is None:
        return None
    kinds = _DEFINITIONS.get(grammar, frozenset())
    src = SourceText(text)
    probes = [offset]
    # On a blank line below a body, or at the end of a line, look at the code just before.
    back = offset
    while back > 0 and text[back - 1] in " \t\r\n":
        back -= 1
    if back != offset and back > 0:
        probes.append(back - 1)
    for probe in probes:
        byte = src.byte_of(probe)
        for anc in ancestors(node_at(tree, byte)):
            if anc.type in kinds:
                node = anc
                if node.parent is not None and node.parent.type == "decorated_definition":
                    node = node.parent
                start, end = src.char_of(node.start_byte), src.char_of(node.end_byte)
                if probe == offset or row_of(text, end) >= row_of(text, offset) - 1:
                    return start, end
                break
    return None


def explain_region(language_id: str, text: str, start: int, end: int) -> Region:
    """The selection as whole lines; with no selection, the enclosing definition, else the file."""
    if end > start:
        return whole_lines(text, start, end, "selection")
    found = enclosing_definition(language_id, text, start)
    if found is not None:
        return whole_lines(text, found[0], found[1], "definition")
    return whole_lines(text, 0, len(text), "file")


MAX_FIX_LINES = 120
FIX_CONTEXT_LINES = 6


def fix_region(language_id: str, text: str, start: int, end: int) -> Region:
    """What a fix rewrites: the selected lines, else the enclosing definition (if not huge),
    else a few lines around the problem."""
    if end > start and text[start:end].strip():
        selected = whole_lines(text, start, end, "selection")
        inner = enclosing_definition(language_id, text, start)
        if inner is not None and language_id == "python" and _has_parse_error(text, inner):
            block = indentation_block(text, row_of(text, start))
            inner = None
            if block is not None and selected.last_row == selected.first_row:
                region = _rows_region(text, block[0], block[1], "block")
                if region.last_row - region.first_row < MAX_FIX_LINES:
                    return region
        if inner is not None and selected.last_row == selected.first_row:
            # A diagnostic's range is usually one token: rewrite its function, not one line.
            region = whole_lines(text, inner[0], inner[1], "definition")
            if region.last_row - region.first_row < MAX_FIX_LINES:
                return region
        return selected
    found = enclosing_definition(language_id, text, start)
    if found is not None and language_id == "python" and _has_parse_error(text, found):
        # tree-sitter's error recovery can wrap a broken method into its class (or cut a
        # function short); indentation is the better guide in a broken Python file.
        found = None
    if found is not None:
        region = whole_lines(text, found[0], found[1], "definition")
        if region.last_row - region.first_row < MAX_FIX_LINES:
            return region
    row = row_of(text, start)
    block = indentation_block(text, row)
    if block is not None and block[1] - block[0] < MAX_FIX_LINES:
        return _rows_region(text, block[0], block[1], "block")
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    first = max(0, row - FIX_CONTEXT_LINES)
    last = min(len(starts) - 1, row + FIX_CONTEXT_LINES)
    a = starts[first]
    b = starts[last + 1] if last + 1 < len(starts) else len(text)
    return Region(a, b, first, max(first, row_of(text, max(a, b - 1))), "lines")


def _indent_width(line: str) -> int:
    return (
        len(line) - len(line.lstrip(" \t")) + 3 * line[: len(line) - len(line.lstrip())].count("\t")
    )


def _has_parse_error(text: str, span: tuple[int, int]) -> bool:
    tree = parse("python", text)
    if tree is None:
        return False
    first, last = row_of(text, span[0]), row_of(text, span[1])
    return next(iter_error_nodes(tree.root_node, first, last), None) is not None


_DEF_LINE = re.compile(r"^\s*(async\s+def|def|class|function|func|fn)\b")


def indentation_block(text: str, row: int) -> tuple[int, int] | None:
    """Rows (first, last) of the top-level statement around `row`, found by indentation.

    Used when the parser cannot say (a syntax error): climb to the enclosing line with less
    indentation until column 0, then take that line and everything indented below it.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    r = min(row, len(lines) - 1)
    while r > 0 and not lines[r].strip():
        r -= 1
    if not lines[r].strip():
        return None
    first, width = r, _indent_width(lines[r])
    probe = r - 1
    while width > 0 and probe >= 0 and not _DEF_LINE.match(lines[first]):
        if lines[probe].strip() and _indent_width(lines[probe]) < width:
            first, width = probe, _indent_width(lines[probe])
        probe -= 1
    while first > 0 and lines[first - 1].strip().startswith(("@", "#")):
        first -= 1  # decorators and comments above belong to the statement
    last = first
    for i in range(first + 1, len(lines)):
        if lines[i].strip() and _indent_width(lines[i]) <= width:
            if lines[i].strip().startswith((")", "]", "}")):
                last = i  # the closing bracket of a multi-line statement
                continue
            break
        last = i
    while last > first and not lines[last].strip():
        last -= 1
    return first, last


def _rows_region(text: str, first: int, last: int, source: str) -> Region:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    a = starts[first]
    b = starts[last + 1] if last + 1 < len(starts) else len(text)
    return Region(a, b, first, last, source)


# -- Generate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateSpec:
    """What to generate and where it goes."""

    kind: str  # "comment" | "docstring"
    request: str  # the comment text, or the function's signature + docstring
    insert_start: int  # the edit replaces text[insert_start:insert_end] (usually empty)
    insert_end: int
    indent: str  # indentation of the generated code
    function_name: str = ""  # docstring kind: the function whose body is written
    header_code: str = ""  # docstring kind: the function's signature and docstring, as code
    context: str = ""  # code before the spec (for the prompt), already cut to a few lines
    needs_leading_eol: bool = False  # the spec is on the last line, which has no line break


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pos = 0
    for line in text.split("\n"):
        out.append((pos, line.rstrip("\r")))
        pos += len(line) + 1
    return out


# -- comments ---------------------------------------------------------------------------------
#
# A line is a comment line when everything on it but whitespace lies inside comments. Where the
# language has a grammar, the comments are the grammar's comment nodes (so `*p = 0;` in C is
# code, and a `#` line inside a Python string is not a comment). Without a grammar (or when the
# file cannot be parsed: too large, a timeout), the fallback reads markers line by line: the
# language's line-comment marker (`engine.prompt.context_format`'s table: `#`, `//`, `--`, ...)
# and, for `//` languages, `/* ... */` blocks followed from the top of the file.

COMMENT_WINDOW_LINES = 200  # a comment block longer than this is cut to it

_OPENING = re.compile(r"^(?://[/!]?|/\*[*!]?|#+|--|%|;+)")
_CONTINUATION = re.compile(r"^\*(?!/)")


def _comment_words(piece: str, opens: bool, closes: bool) -> str:
    """The words of one line of a comment: markers and decoration removed."""
    s = piece.strip()
    s = _OPENING.sub("", s, count=1) if opens else _CONTINUATION.sub("", s, count=1)
    if closes:
        s = re.sub(r"\*+/$", "", s.rstrip())
    return s.strip()


def comment_lines(
    language_id: str, text: str, first_row: int, last_row: int
) -> dict[int, str] | None:
    """Rows in `first_row..last_row` that hold only a comment -> the comment's words on them.

    None when the language has no grammar or the text cannot be parsed: then use
    `fallback_comment_lines`.
    """
    spans = comment_spans(language_id, text, first_row, last_row)
    if spans is None:
        return None
    lines = _lines_with_offsets(text)
    out: dict[int, str] = {}
    k = 0
    for row in range(max(0, first_row), min(last_row, len(lines) - 1) + 1):
        start, line = lines[row]
        stripped = line.strip()
        if not stripped:
            continue
        a = start + len(line) - len(line.lstrip())
        b = start + len(line.rstrip())
        while k < len(spans) and spans[k][1] <= a:
            k += 1
        pieces: list[str] = []
        covered_to = a
        j = k
        while j < len(spans) and spans[j][0] < b:
            s, e = spans[j]
            if text[covered_to : max(covered_to, s)].strip():
                break  # code before this comment
            lo, hi = max(s, a), min(e, b)
            pieces.append(_comment_words(text[lo:hi], lo == s, hi == e))
            covered_to = max(covered_to, hi)
            j += 1
        if pieces and not text[covered_to:b].strip():
            out[row] = " ".join(p for p in pieces if p)
    return out


def fallback_comment_lines(
    language_id: str, text: str, first_row: int, last_row: int
) -> dict[int, str]:
    """`comment_lines` for a language without a grammar, from comment markers alone."""
    marker = comment_prefix_for(language_id)
    lines = _lines_with_offsets(text)
    out: dict[int, str] = {}
    in_block = False
    for row, (_, line) in enumerate(lines[: last_row + 1]):
        s = line.strip()
        is_comment = False
        opens = closes = False
        if marker == "//" and (in_block or s.startswith("/*")):
            opens = not in_block
            after = s[2:] if opens else s
            closes = "*/" in after
            in_block = not closes
            is_comment = not closes or not after.split("*/", 1)[1].strip()
        elif s.startswith(marker):
            is_comment = True
            s = s[len(marker) :]  # markers outside `_OPENING`'s list ("REM", "!") too
        elif marker == "//" and "/*" in s:
            in_block = "*/" not in s.split("/*", 1)[1]  # a block opened after code
        if row >= first_row and is_comment and s:
            out[row] = _comment_words(s, opens, closes)
    return out


def is_comment_line(language_id: str, text: str, row: int) -> bool:
    """Does row `row` hold only a comment (see `comment_lines`)?"""
    found = comment_lines(language_id, text, row, row)
    if found is None:
        found = fallback_comment_lines(language_id, text, row, row)
    return row in found


CONTEXT_LINES = 12


def _context_before(lines: list[tuple[int, str]], row: int) -> str:
    chunk = [line for _, line in lines[max(0, row - CONTEXT_LINES) : row]]
    while chunk and not chunk[0].strip():
        chunk.pop(0)
    return "\n".join(chunk).rstrip()


def find_generate_spec(language_id: str, text: str, offset: int) -> GenerateSpec:
    """The comment at/above the cursor, or the docstring of the function around the cursor."""
    lines = _lines_with_offsets(text)
    row = row_of(text, offset)
    window = (max(0, row - COMMENT_WINDOW_LINES), row + COMMENT_WINDOW_LINES)
    comments = comment_lines(language_id, text, *window)
    if comments is None:
        comments = fallback_comment_lines(language_id, text, *window)

    def is_comment(r: int) -> bool:
        return r in comments

    # The cursor's line, or the nearest non-blank line above it.
    probe = row
    while probe >= 0 and not lines[probe][1].strip():
        probe -= 1
    if probe >= 0 and is_comment(probe):
        first = last = probe
        while first > 0 and is_comment(first - 1):
            first -= 1
        while last + 1 < len(lines) and is_comment(last + 1):
            last += 1
        request = " ".join(comments[r] for r in range(first, last + 1) if comments[r]).strip()
        if not request:
            raise BadInput("The comment above the cursor is empty: describe the code to write.")
        insert = line_end_after_break(text, lines[last][0])
        eol_missing = insert == len(text) and not text.endswith("\n")
        return GenerateSpec(
            kind="comment",
            request=request,
            insert_start=insert,
            insert_end=insert,
            indent=line_indent(lines[first][1]),
            context=_context_before(lines, first),
            needs_leading_eol=eol_missing,
        )
    if language_id == "python":
        spec = _docstring_spec(text, offset)
        if spec is not None:
            return spec
    raise BadInput(
        "Put the cursor on or below a comment that describes the code to generate"
        + (", or inside a function that has only a docstring." if language_id == "python" else ".")
    )


def _docstring_spec(text: str, offset: int) -> GenerateSpec | None:
    tree = parse("python", text)
    if tree is None:
        return None
    src = SourceText(text)
    back = offset
    while back > 0 and text[back - 1] in " \t\r\n":
        back -= 1
    for probe in (offset, back - 1):
        if probe < 0:
            continue
        for anc in ancestors(node_at(tree, src.byte_of(probe))):
            if anc.type != "function_definition":
                continue
            body = anc.child_by_field_name("body")
            name_node = anc.child_by_field_name("name")
            if body is None or name_node is None or not body.named_children:
                return None
            stmts = [c for c in body.named_children if c.type != "comment"]
            if not stmts:
                return None
            doc = stmts[0]
            is_doc = doc.type == "expression_statement" and any(
                c.type == "string" for c in doc.named_children
            )
            if not is_doc:
                return None
            rest = stmts[1:]
            stub = all(
                s.type == "pass_statement"
                or (s.type == "expression_statement" and (s.text or b"").strip() == b"...")
                for s in rest
            )
            if not stub:
                return None
            doc_end = src.char_of(doc.end_byte)
            insert = line_end_after_break(text, doc_end)
            end = insert
            if rest:
                end = line_end_after_break(text, src.char_of(rest[-1].end_byte))
            def_start = line_start(text, src.char_of(anc.start_byte))
            header = text[def_start:insert].replace("\r\n", "\n")
            if not header.endswith("\n"):
                header += "\n"
            before = text[:def_start].replace("\r\n", "\n")
            context_lines = [line for line in before.split("\n") if line.strip()]
            context = "\n".join(context_lines[-40:]) if len(before) < 4000 else ""
            return GenerateSpec(
                kind="docstring",
                request=header,
                insert_start=insert,
                insert_end=end,
                indent=_indent_at(text, src.char_of(doc.start_byte)),
                function_name=(name_node.text or b"").decode("utf-8", "replace"),
                header_code=header,
                context=context,
            )
    return None


def _indent_at(text: str, offset: int) -> str:
    start = line_start(text, offset)
    return line_indent(text[start : offset + 1])
