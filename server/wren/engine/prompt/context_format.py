"""Render context snippets (other files, definitions) as text placed before the prompt."""

from __future__ import annotations

from collections.abc import Sequence

from wren.types import ContextSnippet

CONTEXT_STYLES = ("file_sep", "comment", "none")

_HASH = "#"
_SLASHES = "//"
_DASHES = "--"

_COMMENT_PREFIXES: dict[str, str] = {
    # '#' comments
    "python": _HASH,
    "shellscript": _HASH,
    "ruby": _HASH,
    "perl": _HASH,
    "r": _HASH,
    "yaml": _HASH,
    "toml": _HASH,
    "makefile": _HASH,
    "dockerfile": _HASH,
    "powershell": _HASH,
    "elixir": _HASH,
    "julia": _HASH,
    "nim": _HASH,
    "coffeescript": _HASH,
    "cmake": _HASH,
    # '//' comments
    "javascript": _SLASHES,
    "javascriptreact": _SLASHES,
    "typescript": _SLASHES,
    "typescriptreact": _SLASHES,
    "go": _SLASHES,
    "rust": _SLASHES,
    "java": _SLASHES,
    "c": _SLASHES,
    "cpp": _SLASHES,
    "cuda-cpp": _SLASHES,
    "csharp": _SLASHES,
    "kotlin": _SLASHES,
    "scala": _SLASHES,
    "swift": _SLASHES,
    "php": _SLASHES,
    "dart": _SLASHES,
    "groovy": _SLASHES,
    "objective-c": _SLASHES,
    "objective-cpp": _SLASHES,
    "zig": _SLASHES,
    "jsonc": _SLASHES,
    "scss": _SLASHES,
    "less": _SLASHES,
    "proto": _SLASHES,
    # '--' comments
    "sql": _DASHES,
    "lua": _DASHES,
    "haskell": _DASHES,
    "elm": _DASHES,
    "ada": _DASHES,
    # others
    "latex": "%",
    "tex": "%",
    "erlang": "%",
    "matlab": "%",
    "lisp": ";",
    "clojure": ";",
    "scheme": ";",
    "ini": ";",
    "vb": "'",
    "bat": "REM",
    "fortran": "!",
}


def comment_prefix_for(language_id: str) -> str:
    """The line-comment marker for an LSP language id ('#' when unknown)."""
    return _COMMENT_PREFIXES.get(language_id, _HASH)


def _format_file_sep(snippet: ContextSnippet) -> str:
    return f"<file_sep>{snippet.path}\n{snippet.text.rstrip(chr(10))}\n"


def _format_comment(snippet: ContextSnippet, comment_prefix: str) -> str:
    lines = [f"{comment_prefix} Path: {snippet.path}"]
    for line in snippet.text.rstrip("\n").split("\n"):
        lines.append(f"{comment_prefix} {line}" if line.strip() else comment_prefix)
    return "\n".join(lines) + "\n"


def format_context(
    snippets: Sequence[ContextSnippet], style: str, comment_prefix: str = "#"
) -> str:
    """Render `snippets` for the prompt.

    "file_sep": `<file_sep>{path}\\n{text}\\n` per snippet (StarCoder2/SmolLM style);
    "comment": a `Path:` comment line, then every line of the snippet commented out;
    "none": nothing. An unknown style is treated as "comment", which every model can read.
    Returns "" when there are no snippets.
    """
    snippets = [s for s in snippets if s.text.strip()]
    if not snippets or style == "none":
        return ""
    if style == "file_sep":
        return "".join(_format_file_sep(s) for s in snippets)
    return "".join(_format_comment(s, comment_prefix) for s in snippets)
