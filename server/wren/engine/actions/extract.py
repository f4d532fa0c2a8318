"""Take the code out of a model's answer: the fenced block, never the prose around it.

Instruct models answer in markdown. The prompt usually opens the fence itself (the assistant
turn starts with "```python\\n"), so the answer starts inside a block and ends at the closing
fence; an answer that opens its own fences is handled too. An answer with no code at all is
reported as such rather than pasted into the user's file.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*$", re.MULTILINE)

# Tags that count as "the code we asked for", per language id.
_TAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "py", "python3", ""}),
    "javascript": frozenset({"javascript", "js", "jsx", ""}),
    "javascriptreact": frozenset({"javascript", "js", "jsx", ""}),
    "typescript": frozenset({"typescript", "ts", ""}),
    "typescriptreact": frozenset({"typescript", "ts", "tsx", ""}),
    "go": frozenset({"go", "golang", ""}),
    "rust": frozenset({"rust", "rs", ""}),
    "java": frozenset({"java", ""}),
    "c": frozenset({"c", "h", ""}),
    "cpp": frozenset({"cpp", "c++", "cc", "hpp", ""}),
}

# Special tokens some tokenizers leave in decoded text.
_SPECIAL = re.compile(r"<\|im_end\|>|<\|endoftext\|>|<\|im_start\|>\w*|<file_sep>|<filename>")


@dataclass(frozen=True)
class Extracted:
    """The code found in an answer, or why there is none."""

    code: str | None
    reason: str = ""
    complete: bool = True  # False when the block was cut off (no closing fence, token limit)


def fence_tag(language_id: str) -> str:
    """The tag to open a fence with for `language_id` ("python", "ts", ...)."""
    return {
        "javascriptreact": "jsx",
        "typescriptreact": "tsx",
        "plaintext": "",
    }.get(language_id, language_id)


def _blocks(text: str) -> list[tuple[str, str, bool]]:
    """(tag, body, closed) for each fenced block in `text`."""
    blocks: list[tuple[str, str, bool]] = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if opening is None:
            return blocks
        marker, tag = opening.group(1), opening.group(2).lower()
        body_start = opening.end() + 1
        closing = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$", re.M)
        end = closing.search(text, body_start)
        if end is None:
            blocks.append((tag, text[body_start:], False))
            return blocks
        blocks.append((tag, text[body_start : end.start()], True))
        pos = end.end()


def _looks_like_code(text: str, language_id: str) -> bool:
    if language_id != "python":
        return False
    stripped = text.strip()
    if not stripped:
        return False
    try:
        tree = ast.parse(stripped)
    except SyntaxError:
        return False
    # A sentence such as "Sure" parses as a bare name; ask for at least one real statement.
    return any(not isinstance(node, ast.Expr) for node in tree.body)


def extract_code(
    answer: str, language_id: str = "python", prefilled_fence: bool = False
) -> Extracted:
    """The code block from `answer`.

    `prefilled_fence`: the prompt already opened the block, so the answer starts with code and
    ends at the first closing fence (or wherever generation stopped).
    """
    answer = _SPECIAL.sub("", answer).replace("\r\n", "\n")
    if prefilled_fence:
        closing = re.search(r"^[ \t]*(`{3,}|~{3,})[ \t]*$", answer, re.MULTILINE)
        if closing is None:
            # Some tokenizers glue the fence to the last code line: "    return x```".
            glued = answer.find("```")
            code = answer if glued == -1 else answer[:glued]
            complete = glued != -1
        else:
            code, complete = answer[: closing.start()], True
        if not code.strip():
            return Extracted(None, "the model's answer contained no code")
        return Extracted(code.rstrip() + "\n", complete=complete)
    tags = _TAGS.get(language_id, frozenset({fence_tag(language_id), ""}))
    blocks = [b for b in _blocks(answer) if b[1].strip()]
    for tag, body, closed in blocks:
        if tag in tags:
            return Extracted(body.rstrip() + "\n", complete=closed)
    if blocks:
        tag, body, closed = blocks[0]
        return Extracted(body.rstrip() + "\n", complete=closed)
    if _looks_like_code(answer, language_id):
        return Extracted(answer.strip("\n").rstrip() + "\n")
    return Extracted(None, "the model answered without a code block")


_DEFINITIONS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Import,
    ast.ImportFrom,
    ast.Assign,
    ast.AnnAssign,
)


def drop_example_usage(code: str) -> str:
    """Cut top-level demo code (prints, `if __name__ == ...`, test calls) after the definitions.

    Small models like to append "# Test the function\\nprint(f(3))"; pasted into the user's
    file that would run on import. Only Python is trimmed; anything that fails to parse is
    returned as it is.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    defs = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
    if not defs or not any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in defs
    ):
        return code
    last = defs[-1]
    end_line = last.end_lineno or last.lineno
    lines = code.split("\n")
    kept = "\n".join(lines[:end_line]).rstrip()
    return kept + "\n"


def function_named(code: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The top-level (or class-level) function called `name` in `code`, if it parses."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def function_body(code: str, name: str) -> str | None:
    """The body of function `name` in `code` without its docstring, dedented; None if absent."""
    node = function_named(code, name)
    if node is None or not node.body:
        return None
    body = node.body
    first = body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    if not body:
        return None
    lines = code.split("\n")
    start = body[0].lineno - 1
    # Decorators and comments directly above the first statement belong to it.
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    end = body[-1].end_lineno or body[-1].lineno
    chunk = lines[start:end]
    return _dedent(chunk) + "\n"


def _dedent(lines: list[str]) -> str:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(line[cut:] if line.strip() else "" for line in lines).rstrip()
