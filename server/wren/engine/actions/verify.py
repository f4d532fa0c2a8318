"""Static checks a proposed change must pass before Wren offers it.

- it parses: for Python, no tree-sitter ERROR/MISSING node in the changed lines and the
  document compiles (a syntax error elsewhere that was already there is not the change's
  fault); for the other languages with a grammar, the document has no more ERROR/MISSING
  nodes than before (`parse_regression`), and the language's own checker, where allowed and
  installed, runs in `lang_checks`;
- it introduces no new undefined names (Python): names the new document reads but defines
  nowhere (module, enclosing scopes, builtins, imports), which did not already appear in the
  old document's code;
- it changes something, and it is not an empty stub;
- it does not define a name its scope already has (Python: a second `def mean` in the module
  or the class), see `change_checks.redefinition_reason`.

Running the code (doctests, examples, a given test) lives in `sandbox` / `examples`.
"""

from __future__ import annotations

import builtins
import io
import re
import symtable
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wren.context.syntax import SourceText, count_errors, iter_error_nodes, language_for, parse
from wren.engine.actions.change_checks import redefinition_reason

if TYPE_CHECKING:
    from tree_sitter import Node

_BUILTINS = frozenset(dir(builtins)) | frozenset(
    {
        "__name__",
        "__file__",
        "__doc__",
        "__builtins__",
        "__spec__",
        "__loader__",
        "__package__",
        "__path__",
        "__annotations__",
        "__dict__",
        "__module__",
        "__qualname__",
        "__class__",
        "__debug__",
    }
)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str = ""  # for the user and, on failure, fed back to the model
    checks: tuple[str, ...] = ()  # which checks ran ("syntax", "names", ...)
    stage: str = ""  # on failure, which check failed (the attempt's stage)
    hint: str = ""  # on failure, advice added when the reason is fed back to the model


def syntax_error_in(
    language_id: str, text: str, first_row: int, last_row: int, old_text: str | None = None
) -> str | None:
    """A sentence about the first parse error the change is responsible for, or None.

    An error in rows `first_row..last_row` (0-based) always counts; for Python, so does any
    compile error when the old document (`old_text`) compiled. None also when the language
    has no grammar (nothing can be said).
    """
    if language_id == "python":
        err = python_syntax_error(text)
        old_ok = old_text is not None and python_syntax_error(old_text) is None
        if err is not None and (old_ok or first_row <= err[0] <= last_row + 1):
            return f"line {err[0] + 1}: {err[1]}"
    tree = parse(language_id, text)
    if tree is None:
        return None
    node = next(iter_error_nodes(tree.root_node, first_row, last_row), None)
    if node is None:
        return None
    return _describe_error(text, node)


def _describe_error(text: str, node: Node) -> str:
    """`line 4: syntax error near `x y``, `line 7: missing ;` for an ERROR/MISSING node."""
    src = SourceText(text)
    snippet = text[src.char_of(node.start_byte) : src.char_of(node.end_byte)].strip()
    snippet = snippet.split("\n")[0][:40]
    what = "missing " + node.type if node.is_missing else "syntax error"
    near = f" near `{snippet}`" if snippet else ""
    return f"line {node.start_point.row + 1}: {what}{near}"


def parse_regression(
    language_id: str, old_text: str, new_text: str, first_row: int, last_row: int
) -> str | None:
    """How the change made the file parse worse, or None: the languages other than Python.

    Counts the tree-sitter ERROR and MISSING nodes of the whole document before and after;
    more after is a regression, described at its first error in the changed rows (else the
    first in the file). Counting the whole file, rather than refusing any error in the
    changed rows, keeps a file that already had errors fixable, and leaves harmless a false
    alarm of the grammar (a C macro it cannot parse) that the change does not touch. None
    also when the text cannot be parsed (no grammar, too large): nothing can be said.
    """
    new_tree = parse(language_id, new_text)
    if new_tree is None or not new_tree.root_node.has_error:
        return None
    after = count_errors(new_tree)
    old_tree = parse(language_id, old_text)
    before = count_errors(old_tree) if old_tree is not None else 0
    if after <= before:
        return None
    root = new_tree.root_node
    node = next(iter_error_nodes(root, first_row, last_row), None)
    if node is None:
        node = next(iter_error_nodes(root, 0, root.end_point.row + 1), None)
    where = _describe_error(new_text, node) if node is not None else "a syntax error"
    was = "none" if before == 0 else str(before)
    return f"{where}; the file has {after} syntax error(s) after the change, {was} before"


def python_syntax_error(text: str) -> tuple[int, str] | None:
    """(0-based row, message) of the first Python syntax error, or None when it compiles."""
    try:
        compile(text, "<wren>", "exec", dont_inherit=True)
    except SyntaxError as err:
        row = max(0, (err.lineno or 1) - 1)
        return row, err.msg or "invalid syntax"
    except (ValueError, OverflowError, RecursionError) as err:  # NUL bytes, huge literals
        return 0, str(err)
    return None


_STAR_IMPORT = re.compile(r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+\*", re.MULTILINE)


def _walk(table: symtable.SymbolTable) -> list[symtable.SymbolTable]:
    out = [table]
    for child in table.get_children():
        out.extend(_walk(child))
    return out


def undefined_names(code: str) -> set[str] | None:
    """Names `code` reads that nothing defines; None when it does not compile or uses `import *`."""
    if _STAR_IMPORT.search(code):
        return None  # any name may come from the star import
    try:
        top = symtable.symtable(code, "<wren>", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return None
    tables = _walk(top)
    defined: set[str] = set()
    for sym in top.get_symbols():
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace() or sym.is_parameter():
            defined.add(sym.get_name())
        if sym.get_name() == "*":
            return None
    for table in tables[1:]:
        for sym in table.get_symbols():
            if sym.is_declared_global() and sym.is_assigned():
                defined.add(sym.get_name())
            if sym.get_name() == "*":
                return None
    used: set[str] = set()
    for table in tables:
        for sym in table.get_symbols():
            if not sym.is_referenced():
                continue
            name = sym.get_name()
            if table is top:
                if not (sym.is_assigned() or sym.is_imported()):
                    used.add(name)
            elif sym.is_global() or (table.get_type() == "class" and not sym.is_local()):
                used.add(name)
    return {n for n in used - defined if n not in _BUILTINS}


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def code_identifiers(code: str) -> set[str]:
    """Identifiers in `code` outside comments (tokenized; a regex fallback for broken code)."""
    names: set[str] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.NAME:
                names.add(tok.string)
            elif tok.type == tokenize.STRING:
                names.update(_IDENT.findall(tok.string))
        return names
    except (tokenize.TokenError, IndentationError, SyntaxError):
        stripped = re.sub(r"#[^\n]*", "", code)
        return set(_IDENT.findall(stripped))


def new_undefined_names(old_text: str, new_text: str) -> list[str]:
    """Undefined names in `new_text` that the old document's code never mentioned."""
    now = undefined_names(new_text)
    if not now:
        return []
    known = code_identifiers(old_text)
    return sorted(n for n in now if n not in known)


def check_change(
    language_id: str,
    old_text: str,
    new_text: str,
    first_row: int,
    last_row: int,
    new_code: str,
) -> CheckResult:
    """Static checks on the document after the change (`first_row..last_row` = changed rows)."""
    checks: list[str] = []
    if not new_code.strip():
        return CheckResult(False, "the proposed code is empty", ("content",), "content")
    if new_text == old_text:
        return CheckResult(
            False, "the proposed code is the same as the original", ("content",), "content"
        )
    if language_for(language_id) is not None:
        checks.append("syntax")
        if language_id == "python":
            err = syntax_error_in(language_id, new_text, first_row, last_row, old_text)
        else:
            err = parse_regression(language_id, old_text, new_text, first_row, last_row)
        if err is not None:
            return CheckResult(False, f"the result does not parse ({err})", tuple(checks), "syntax")
    if language_id == "python":
        checks.append("names")
        missing = new_undefined_names(old_text, new_text)
        if missing:
            names = ", ".join(f"`{n}`" for n in missing[:5])
            return CheckResult(False, f"it uses undefined names: {names}", tuple(checks), "names")
        clash = redefinition_reason(old_text, new_text, first_row, last_row)
        if clash is not None:
            return CheckResult(False, clash, tuple(checks), "redefines")
    return CheckResult(True, "", tuple(checks))
