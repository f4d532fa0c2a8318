"""Turn raw model output into the text shown as ghost text.

A small model, especially a prefix-only instruct model, produces output that is "almost
right": it leaks chat tokens, opens markdown fences, explains itself in prose, repeats the
closing bracket the editor already inserted, runs past the end of the block, repeats the
next line, or gets the indentation off by one level. Each of those is one small rule
below, applied in a fixed order by `clean_completion`, and each records what it removed
so "Why this completion?" can show it.

Rules work on the completion text plus a `CompletionContext` (what is around the cursor).
String and comment awareness comes from a tiny lexer (`scan`) seeded with tree-sitter's
view of the cursor position, so brackets inside strings or comments are not counted.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from wren.context import syntax
from wren.engine.trigger import BRACE_LANGUAGES, is_python_block_header
from wren.types import Mode, Snapshot

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {")": "(", "]": "[", "}": "{"}

# Tokens that never belong in code: chat/turn markers and FIM/file markers of the model
# families Wren knows. A model's own special tokens are passed in as well.
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|im_end|>",
    "<|im_start|>",
    "<|endoftext|>",
    "<|end|>",
    "<|user|>",
    "<|assistant|>",
    "<|system|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|EOT|>",
    "<end_of_turn>",
    "<start_of_turn>",
    "<file_sep>",
    "<filename>",
    "<repo_name>",
    "<gh_stars>",
    "<issue_start>",
    "<jupyter_start>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
    "<|file_separator|>",
    "<|fim▁begin|>",
    "<|fim▁hole|>",
    "<|fim▁end|>",
    "<｜end▁of▁sentence｜>",
    "<｜fim▁begin｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁end｜>",
    " <EOT>",
    "<EOT>",
    " <PRE>",
    " <SUF>",
    " <MID>",
)
# Short tag-like tokens (`<s>`, `</s>`, `<pad>`) are real markup in these languages.
_MARKUP_LANGUAGES = frozenset(
    {"html", "xml", "javascriptreact", "typescriptreact", "vue", "svelte", "markdown", "php"}
)
_TAG_LIKE = re.compile(r"^</?[a-z]{1,5}>$")

# Languages where a line of English is never code (outside strings and comments).
PROSE_CHECK_LANGUAGES = frozenset(
    {"python", "ruby", "lua", "shellscript", "perl", "r", "julia"}
) | BRACE_LANGUAGES - {"json", "jsonc", "css", "scss", "less"}

_PROSE_OPENING = re.compile(
    r"^(?:here\s+is|here's|here\s+are|this\s+(?:code|function|class|method|script|program|"
    r"implementation|will|is|example|solution|snippet)|the\s+(?:code|function|above|following|"
    r"output|result)|in\s+this|note:|note\s+that|explanation|sure[,!. ]|certainly|of\s+course|"
    r"i\s+hope|i've|i\s+have|i'm|let\s+me|let's|you\s+can|we\s+can|we\s+need|output:|"
    r"example\s+usage|hope\s+this|to\s+use\s+this|this\s+should)\b",
    re.IGNORECASE,
)
_CODE_MARKS = re.compile(r"[=;{}\[\]<>]|\w\(|->|::|\w\.\w|^\s*[@#]|\s(?:&&|\|\|)\s")
_MARKDOWN_PROSE = re.compile(
    r"^(?:\*\*[^*]+\*\*|\d+\. [A-Z][a-z]+ \w+|[-*] [A-Z][a-z]+ [a-z]+ \w+)"
)
_HEADING = re.compile(r"^[A-Z][a-z]+(?: [A-Za-z]+){0,2}:$")
_PROSE_WORD = re.compile(r"^(?:[A-Za-z][a-z]*(?:'[a-z]+)?|[a-z]+|`[^`]*`|\"[^\"]*\")[,.:;!?]?$")
_BRACE_KEYWORDS = frozenset(
    [
        "abstract",
        "async",
        "await",
        "break",
        "case",
        "catch",
        "class",
        "const",
        "continue",
        "default",
        "defer",
        "delete",
        "do",
        "else",
        "enum",
        "export",
        "extends",
        "final",
        "finally",
        "fn",
        "for",
        "func",
        "go",
        "goto",
        "if",
        "impl",
        "import",
        "in",
        "instanceof",
        "interface",
        "let",
        "loop",
        "match",
        "mod",
        "module",
        "mut",
        "namespace",
        "new",
        "package",
        "private",
        "protected",
        "pub",
        "public",
        "return",
        "select",
        "static",
        "struct",
        "super",
        "switch",
        "this",
        "throw",
        "throws",
        "trait",
        "try",
        "type",
        "typedef",
        "typeof",
        "union",
        "unsafe",
        "use",
        "using",
        "var",
        "void",
        "volatile",
        "while",
        "yield",
    ]
)


@dataclass
class Cleaned:
    text: str
    removed: list[str] = field(default_factory=list)  # one note per rule that changed something


# ---------------------------------------------------------------------------------------
# A tiny lexer: strings, comments and brackets, enough for balance and prose decisions.


@dataclass(frozen=True)
class LexState:
    string: str | None = None  # the closing delimiter while inside a string
    block_comment: bool = False
    line_comment: bool = False

    @property
    def in_code(self) -> bool:
        return self.string is None and not self.block_comment and not self.line_comment


@dataclass(frozen=True)
class Bracket:
    char: str
    pos: int
    at_eol: bool  # the last code character of its line: opens a multi-line construct


@dataclass
class ScanResult:
    state: LexState
    open: list[Bracket]  # unmatched openers, outermost first
    unmatched_closers: list[str]  # closers with no opener inside the scanned text
    line_states: list[LexState]  # state at the start of each line
    line_depths: list[int]  # open-bracket count at the start of each line
    masked: str  # the text with string and comment characters replaced by spaces
    string_start: int | None  # where the string still open at the end begins (None: before)


@dataclass(frozen=True)
class LexSyntax:
    line_comment: str
    block_comments: bool
    quotes: tuple[str, ...]  # longest first
    multiline_quotes: frozenset[str]


def lex_syntax(language_id: str) -> LexSyntax:
    if language_id == "python":
        return LexSyntax("#", False, ('"""', "'''", '"', "'"), frozenset({'"""', "'''"}))
    if language_id in ("javascript", "javascriptreact", "typescript", "typescriptreact"):
        return LexSyntax("//", True, ('"', "'", "`"), frozenset({"`"}))
    if language_id == "go":
        return LexSyntax("//", True, ('"', "'", "`"), frozenset({"`"}))
    if language_id == "java":
        return LexSyntax("//", True, ('"""', '"', "'"), frozenset({'"""'}))
    if language_id in ("ruby", "shellscript", "perl", "r", "yaml", "toml", "julia"):
        return LexSyntax("#", False, ('"', "'"), frozenset())
    return LexSyntax("//", True, ('"', "'"), frozenset())


_RUST_CHAR = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")


def scan(text: str, language_id: str, state: LexState | None = None) -> ScanResult:
    """Lex `text` from `state`: track strings/comments and match brackets."""
    syn = lex_syntax(language_id)
    rust = language_id == "rust"
    st = state or LexState()
    string, block, line_comment = st.string, st.block_comment, st.line_comment
    stack: list[Bracket] = []
    unmatched: list[str] = []
    line_states = [st]
    line_depths = [0]
    last_code = -1  # index of the last code character on the current line
    mask = list(text)
    string_start: int | None = None
    i, n = 0, len(text)

    def blank(lo: int, hi: int) -> None:
        for k in range(lo, min(hi, n)):
            if mask[k] != "\n":
                mask[k] = " "

    def mark_eol() -> None:
        if stack and stack[-1].pos == last_code and not stack[-1].at_eol:
            top = stack[-1]
            stack[-1] = Bracket(top.char, top.pos, True)

    while i < n:
        ch = text[i]
        if ch == "\n":
            mark_eol()
            line_comment = False
            if string is not None and string not in syn.multiline_quotes:
                string = None  # an unterminated one-line string ends with its line
            line_states.append(LexState(string, block, False))
            line_depths.append(len(stack))
            last_code = -1
            i += 1
            continue
        if line_comment:
            blank(i, i + 1)
            i += 1
            continue
        if block:
            step = 2 if text.startswith("*/", i) else 1
            block = step == 1
            blank(i, i + step)
            i += step
            continue
        if string is not None:
            if ch == "\\":
                blank(i, i + 2)
                i += 2
                continue
            if text.startswith(string, i):
                blank(i, i + len(string))
                i += len(string)
                string = None
                last_code = i - 1
            else:
                blank(i, i + 1)
                i += 1
            continue
        if text.startswith(syn.line_comment, i):
            line_comment = True
            blank(i, i + len(syn.line_comment))
            i += len(syn.line_comment)
            continue
        if syn.block_comments and text.startswith("/*", i):
            block = True
            blank(i, i + 2)
            i += 2
            continue
        if ch in "\"'`":
            if rust and ch == "'":
                m = _RUST_CHAR.match(text, i)
                if m is None:  # a lifetime such as 'a
                    last_code = i
                    i += 1
                    continue
                blank(i, m.end())
                last_code = m.end() - 1
                i = m.end()
                continue
            quote = next((q for q in syn.quotes if text.startswith(q, i)), None)
            if quote is not None:
                string = quote
                string_start = i
                blank(i, i + len(quote))
                i += len(quote)
                continue
        if ch in OPENERS:
            stack.append(Bracket(ch, i, False))
        elif ch in CLOSERS:
            if stack and stack[-1].char == CLOSERS[ch]:
                stack.pop()
            elif not stack:
                unmatched.append(ch)
            else:  # mismatched closer: count it, keep the stack as it was
                unmatched.append(ch)
        if not ch.isspace():
            last_code = i
        i += 1
    mark_eol()
    return ScanResult(
        state=LexState(string, block, line_comment),
        open=stack,
        unmatched_closers=unmatched,
        line_states=line_states,
        line_depths=line_depths,
        masked="".join(mask),
        string_start=string_start if string is not None else None,
    )


def balance_cost(text: str, language_id: str, state: LexState | None = None) -> int:
    """Unmatched brackets plus an unterminated string: lower is better-formed."""
    result = scan(text, language_id, state)
    return len(result.open) + len(result.unmatched_closers) + (1 if result.state.string else 0)


# ---------------------------------------------------------------------------------------
# What is around the cursor.


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _lines_before(text: str, line_start: int, count: int) -> list[str]:
    """Up to `count` non-blank lines before the line starting at `line_start`, nearest first."""
    found: list[str] = []
    end = line_start - 1
    while end >= 0 and len(found) < count:
        start = text.rfind("\n", 0, end) + 1
        line = text[start:end].rstrip("\r")
        if line.strip():
            found.append(line)
        end = start - 1
    return found


def _lines_after(text: str, start: int, count: int) -> list[str]:
    """Up to `count` non-blank lines starting from offset `start` (a line start)."""
    found: list[str] = []
    pos = start
    while pos <= len(text) and len(found) < count:
        end = text.find("\n", pos)
        if end == -1:
            end = len(text)
        line = text[pos:end].rstrip("\r")
        if line.strip():
            found.append(line)
        pos = end + 1
    return found


@dataclass
class CompletionContext:
    """What the rules need to know about the text around the cursor."""

    snapshot: Snapshot
    mode: Mode

    @property
    def language_id(self) -> str:
        return self.snapshot.language_id

    @cached_property
    def line_start(self) -> int:
        return self.snapshot.text.rfind("\n", 0, self.snapshot.offset) + 1

    @cached_property
    def line_prefix(self) -> str:
        return self.snapshot.line_prefix

    @cached_property
    def line_suffix(self) -> str:
        return self.snapshot.line_suffix

    @property
    def prefix_blank(self) -> bool:
        return not self.line_prefix.strip()

    @property
    def cursor_line_blank(self) -> bool:
        return not self.line_prefix.strip() and not self.line_suffix.strip()

    @cached_property
    def cursor_line_indent(self) -> str:
        return _indent_of(self.line_prefix)

    @cached_property
    def previous_lines(self) -> list[str]:
        """Non-blank lines before the cursor line, nearest first (up to 8)."""
        return _lines_before(self.snapshot.text, self.line_start, 8)

    @property
    def previous_line(self) -> str | None:
        return self.previous_lines[0] if self.previous_lines else None

    @cached_property
    def next_lines(self) -> list[str]:
        """Non-blank lines after the cursor line, nearest first (up to 8)."""
        text = self.snapshot.text
        end = text.find("\n", self.snapshot.offset)
        return [] if end == -1 else _lines_after(text, end + 1, 8)

    @property
    def next_line(self) -> str | None:
        return self.next_lines[0] if self.next_lines else None

    @cached_property
    def uses_tabs(self) -> bool:
        text = self.snapshot.text
        lo = max(0, self.snapshot.offset - 20_000)
        window = text[lo : self.snapshot.offset + 20_000]
        tabs = window.count("\n\t")
        spaces = window.count("\n ")
        return tabs > spaces

    @cached_property
    def indent_unit(self) -> str:
        """One level of indentation in this file (tab, or 2/4/8 spaces; 4 by default)."""
        if self.uses_tabs:
            return "\t"
        text = self.snapshot.text
        lo = max(0, self.snapshot.offset - 20_000)
        widths: dict[int, int] = {}
        prev = 0
        for line in text[lo : self.snapshot.offset + 20_000].split("\n"):
            if not line.strip():
                continue
            width = len(line) - len(line.lstrip(" "))
            step = width - prev
            if step in (2, 4, 8):
                widths[step] = widths.get(step, 0) + 1
            prev = width
        if not widths:
            return "    "
        return " " * max(widths, key=lambda w: (widths[w], w == 4))

    @cached_property
    def opens_block(self) -> bool:
        """The cursor is at the start of a new block (after `:` or `{`)."""
        if self.prefix_blank:
            header = self.previous_line
            header_end = len(self.snapshot.text[: self.line_start].rstrip())
        else:
            header = self.line_prefix
            header_end = self.line_start + len(self.line_prefix.rstrip())
        if header is None:
            return False
        if self.language_id == "python":
            return is_python_block_header(header, self.snapshot.text, header_end)
        code = re.sub(r"\s*//.*$", "", header).rstrip()
        return code.endswith("{")

    @cached_property
    def header_indent(self) -> str:
        """Indentation of the line that opens the cursor's block (cursor line if not blank)."""
        if self.prefix_blank and self.previous_line is not None:
            return _indent_of(self.previous_line)
        return self.cursor_line_indent

    @cached_property
    def line_start_state(self) -> LexState:
        """Lexer state at the start of the cursor line (inside a docstring? a comment?)."""
        lit = syntax.literal_at(self.language_id, self.snapshot.text, self.line_start)
        if lit is None:
            return LexState()
        if lit.string_delimiter is not None and lit.string_delimiter in lex_syntax(
            self.language_id
        ).multiline_quotes | {'"""', "'''", "`"}:
            return LexState(string=lit.string_delimiter)
        return LexState(block_comment=lit.block_comment)

    @cached_property
    def cursor_state(self) -> LexState:
        """Lexer state at the cursor."""
        return scan(self.line_prefix, self.language_id, self.line_start_state).state


# ---------------------------------------------------------------------------------------
# The rules. Each returns the new text and a note (None when it changed nothing).

RuleResult = tuple[str, str | None]


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def cut_at_special_tokens(
    text: str, special_tokens: Sequence[str] = (), language_id: str = "python"
) -> RuleResult:
    """Cut at the first chat/FIM/file token the model leaked (`<|im_end|>`, `<file_sep>`)."""
    tokens = set(DEFAULT_SPECIAL_TOKENS)
    tokens.update(t for t in special_tokens if t and t.strip())
    if language_id in _MARKUP_LANGUAGES:
        tokens = {t for t in tokens if not _TAG_LIKE.match(t)}
    cut = len(text)
    found = ""
    for token in tokens:
        at = text.find(token, 0, cut + len(token))
        if at != -1 and at < cut:
            cut, found = at, token
    if not found:
        return text, None
    return text[:cut], f"special token {found.strip()!r} and the {len(text) - cut} chars after it"


def cut_at_stop_strings(text: str, stop_strings: Sequence[str] = ()) -> RuleResult:
    """Cut at the earliest stop string of the model card."""
    cut, found = len(text), ""
    for stop in stop_strings:
        if not stop:
            continue
        at = text.find(stop)
        if at != -1 and at < cut:
            cut, found = at, stop
    if not found:
        return text, None
    return text[:cut], f"stop string {found!r}"


def cut_at_markdown_fence(text: str) -> RuleResult:
    """Cut at a markdown code fence: the model switched to chat-style answering."""
    at = text.find("```")
    if at == -1:
        return text, None
    return text[:at], f"markdown fence and the {len(text) - at} chars after it"


def is_prose_line(line: str, language_id: str = "python") -> bool:
    """True for a line that is clearly English rather than code (e.g. 'Here is the code:')."""
    stripped = line.strip()
    if not stripped:
        return False
    if _PROSE_OPENING.match(stripped) and not re.search(r"[=;{}]|\w\(", stripped):
        return True
    if _MARKDOWN_PROSE.match(stripped) and not _CODE_MARKS.search(stripped):
        return True  # `**Explanation**`, `1. First, ...`, `- The loop ...`
    if _HEADING.match(stripped) and stripped[:-1] not in _BRACE_KEYWORDS:
        return True  # `Usage:`, `Example output:`
    words = stripped.split()
    if len(words) < 4:
        return False
    first = words[0].rstrip(",.:")
    if keyword.iskeyword(first) or keyword.issoftkeyword(first) or first in _BRACE_KEYWORDS:
        return False
    if not first[:1].isupper():
        return False
    if _CODE_MARKS.search(stripped):
        return False
    wordy = sum(1 for w in words if _PROSE_WORD.match(w))
    return wordy / len(words) >= 0.8


def cut_at_prose(text: str, ctx: CompletionContext) -> RuleResult:
    """Cut at the first line that is prose (outside strings and comments)."""
    if ctx.language_id not in PROSE_CHECK_LANGUAGES:
        return text, None
    lines = text.split("\n")
    states = scan(text, ctx.language_id, ctx.cursor_state).line_states
    for index, line in enumerate(lines):
        state = states[index] if index < len(states) else LexState()
        if not state.in_code:
            continue
        full = ctx.line_prefix + line if index == 0 else line
        if index == 0 and not ctx.prefix_blank:
            continue  # a continuation of code already on the line
        if is_prose_line(full, ctx.language_id):
            kept = "\n".join(lines[:index])
            return kept, f"prose: {_show(line.strip())}"
    return text, None


def skip_leading_newlines(text: str, ctx: CompletionContext) -> RuleResult:
    """On a blank cursor line, a completion starting with a newline means 'the code goes on
    the next line': put it on the cursor line instead, at the indentation the model chose
    (never less than what the cursor line already has)."""
    if not ctx.cursor_line_blank:
        return text, None
    stripped = text.lstrip(" \t")
    if not stripped.startswith("\n"):
        return text, None
    rest = stripped.lstrip("\n")
    lines = rest.split("\n")
    # drop whitespace-only lines between the newline and the content
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return "", "leading blank lines (no content)"
    first = lines[0]
    have = ctx.line_prefix
    want = _indent_of(first)
    if want.startswith(have):
        lines[0] = first[len(have) :]
    else:
        lines[0] = first.lstrip(" \t")
    return "\n".join(lines), "leading newline (the cursor line is blank)"


def first_line_only(text: str, ctx: CompletionContext) -> RuleResult:
    """Single-line mode: keep one line of content (a leading newline may stay when the
    cursor is at the end of a non-blank line: the suggestion is then the next line)."""
    leading = ""
    body = text
    if not ctx.cursor_line_blank and not ctx.line_suffix.strip():
        stripped = text.lstrip(" \t")
        if stripped.startswith("\n"):
            rest = stripped.lstrip("\n")
            lines = rest.split("\n")
            while lines and not lines[0].strip():
                lines.pop(0)
            if lines:
                leading, body = "\n", "\n".join(lines)
    elif text.lstrip(" \t").startswith("\n"):
        return "", "everything (single-line mode, and the model started a new line)"
    newline = body.find("\n")
    if newline == -1:
        return leading + body, None
    kept, dropped = leading + body[:newline], body[newline + 1 :]
    if not dropped.strip():
        return kept, None
    count = len([ln for ln in dropped.split("\n") if ln.strip()])
    return kept, f"lines after the first (single-line mode): {count}"


def fix_indentation(text: str, ctx: CompletionContext) -> RuleResult:
    """Make the completion's indentation fit the file: tabs vs spaces, and a first line that
    the model indented again although the cursor line already has its indentation."""
    notes: list[str] = []
    lines = text.split("\n")
    unit = ctx.indent_unit

    # Tabs vs spaces (lines after the first start at column 0, so their indent is absolute).
    for index in range(1, len(lines)):
        line = lines[index]
        indent = _indent_of(line)
        if not indent:
            continue
        if unit == "\t" and " " in indent:
            width = len(indent.expandtabs(4))
            lines[index] = "\t" * (width // 4) + " " * (width % 4) + line[len(indent) :]
            notes.append("spaces -> tabs")
        elif unit != "\t" and "\t" in indent:
            lines[index] = indent.replace("\t", unit) + line[len(indent) :]
            notes.append("tabs -> spaces")

    first = lines[0]
    extra = _indent_of(first)
    if ctx.prefix_blank and first.strip():
        have = ctx.line_prefix
        total = len((have + extra).expandtabs(len(unit.expandtabs(4))))
        if ctx.opens_block:
            expected = len((ctx.header_indent + unit).expandtabs(len(unit.expandtabs(4))))
        elif ctx.previous_line is not None:
            expected = len(_indent_of(ctx.previous_line).expandtabs(len(unit.expandtabs(4))))
        else:
            expected = 0
        have_width = len(have.expandtabs(len(unit.expandtabs(4))))
        if extra and total > expected and have_width <= expected:
            # the model indented on top of the editor's indentation
            delta = min(len(extra), total - expected)
            lines[0] = first[delta:]
            later = [ln for ln in lines[1:] if ln.strip()]
            if later and min(len(_indent_of(ln)) for ln in later) >= len(have) + len(extra):
                lines[1:] = [ln[delta:] if ln.strip() else ln for ln in lines[1:]]
            notes.append(f"{delta} extra indentation chars on the first line")
        elif not extra and not have and expected and ctx.language_id == "python":
            # cursor at column 0 of a body: indent the completion into the block. Only at
            # column 0: a cursor at a shallower indentation was dedented on purpose (`return`
            # after a loop, `else:`); indenting it cost 8 points of pass@1 (BENCHMARKS.md).
            pad = " " * (expected - have_width) if unit != "\t" else "\t"
            lines[0] = pad + first
            later = [ln for ln in lines[1:] if ln.strip()]
            if later and min(len(_indent_of(ln)) for ln in later) < expected:
                lines[1:] = [pad + ln if ln.strip() else ln for ln in lines[1:]]
            notes.append(f"indented the first line into the block ({expected - have_width} chars)")
    if not notes:
        return text, None
    return "\n".join(lines), "indentation: " + ", ".join(dict.fromkeys(notes))


_PY_TOP_LEVEL_DEF = re.compile(r"^(?:async\s+def|def|class)\s|^@")
_LABEL = re.compile(r"^(?:case\b|default\b|public:|private:|protected:|[A-Za-z_]\w*:\s*$)")


def cut_at_block_end(text: str, ctx: CompletionContext) -> RuleResult:
    """Multi-line mode: stop where the completion leaves the block it started in
    (a dedent below the block's indentation, or a `}` closing an enclosing block)."""
    lines = text.split("\n")
    if len(lines) < 2:
        return text, None
    language = ctx.language_id
    width = len(ctx.indent_unit.expandtabs(4))

    def indent_width(line: str) -> int:
        return len(_indent_of(line).expandtabs(width))

    header_width = len(ctx.header_indent.expandtabs(width))
    if ctx.opens_block:
        floor = header_width + 1  # body lines are deeper than the header
    else:
        floor = len(ctx.cursor_line_indent.expandtabs(width)) if ctx.prefix_blank else header_width
    scanned = scan(ctx.line_prefix + text, language, ctx.line_start_state)
    states, depths = scanned.line_states, scanned.line_depths
    brace = language != "python"

    if brace:
        cut = _cut_at_closing_brace(text, ctx)
        if cut is not None:
            return cut
    top_level_defs = 0
    for index in range(1, len(lines)):
        line = lines[index]
        if not line.strip():
            continue
        if index < len(states) and (not states[index].in_code or depths[index] > 0):
            continue  # inside a multi-line string, comment or bracket: any indentation goes
        stripped = line.lstrip()
        if floor == 0 and language == "python":
            if _PY_TOP_LEVEL_DEF.match(stripped) and indent_width(line) == 0:
                top_level_defs += 1
                first_is_def = _PY_TOP_LEVEL_DEF.match(lines[0].lstrip()) is not None
                if top_level_defs + first_is_def > 1 and not stripped.startswith("@"):
                    return _cut_lines(lines, index, "a second top-level definition")
            continue
        if indent_width(line) >= floor:
            continue
        if brace and (stripped[0] in ")]}#" or _LABEL.match(stripped)):
            continue
        if (
            language == "python"
            and stripped.startswith(("else", "elif", "except", "finally"))
            and indent_width(line) >= header_width
            and not ctx.opens_block
        ):
            continue
        return _cut_lines(lines, index, "dedent past the end of the block")
    return text, None


def _cut_lines(lines: list[str], index: int, why: str) -> RuleResult:
    kept = "\n".join(lines[:index]).rstrip()
    dropped = len([ln for ln in lines[index:] if ln.strip()])
    return kept, f"block end: {dropped} line(s) after it ({why})"


def _suffix_closes_block(ctx: CompletionContext) -> bool:
    """The document after the cursor already closes the cursor's block (an unmatched `}`)."""
    suffix = ctx.snapshot.suffix[:20_000]
    result = scan(suffix, ctx.language_id, ctx.cursor_state)
    return "}" in result.unmatched_closers


def _cut_at_closing_brace(text: str, ctx: CompletionContext) -> RuleResult | None:
    """Brace languages: the first `}` that closes a block opened before the cursor."""
    scanned = scan(text, ctx.language_id, ctx.cursor_state)
    if "}" not in scanned.unmatched_closers:
        return None
    position = _first_unmatched_closer(scanned.masked, "}")
    if position is None:
        return None
    line_start = text.rfind("\n", 0, position) + 1
    before_on_line = text[line_start:position]
    if _suffix_closes_block(ctx):
        if before_on_line.strip():
            kept = text[:position].rstrip()
        else:
            kept = text[:line_start].rstrip()
            if ctx.line_suffix.strip().startswith("}") and "\n" in text[:line_start]:
                # `{|}`: leave the `}` on its own line, at the indentation the model chose
                kept = kept + "\n" + before_on_line
        rest = text[len(kept) :]
        dropped = len([ln for ln in rest.split("\n") if ln.strip()])
        return kept, f"block end: {dropped} line(s) from the `}}` that closes the block"
    line_end = text.find("\n", position)
    if line_end == -1:
        return None
    rest = text[line_end:]
    if not rest.strip():
        return None
    dropped = len([ln for ln in rest.split("\n") if ln.strip()])
    return text[:line_end], f"block end: {dropped} line(s) after the block's closing `}}`"


def _first_unmatched_closer(masked: str, closer: str) -> int | None:
    """Offset of the first `closer` in `masked` (code only) that has no opener before it."""
    depth = 0
    for i, ch in enumerate(masked):
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            if depth == 0:
                if ch == closer:
                    return i
                continue
            depth -= 1
    return None


def drop_repeated_lines(text: str, line_prefix: str = "") -> RuleResult:
    """Collapse a line repeated on consecutive lines to one, and stop at a repeating cycle
    of 2-4 lines (the decoding loops). `line_prefix` (the cursor line's indentation) is put
    in front of the first line so that it compares like the others."""
    lines = text.split("\n")
    lines[0] = line_prefix + lines[0]
    out: list[str] = []
    collapsed = 0
    for line in lines:
        if out and line.strip() and line == out[-1] and not _only_closers(line):
            collapsed += 1
            continue
        out.append(line)
    note = f"repeated lines: {collapsed}" if collapsed else None
    for size in (2, 3, 4):
        for start in range(0, len(out) - 2 * size + 1):
            block = out[start : start + size]
            if not any(ln.strip() for ln in block):
                continue
            if block == out[start + size : start + 2 * size]:
                dropped = len(out) - (start + size)
                out = out[: start + size]
                note = (note + "; " if note else "") + f"a {size}-line loop ({dropped} lines)"
                break
    if note is None:
        return text, None
    out[0] = out[0][len(line_prefix) :]
    return "\n".join(out), note


def _only_closers(line: str) -> bool:
    return bool(line.strip()) and all(ch in ")]};, \t" for ch in line)


def _same_line(a: str, b: str) -> bool:
    """Lines are 'the same' when equal ignoring indentation; tiny lines (a lone `}`) must
    also match in indentation, or an inner block's `}` would match the outer one."""
    sa, sb = a.strip(), b.strip()
    if not sa or sa != sb:
        return False
    if len(sa) < 4 or _only_closers(sa):
        return _indent_of(a) == _indent_of(b)
    return True


def cut_at_suffix_repeat(text: str, ctx: CompletionContext) -> RuleResult:
    """Cut where a completion line repeats the next non-blank line after the cursor: the
    model is re-typing code that is already there."""
    following = ctx.next_line
    if following is None:
        return text, None
    lines = text.split("\n")
    for index, line in enumerate(lines):
        full = ctx.line_prefix + line if index == 0 else line
        if index == 0 and not ctx.prefix_blank:
            continue
        if _same_line(full, following):
            kept = "\n".join(lines[:index]).rstrip()
            return kept, f"repeats the next line: {_show(following.strip())}"
    return text, None


def strip_trailing_whitespace(text: str, ctx: CompletionContext) -> RuleResult:
    """Remove trailing whitespace on every line and trailing blank lines."""
    lines = [ln.rstrip() for ln in text.split("\n")]
    cleaned = "\n".join(lines).rstrip()
    keep_tail = ""
    if ctx.line_suffix.strip()[:1] in CLOSERS and "\n" in text:
        # `{|}` with the `}` left on the cursor line: keep the newline (and its indentation)
        # that puts the closer on its own line.
        tail = text[text.rfind("\n") :]
        if not tail.strip():
            keep_tail = tail
    cleaned += keep_tail
    if cleaned == text:
        return text, None
    return cleaned, "trailing whitespace"


def remove_suffix_overlap(text: str, ctx: CompletionContext) -> RuleResult:
    """Drop the end of the completion when it re-types what follows the cursor on its line
    (typically an auto-inserted `)`, `]` or quote), if the line is then better balanced."""
    suffix = ctx.line_suffix
    if not suffix.strip() or not text.strip():
        return text, None
    newline = text.rfind("\n")
    if newline == -1:
        line_before, state = ctx.line_prefix + text, ctx.line_start_state
    else:
        head = ctx.line_prefix + text[: newline + 1]
        state = scan(head, ctx.language_id, ctx.line_start_state).state
        line_before = text[newline + 1 :]
    last = line_before.rstrip()
    if not last:
        return text, None
    language = ctx.language_id
    current = balance_cost(last + suffix, language, state)
    for size in range(min(len(text.rstrip()), len(suffix)), 0, -1):
        overlap = suffix[:size]
        if not overlap.strip() or not text.rstrip().endswith(overlap):
            continue
        candidate = balance_cost(last[: len(last) - size] + suffix, language, state)
        if candidate <= current:
            return text.rstrip()[: len(text.rstrip()) - size], f"suffix overlap: {overlap!r}"
    return text, None


def close_open_brackets(text: str, ctx: CompletionContext) -> RuleResult:
    """Add closers for brackets (and a one-line string) the completion opened but did not
    close, unless what follows the cursor on the line already closes them."""
    if not text.strip():
        return text, None
    language = ctx.language_id
    start_state = ctx.line_start_state
    combined = ctx.line_prefix + text
    scanned = scan(combined, language, start_state)
    suffix = ctx.line_suffix
    after = scan(suffix, language, scanned.state)
    from_completion = len(ctx.line_prefix)
    closers = ""
    string = scanned.state.string
    if string is not None and string in ('"', "'") and not scanned.state.block_comment:
        # a one-line string opened by the completion and not closed by the suffix
        string_start = scanned.string_start
        if string_start is not None and string_start >= from_completion:
            if not suffix.lstrip().startswith(string):
                closers += string
                after = scan(string + suffix, language, scanned.state)
        else:
            return text, None  # the user's own string: leave it alone
    stack = scanned.open
    covered = len(after.unmatched_closers)
    pending = stack[covered:] if covered < len(stack) else []
    if ctx.mode is Mode.MULTI_LINE:  # earlier lines are trim_unfinished_tail's business
        from_completion = max(from_completion, combined.rfind("\n") + 1)
    for bracket in reversed(pending):
        if bracket.pos < from_completion or bracket.at_eol:
            break
        closers += OPENERS[bracket.char]
    if not closers:
        return text, None
    if _file_closes_it(text, closers, ctx):
        return text, None  # a call that goes on on the next lines: `f(a, b,` above `c);`
    return text + closers, f"added closers the completion opened: {closers!r}"


def _file_closes_it(text: str, closers: str, ctx: CompletionContext) -> bool:
    """The lines after the cursor close what the completion opened: the document parses with
    fewer errors with `text` inserted as it is than with the closers added."""
    language = ctx.language_id
    if syntax.language_for(language) is None:
        return False
    snapshot = ctx.snapshot
    as_is = syntax.parse_with_insertion(language, snapshot.text, snapshot.offset, text)
    closed = syntax.parse_with_insertion(language, snapshot.text, snapshot.offset, text + closers)
    if as_is is None or closed is None:
        return False
    return syntax.count_errors(as_is[1]) < syntax.count_errors(closed[1])


def trim_unfinished_tail(text: str, ctx: CompletionContext) -> RuleResult:
    """Multi-line: the completion stops inside a bracket or block it opened on an earlier
    line (typically at the token limit). Brace blocks get their `}` lines; anything else
    (an unfinished call, list, string) is cut back to the last complete line."""
    lines = text.split("\n")
    if len(lines) < 2:
        return text, None
    language = ctx.language_id
    combined = ctx.line_prefix + text
    scanned = scan(combined, language, ctx.line_start_state)
    last_line_start = len(combined) - len(lines[-1])
    unfinished = [b for b in scanned.open if len(ctx.line_prefix) <= b.pos < last_line_start]
    if not unfinished:
        return text, None
    only_blocks = all(b.char == "{" and b.at_eol for b in unfinished)
    if (
        language != "python"
        and only_blocks
        and len(unfinished) == len([b for b in scanned.open if b.pos >= len(ctx.line_prefix)])
        and scanned.state.in_code
    ):
        closing = ""
        for bracket in reversed(unfinished):
            line_start = combined.rfind("\n", 0, bracket.pos) + 1
            closing += "\n" + _indent_of(combined[line_start : bracket.pos]) + "}"
        return (
            text.rstrip() + closing,
            f"closed the block(s) the completion opened: {closing.count('}')}",
        )
    first_open_line = combined.count("\n", 0, unfinished[0].pos)
    base_depth = len(scan(ctx.line_prefix, language, ctx.line_start_state).open)
    for index in range(first_open_line, 0, -1):
        if scanned.line_depths[index] == base_depth and scanned.line_states[index].in_code:
            kept = "\n".join(lines[:index]).rstrip()
            if kept.strip():
                dropped = len([ln for ln in lines[index:] if ln.strip()])
                return kept, f"unfinished block: {dropped} line(s) that never close"
    return text, None


def _meaningful(line: str) -> bool:
    return any(ch.isalnum() for ch in line)


def reject_nearby_repeat(text: str, ctx: CompletionContext) -> RuleResult:
    """Reject a completion whose only content repeats the previous or the next line."""
    content = [ln for ln in text.split("\n") if ln.strip()]
    if not content:
        return text, None
    if len(content) == 1:
        single = content[0]
        if text.lstrip(" \t").startswith("\n"):
            result_line = single
            previous = ctx.line_prefix + ctx.line_suffix
        else:
            result_line = ctx.line_prefix + single + ctx.line_suffix
            previous = ctx.previous_line or ""
        if not _meaningful(result_line):
            return text, None
        if result_line.strip() == previous.strip():
            return "", f"rejected: repeats the previous line {_show(previous.strip())}"
        following = ctx.next_line or ""
        if result_line.strip() == following.strip():
            return "", f"rejected: repeats the next line {_show(following.strip())}"
        return text, None
    before = [ln.strip() for ln in reversed(ctx.previous_lines[: len(content)])]
    stripped = [ln.strip() for ln in content]
    if ctx.prefix_blank and before == stripped and any(_meaningful(ln) for ln in stripped):
        return "", "rejected: repeats the lines just above the cursor"
    return text, None


def _body_placeholder(text: str, ctx: CompletionContext) -> str:
    """What to append so that an intentionally unfinished completion (a block header, an
    open multi-line call) parses: a `pass` body, closing brackets, a closing quote. Only
    what the rest of the cursor line does not already close."""
    language = ctx.language_id
    combined = ctx.line_prefix + text
    scanned = scan(combined + ctx.line_suffix, language, ctx.line_start_state)
    tail = ""
    opened_here = scanned.string_start is not None and scanned.string_start >= len(ctx.line_prefix)
    if scanned.state.string is not None and opened_here:
        tail += scanned.state.string  # a string the completion opened (not the user's docstring)
    if scanned.state.block_comment and not ctx.cursor_state.block_comment:
        tail += "*/"
    last_line = combined.split("\n")[-1]
    if language == "python" and not ctx.line_suffix.strip():
        code = last_line.split("#", 1)[0].rstrip()
        if code.endswith(":") and not scanned.open:
            tail += "\n" + _indent_of(last_line) + ctx.indent_unit + "pass"
    # Single-line: anything the completion opened may continue on the next lines. Multi-line:
    # only the last line may open something (a header); earlier lines must be balanced.
    last_line_start = len(combined) - len(last_line)
    first_allowed = len(ctx.line_prefix) if ctx.mode is not Mode.MULTI_LINE else last_line_start
    for bracket in reversed(scanned.open):
        if len(ctx.line_prefix) <= bracket.pos < len(combined):
            if bracket.pos < first_allowed:
                return ""  # an unfinished block: let the parser see it
            tail += OPENERS[bracket.char]
    return tail


def reject_new_parse_errors(text: str, ctx: CompletionContext) -> RuleResult:
    """Reject a completion that turns a region without parse errors into one with them."""
    language = ctx.language_id
    if syntax.language_for(language) is None or not text.strip():
        return text, None
    snapshot = ctx.snapshot
    tree = syntax.parse(language, snapshot.text)
    if tree is None:
        return text, None
    row = snapshot.text.count("\n", 0, snapshot.offset)
    window = 20
    if syntax.errors_near_in_tree(tree, row, window):
        return text, None  # already broken here: no evidence either way
    # With the placeholder (the completion's unfinished block or call closed), or as it is:
    # the file may already hold what the completion opens (`} else {` typed above the body
    # and the `}` that follow it; a header above its existing body).
    placeholder = _body_placeholder(text, ctx)
    verdict: RuleResult = (text, None)
    for inserted in (text + placeholder, text) if placeholder else (text,):
        result = syntax.parse_with_insertion(language, snapshot.text, snapshot.offset, inserted)
        if result is None:
            return text, None
        _, new_tree = result
        if syntax.errors_near_in_tree(new_tree, row, window + inserted.count("\n")):
            verdict = "", "rejected: it would introduce a syntax error near the cursor"
        elif syntax.count_errors(new_tree) > syntax.count_errors(tree):
            # An unbalanced brace is reported where the parser gives up (often the file's end).
            verdict = "", "rejected: it would introduce a syntax error (unbalanced block)"
        else:
            return text, None
    return verdict


# ---------------------------------------------------------------------------------------


def clean_completion(
    raw: str,
    snapshot: Snapshot,
    mode: Mode,
    special_tokens: Sequence[str] = (),
    stop_strings: Sequence[str] = (),
) -> Cleaned:
    """Apply every rule in order; `removed` says what each one took out (or rejected)."""
    if mode is Mode.NONE:
        return Cleaned("", ["no completion at this position"])
    notes: list[str] = []
    crlf = "\r\n" in snapshot.text[max(0, snapshot.offset - 2000) : snapshot.offset + 2000]
    text = raw.replace("\r\n", "\n")
    ctx = CompletionContext(snapshot, mode)

    def apply(result: RuleResult) -> str:
        new_text, note = result
        if note:
            notes.append(note)
        return new_text

    text = apply(cut_at_special_tokens(text, special_tokens, snapshot.language_id))
    text = apply(cut_at_stop_strings(text, stop_strings))
    text = apply(cut_at_markdown_fence(text))
    text = apply(cut_at_prose(text, ctx))
    text = apply(skip_leading_newlines(text, ctx))
    if mode is Mode.SINGLE_LINE:
        text = apply(first_line_only(text, ctx))
    text = apply(fix_indentation(text, ctx))
    if mode is Mode.MULTI_LINE:
        text = apply(cut_at_block_end(text, ctx))
    text = apply(drop_repeated_lines(text, ctx.line_prefix if ctx.prefix_blank else ""))
    text = apply(cut_at_suffix_repeat(text, ctx))
    text = apply(strip_trailing_whitespace(text, ctx))
    text = apply(remove_suffix_overlap(text, ctx))
    if mode is Mode.MULTI_LINE:
        text = apply(trim_unfinished_tail(text, ctx))
    text = apply(close_open_brackets(text, ctx))
    text = apply(reject_nearby_repeat(text, ctx))
    text = apply(reject_new_parse_errors(text, ctx))
    if not text.strip():
        text = ""
    if crlf and text:
        text = text.replace("\n", "\r\n")
    return Cleaned(text, notes)
