"""Definitions of the names used just before the cursor, found with jedi (Python only).

A model that sees `def compute_total(items: list[float], tax: float = 0.2) -> float` from
another file calls it correctly. We look up the identifiers of the last ~15 lines before
the cursor with `jedi.Script.goto`, keep those defined in other workspace files or
installed packages (not builtins, the standard library or the current file), and render a
short form: the signature and the first docstring line, or the whole definition when it is
short.

jedi can be slow on a cold cache (hundreds of ms for the first lookup into a package), so
the lookup runs on a worker thread: the caller waits at most `budget_s` and gets what was
found by then. A lookup still running keeps warming jedi's caches; while it runs, new
calls return [] at once rather than queue up. Nothing here raises.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import logging
import os
import re
import sys
import sysconfig
import textwrap
import threading
import time
from dataclasses import dataclass
from typing import Any

from wren.types import ContextSnippet, Snapshot

log = logging.getLogger(__name__)

LOOKBACK_LINES = 15
MAX_LOOKUPS = 24  # goto calls per request, nearest names first
SHORT_DEFINITION_LINES = 8
MAX_SNIPPET_LINES = 16

_jedi_lock = threading.Lock()
_projects: dict[str, Any] = {}
_environments: dict[str, Any] = {}

_SKIP_NAMES = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "cls", "_"}
_PY_TOKEN = re.compile(
    r"""(?P<str>[rbfuRBFU]{0,2}(?:"(?:\\.|[^"\\])*"?|'(?:\\.|[^'\\])*'?))"""
    r"""|(?P<comment>\#.*$)"""
    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"""
)


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(sorted(dirs))


_STDLIB_DIRS = _stdlib_dirs()


@dataclass(frozen=True)
class NameUse:
    """An identifier near the cursor: 1-based line, 0-based column (jedi's convention)."""

    name: str
    line: int
    column: int


def names_near_cursor(snapshot: Snapshot, lookback_lines: int = LOOKBACK_LINES) -> list[NameUse]:
    """Distinct identifiers of the last `lookback_lines` lines before the cursor, nearest
    first, without keywords, builtins, and words inside strings or comments."""
    prefix = snapshot.prefix
    lines = prefix.split("\n")
    first = max(0, len(lines) - lookback_lines)
    seen: set[str] = set()
    found: list[NameUse] = []
    for index in range(len(lines) - 1, first - 1, -1):
        uses = [
            NameUse(m.group("name"), index + 1, m.start("name"))
            for m in _PY_TOKEN.finditer(lines[index])
            if m.group("name")
        ]
        for use in reversed(uses):
            if use.name in _SKIP_NAMES or use.name in seen:
                continue
            seen.add(use.name)
            found.append(use)
    return found


def _is_stdlib(path: str) -> bool:
    real = os.path.realpath(path)
    if "site-packages" in real or "dist-packages" in real:
        return False
    if f"{os.sep}typeshed{os.sep}" in real:
        return True
    return any(real.startswith(d + os.sep) for d in _STDLIB_DIRS)


def _display_path(module_path: str, module_name: str, workspace_root: str | None) -> str:
    if workspace_root:
        root = os.path.realpath(workspace_root)
        real = os.path.realpath(module_path)
        if real.startswith(root + os.sep):
            return os.path.relpath(real, root)
    suffix = os.path.splitext(module_path)[1] or ".py"
    if os.path.basename(module_path).startswith("__init__."):
        return module_name.replace(".", "/") + "/__init__" + suffix
    return module_name.replace(".", "/") + suffix


_source_cache: dict[str, tuple[float, list[str]]] = {}


def _source_lines(path: str) -> list[str] | None:
    try:
        mtime = os.path.getmtime(path)
        cached = _source_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
    except OSError:
        return None
    if len(_source_cache) > 64:
        _source_cache.clear()
    _source_cache[path] = (mtime, lines)
    return lines


def _first_doc_line(node: ast.AST) -> str | None:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return None
    doc = ast.get_docstring(node)
    if not doc:
        return None
    first = doc.strip().split("\n", 1)[0].strip()
    return first or None


def _header_lines(
    lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
) -> list[str]:
    """The `def`/`class` line(s) up to the colon (the body starts on a later line)."""
    start = node.lineno - 1
    body_line = node.body[0].lineno - 1 if node.body else start + 1
    end = max(start + 1, body_line)
    header = lines[start:end]
    if node.body and node.body[0].lineno - 1 == start:  # one-liner: `def f(): return 1`
        header = [lines[start]]
    return header


def summarize_definition(source: str) -> str | None:
    """A short form of a definition's source: whole when short, otherwise the signature,
    the first docstring line and (for classes) the method signatures."""
    source = textwrap.dedent(source).strip("\n")
    lines = source.split("\n")
    if len(lines) <= SHORT_DEFINITION_LINES:
        return source
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return "\n".join([*lines[:SHORT_DEFINITION_LINES], "..."])
    if not tree.body:
        return None
    node = tree.body[0]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        out = _header_lines(lines, node)
        indent = " " * (node.body[0].col_offset if node.body else 4)
        doc = _first_doc_line(node)
        if doc:
            out.append(f'{indent}"""{doc}"""')
        out.append(f"{indent}...")
        return "\n".join(out)
    if isinstance(node, ast.ClassDef):
        out = _header_lines(lines, node)
        indent = " " * (node.body[0].col_offset if node.body else 4)
        doc = _first_doc_line(node)
        if doc:
            out.append(f'{indent}"""{doc}"""')
        for item in node.body:
            if len(out) >= MAX_SNIPPET_LINES:
                out.append(f"{indent}...")
                break
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                if item.name.startswith("_") and item.name != "__init__":
                    continue
                out.extend(_header_lines(lines, item))
                out.append(f"{indent}    ...")
            elif isinstance(item, ast.AnnAssign | ast.Assign):
                out.append(lines[item.lineno - 1])
        return "\n".join(out)
    return "\n".join(lines[:3] + (["..."] if len(lines) > 3 else []))


def _definition_source(name: Any) -> str | None:
    start = name.get_definition_start_position()
    end = name.get_definition_end_position()
    if start is None or end is None or name.module_path is None:
        return None
    lines = _source_lines(str(name.module_path))
    if lines is None:
        return None
    return "\n".join(lines[start[0] - 1 : end[0]])


def _snippet_for(name: Any, workspace_root: str | None) -> ContextSnippet | None:
    if name.type not in ("function", "class", "statement", "instance"):
        return None
    if name.type in ("statement", "instance"):
        parent = name.parent()
        if parent is not None and parent.type != "module":  # locals, `self.x = ...`
            return None
    source = _definition_source(name)
    if not source or not source.strip():
        return None
    text = summarize_definition(source)
    if not text:
        return None
    if name.type == "function":
        parent = name.parent()
        if parent is not None and parent.type == "class":
            text = f"class {parent.name}:\n" + textwrap.indent(text, "    ")
    path = _display_path(str(name.module_path), name.module_name or name.name, workspace_root)
    in_workspace = not os.path.isabs(path)
    return ContextSnippet(path=path, text=text, source="symbol", score=1.0 if in_workspace else 0.5)


def _project(workspace_root: str | None) -> Any:
    import jedi

    if not workspace_root:
        return None
    project = _projects.get(workspace_root)
    if project is None:
        project = jedi.Project(workspace_root)
        _projects[workspace_root] = project
    return project


def _environment(workspace_root: str | None) -> Any:
    """jedi's view of Python, inside this process: it starts no subprocess.

    jedi's default environment runs a Python interpreter in a subprocess to inspect compiled
    modules (the one in $VIRTUAL_ENV when that is set, which may belong to the workspace). An
    `InterpreterEnvironment` inspects this server's own installation instead. Its sys.path is
    the server's without the current directory and the workspace root, so a compiled module
    planted in the workspace is never imported (workspace files are only parsed).
    """
    import jedi

    key = workspace_root or ""
    environment = _environments.get(key)
    if environment is None:
        skip = {os.path.realpath(p) for p in (os.getcwd(), workspace_root) if p}
        sys_path = [p for p in sys.path if p and os.path.realpath(p) not in skip]

        class _ServerEnvironment(jedi.InterpreterEnvironment):
            def get_sys_path(self) -> list[str]:
                return list(sys_path)

        environment = _ServerEnvironment()
        _environments[key] = environment
    return environment


def _collect(
    snapshot: Snapshot,
    workspace_root: str | None,
    deadline: float,
    max_snippets: int,
    out: list[ContextSnippet],
) -> None:
    import jedi

    current = os.path.realpath(snapshot.path) if snapshot.path else None
    script = jedi.Script(
        snapshot.text,
        path=snapshot.path or None,
        project=_project(workspace_root),
        environment=_environment(workspace_root),
    )
    seen: set[tuple[str, int]] = set()
    for use in names_near_cursor(snapshot)[:MAX_LOOKUPS]:
        if time.perf_counter() > deadline or len(out) >= max_snippets:
            return
        definition = _definition_elsewhere(script, use, current)
        if definition is None:
            continue
        key = (str(definition.module_path), definition.line or 0)
        if key in seen:
            continue
        seen.add(key)
        snippet = _snippet_for(definition, workspace_root)
        if snippet is not None:
            out.append(snippet)


def _is_elsewhere(definition: Any, current: str | None) -> bool:
    """Defined in another workspace file or an installed package (not builtins/stdlib)."""
    module_path = definition.module_path
    if module_path is None or definition.in_builtin_module():
        return False
    module_path = str(module_path)
    if current is not None and os.path.realpath(module_path) == current:
        return False
    return not _is_stdlib(module_path)


def _definition_elsewhere(script: Any, use: NameUse, current: str | None) -> Any:
    """Where the name at `use` is defined, if that is in another file. A local variable
    (`basket = Basket()`) is followed to the class of its value with `infer`."""
    try:
        found = script.goto(use.line, use.column, follow_imports=True)
        if found and _is_elsewhere(found[0], current):
            return found[0]
        if found and found[0].type not in ("statement", "param"):
            return None
        inferred = script.infer(use.line, use.column)
    except Exception:  # jedi raises on odd input; one name failing is not fatal
        log.debug("jedi lookup failed for %s", use.name, exc_info=True)
        return None
    if (
        inferred
        and inferred[0].type in ("instance", "class")
        and _is_elsewhere(inferred[0], current)
    ):
        return inferred[0]
    return None


def symbol_snippets(
    snapshot: Snapshot,
    workspace_root: str | None,
    budget_s: float = 0.05,
    max_snippets: int = 4,
) -> list[ContextSnippet]:
    """Short definitions of the names used near the cursor that live in other files.

    Waits at most `budget_s`; returns [] for non-Python documents, on any jedi error, or
    while an earlier lookup is still running.
    """
    if snapshot.language_id != "python" or max_snippets <= 0:
        return []
    if not _jedi_lock.acquire(blocking=False):
        return []
    found: list[ContextSnippet] = []
    deadline = time.perf_counter() + budget_s

    def work() -> None:
        try:
            _collect(snapshot, workspace_root, deadline, max_snippets, found)
        except Exception:
            log.debug("symbol lookup failed", exc_info=True)
        finally:
            _jedi_lock.release()

    worker = threading.Thread(target=work, name="wren-jedi", daemon=True)
    try:
        worker.start()
    except RuntimeError:
        _jedi_lock.release()
        return []
    worker.join(max(0.0, budget_s))
    # Functions and classes say more than variables; otherwise keep nearest-first order.
    ranked = sorted(
        found[:max_snippets], key=lambda s: s.text.startswith(("def ", "class ")) is False
    )
    return ranked
