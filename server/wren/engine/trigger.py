"""Should we complete here, and how much: nothing, the rest of the line, or a block?

The decision is cheap (string checks first, one cached tree-sitter parse when needed) and
its `reason` is shown to the user by "Why no completion?", so every reason is a sentence.
"""

from __future__ import annotations

import re

from wren.context import syntax
from wren.types import Mode, Snapshot, TriggerDecision

# Characters that may follow the cursor on its line without blocking a completion:
# closers an editor auto-inserts, and statement punctuation.
ALLOWED_AFTER_CURSOR = frozenset(")]}\"'`;:,")

# Languages whose blocks are delimited by braces.
BRACE_LANGUAGES = frozenset(
    {
        "javascript",
        "javascriptreact",
        "typescript",
        "typescriptreact",
        "go",
        "rust",
        "java",
        "c",
        "cpp",
        "cuda-cpp",
        "csharp",
        "kotlin",
        "scala",
        "swift",
        "php",
        "dart",
        "groovy",
        "objective-c",
        "objective-cpp",
        "json",
        "jsonc",
        "css",
        "scss",
        "less",
        "zig",
    }
)

_PY_HEADER = re.compile(
    r"^\s*(?:async\s+)?(?:def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
    r".*:\s*(?:#.*)?$"
)
_LINE_COMMENT = re.compile(r"\s*//.*$")


def _quote(text: str, limit: int = 40) -> str:
    text = text.strip()
    return "“" + (text if len(text) <= limit else text[: limit - 1] + "…") + "”"


def _word_around(text: str, offset: int) -> str:
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    end = offset
    while end < len(text) and (text[end].isalnum() or text[end] == "_"):
        end += 1
    return text[start:end]


def _previous_nonblank_line(text: str, line_start: int) -> str | None:
    """The last non-blank line before the line starting at `line_start`."""
    end = line_start - 1
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end].rstrip("\r")
        if line.strip():
            return line
        end = start - 1
    return None


def _indent_width(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def is_python_block_header(line: str, text: str = "", line_end: int = -1) -> bool:
    """A Python line that opens a block (`def ...:`, `if ...:`, `else:`), not a dict entry
    or a lambda. Uses the keyword shape, then tree-sitter for the colon's parent."""
    if _PY_HEADER.match(line):
        return True
    if not text or line_end < 0:
        return False
    stripped = line.split("#", 1)[0].rstrip()
    if not stripped.endswith(":"):
        return False
    tree = syntax.parse("python", text)
    if tree is None:
        return False
    src = syntax.SourceText(text)
    colon = line_end - (len(line) - len(stripped)) - 1
    node = syntax.node_at(tree, src.byte_of(colon))
    if node.type != ":":
        return False
    return node.parent is not None and node.parent.type in syntax.PY_BLOCK_NODES


def _brace_opener(line: str) -> bool:
    return _LINE_COMMENT.sub("", line).rstrip().endswith("{")


def _python_docstring_only_body(
    text: str, offset: int, line_start: int, cursor_indent: int
) -> bool:
    """The cursor is on a blank line right after a function/class docstring, with no body."""
    tree = syntax.parse("python", text)
    if tree is None:
        return False
    prev_end = len(text[:line_start].rstrip())
    if prev_end == 0:
        return False
    src = syntax.SourceText(text)
    for anc in syntax.ancestors(syntax.node_at(tree, src.byte_of(prev_end - 1))):
        if anc.type != "block":
            continue
        owner = anc.parent
        if owner is None or owner.type not in ("function_definition", "class_definition"):
            return False
        statements = anc.named_children
        docstring_only = bool(statements) and all(
            st.type == "expression_statement"
            and st.named_child_count == 1
            and st.named_children[0].type == "string"
            for st in statements
        )
        header_indent = owner.start_point.column
        return (
            docstring_only and cursor_indent > header_indent and anc.end_byte <= src.byte_of(offset)
        )
    return False


def _multi_line_reason(snapshot: Snapshot) -> str | None:
    """Why the cursor position calls for a block, or None when it does not."""
    text, offset = snapshot.text, snapshot.offset
    line_start = text.rfind("\n", 0, offset) + 1
    line_prefix = snapshot.line_prefix
    rest = snapshot.line_suffix.strip()
    prefix_blank = not line_prefix.strip()
    language = snapshot.language_id

    if language == "python":
        line_end = text.find("\n", offset)
        full_line = text[line_start : line_end if line_end != -1 else len(text)]
        if not rest and not prefix_blank and line_prefix.rstrip().endswith(":"):
            cursor_end = line_start + len(line_prefix.rstrip())
            if is_python_block_header(line_prefix, text, cursor_end):
                return f"End of the block header {_quote(line_prefix)}: the body can follow."
        if prefix_blank and not full_line.strip():
            prev = _previous_nonblank_line(text, line_start)
            if prev is not None:
                prev_end = len(text[:line_start].rstrip())
                if is_python_block_header(prev, text, prev_end):
                    return f"Start of the block opened by {_quote(prev)}."
            if _python_docstring_only_body(text, offset, line_start, _indent_width(line_prefix)):
                return "Empty body after a docstring: the body can follow."
        return None

    if language in BRACE_LANGUAGES or syntax.language_for(language) is not None:
        if not prefix_blank and _brace_opener(line_prefix) and rest in ("", "}", "});", "})", "};"):
            if not rest and _block_body_below(text, offset, _indent_width(line_prefix)):
                return None
            return f"Inside the empty block opened by {_quote(line_prefix)}."
        if prefix_blank and (not rest or rest.startswith("}")):
            prev = _previous_nonblank_line(text, line_start)
            if prev is not None and _brace_opener(prev):
                if not rest and _block_body_below(text, offset, _indent_width(prev)):
                    return None
                return f"Start of the block opened by {_quote(prev)}."
    return None


def _block_body_below(text: str, offset: int, opener_indent: int) -> bool:
    """The block opened above the cursor already has code below the cursor's line: the next
    non-blank line is indented deeper than the line that opened it. A block there is written
    already, so one line fits, not another block (measured in Go, Rust and Java:
    BENCHMARKS.md, Languages)."""
    end = text.find("\n", offset)
    while end != -1:
        start = end + 1
        end = text.find("\n", start)
        line = text[start : end if end != -1 else len(text)].rstrip("\r")
        if line.strip():
            return _indent_width(line) > opener_indent
    return False


def decide_trigger(snapshot: Snapshot, multiline_enabled: bool = True) -> TriggerDecision:
    """Decide whether to complete at the cursor, and whether a line or a block fits there."""
    text, offset = snapshot.text, snapshot.offset
    if offset < 0 or offset > len(text):
        return TriggerDecision(Mode.NONE, "The cursor position is outside the document.")

    if not text.strip():
        if multiline_enabled:
            return TriggerDecision(
                Mode.MULTI_LINE, "The document is empty: anything can start here."
            )
        return TriggerDecision(
            Mode.SINGLE_LINE, "The document is empty; multi-line completion is turned off."
        )

    after = text[offset] if offset < len(text) else ""
    if after.isalnum() or after == "_":
        word = _word_around(text, offset)
        before = text[offset - 1] if offset > 0 else ""
        if before.isalnum() or before == "_":
            why = f"The cursor is inside the word {_quote(word)}; a completion would split it."
        else:
            why = f"The cursor is right before {_quote(word)}; a completion would run into it."
        return TriggerDecision(Mode.NONE, why + " Move to the end of the word.")

    rest = snapshot.line_suffix.strip()
    blocking = [ch for ch in rest if ch not in ALLOWED_AFTER_CURSOR and not ch.isspace()]
    if blocking:
        return TriggerDecision(
            Mode.NONE,
            f"Text follows the cursor on this line ({_quote(rest)}). Completions are offered "
            "at the end of a line or before closing brackets and quotes only.",
        )

    context = syntax.cursor_context(snapshot.language_id, text, offset)
    if context is not None and context.in_string:
        return TriggerDecision(
            Mode.SINGLE_LINE, "Inside a string: completing the rest of the line."
        )
    if context is not None and context.in_comment:
        return TriggerDecision(Mode.SINGLE_LINE, "Inside a comment: completing the comment line.")

    reason = _multi_line_reason(snapshot)
    if reason is not None:
        if multiline_enabled:
            return TriggerDecision(Mode.MULTI_LINE, reason)
        return TriggerDecision(
            Mode.SINGLE_LINE, reason[:-1] + "; multi-line completion is turned off, so one line."
        )

    if not snapshot.line_prefix.strip():
        return TriggerDecision(Mode.SINGLE_LINE, "Blank line inside code: completing one line.")
    return TriggerDecision(
        Mode.SINGLE_LINE, "Middle of a statement: completing the rest of the line."
    )
