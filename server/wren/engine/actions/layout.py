"""Make model code fit the file: its indentation, its indent unit, its line endings."""

from __future__ import annotations

import re

_LEADING_WS = re.compile(r"^[ \t]*")


def detect_eol(text: str) -> str:
    """The file's line ending: the most common of "\\r\\n", "\\n" and "\\r" ("\\n" when none)."""
    crlf = text.count("\r\n")
    lf = text.count("\n") - crlf
    cr = text.count("\r") - crlf
    if crlf == 0 and lf == 0 and cr == 0:
        return "\n"
    best = max((crlf, "\r\n"), (lf, "\n"), (cr, "\r"))
    return best[1]


def normalize_eol(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def to_eol(text: str, eol: str) -> str:
    """`text` with every line break written as `eol`."""
    text = normalize_eol(text)
    return text if eol == "\n" else text.replace("\n", eol)


def detect_indent_unit(text: str) -> str:
    """The file's indent step: "\\t" when indented lines mostly start with tabs, else spaces.

    For spaces, the smallest non-zero step between consecutive indented lines (default 4).
    """
    tabs = spaces = 0
    steps: dict[int, int] = {}
    previous = 0
    for line in normalize_eol(text).split("\n"):
        if not line.strip():
            continue
        ws = _LEADING_WS.match(line)
        lead = ws.group(0) if ws else ""
        if lead.startswith("\t"):
            tabs += 1
        elif lead:
            spaces += 1
        width = len(lead.expandtabs(4))
        if width > previous:
            step = width - previous
            steps[step] = steps.get(step, 0) + 1
        previous = width
    if tabs > spaces:
        return "\t"
    common = [s for s in (2, 4, 8, 3) if steps.get(s)]
    if not common:
        return "    "
    best = max(common, key=lambda s: steps[s])
    return " " * best


def line_indent(line: str) -> str:
    m = _LEADING_WS.match(line)
    return m.group(0) if m else ""


def dedent(code: str) -> str:
    """Remove the indentation common to all non-blank lines (tabs count as 4 columns)."""
    lines = normalize_eol(code).split("\n")
    widths = [len(line_indent(line).expandtabs(4)) for line in lines if line.strip()]
    cut = min(widths) if widths else 0
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
            continue
        lead = line_indent(line).expandtabs(4)
        out.append(lead[cut:] + line.lstrip(" \t"))
    return "\n".join(out)


def reindent(code: str, base_indent: str, unit: str = "    ") -> str:
    """`code` dedented, then indented by `base_indent`, its inner steps written with `unit`.

    Model code is indented with 4 spaces; a file indented with tabs (or 2 spaces) gets its own
    step back. Blank lines stay empty (no trailing whitespace).
    """
    body = dedent(code)
    src_unit = detect_indent_unit(body)
    src_width = 1 if src_unit == "\t" else len(src_unit)
    out = []
    for line in body.split("\n"):
        if not line.strip():
            out.append("")
            continue
        lead = line_indent(line).expandtabs(4)
        depth, rest = divmod(len(lead), max(1, src_width if src_unit != "\t" else 4))
        out.append(base_indent + unit * depth + " " * rest + line.lstrip(" \t"))
    return "\n".join(out)


def region_indent(text: str, start: int) -> str:
    """Indentation of the first non-blank line at or after offset `start`."""
    for line in normalize_eol(text[start:]).split("\n"):
        if line.strip():
            return line_indent(line)
    return ""


def has_long_lines(text: str, limit: int = 5000) -> bool:
    """True when a line is longer than `limit` characters (minified or generated content)."""
    return any(len(line) > limit for line in normalize_eol(text).split("\n"))


def looks_binary(text: str) -> bool:
    """NUL bytes or many control characters: not source code."""
    if "\x00" in text:
        return True
    sample = text[:4096]
    if not sample:
        return False
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return controls / len(sample) > 0.1
