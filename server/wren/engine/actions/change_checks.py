"""Does a proposal change what the code does, and does it clash with the file's names?

A label such as "verified" is a promise; these checks keep it from being given to answers the
parse and name checks cannot tell from doing nothing:

- `unchanged_reason`: a Fix whose code tokens equal the original's (only whitespace or comments
  differ), or whose only changes delete docstrings, annotations or decorators, is not a fix.
- `redefinition_reason`: new code must not define a function/class (or bind a variable) whose
  name the file already defines in the same scope (module, or the enclosing class) — a second
  `def mean` silently replaces the first one. Replacing a definition (Fix rewriting the selected
  function) keeps the count of definitions the same and is fine.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass

from wren.context.syntax import parse

# -- no-op / cosmetic-only changes ----------------------------------------------------------

_SKIPPED_TOKENS = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER})


def _string_value(token: str) -> str:
    """A string literal by value ('a' and "a" are the same token); the text when not a literal."""
    try:
        return repr(ast.literal_eval(token))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return token


def python_code_tokens(code: str) -> list[tuple[int, str]] | None:
    """(type, text) of each code token of `code`: no comments, blank lines or spacing.

    INDENT/DEDENT/NEWLINE stay (indentation is code in Python). None when `code` cannot be
    tokenized (an unclosed bracket or string).
    """
    out: list[tuple[int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in _SKIPPED_TOKENS:
                continue
            if tok.type == tokenize.INDENT:
                out.append((tok.type, ""))  # the width of an indent does not matter
            elif tok.type == tokenize.STRING:
                out.append((tok.type, _string_value(tok.string)))
            else:
                out.append((tok.type, tok.string))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return out


def _comments(code: str) -> list[str]:
    try:
        return [
            t.string.strip()
            for t in tokenize.generate_tokens(io.StringIO(code).readline)
            if t.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _leaves(node: object) -> Iterator[str]:
    """Texts of the tree-sitter leaves under `node`, comments left out."""
    stack = [node]
    while stack:
        current = stack.pop()
        kind: str = current.type  # type: ignore[attr-defined]
        if "comment" in kind:
            continue
        children = current.children  # type: ignore[attr-defined]
        if not children:
            text: bytes = current.text or b""  # type: ignore[attr-defined]
            yield text.decode("utf-8", "replace")
        else:
            stack.extend(reversed(children))


def code_tokens(language_id: str, code: str) -> list[str] | None:
    """The code tokens of `code` (comments and spacing left out); None when unknown."""
    if language_id == "python":
        tokens = python_code_tokens(code)
        return None if tokens is None else [f"{k}:{s}" for k, s in tokens]
    tree = parse(language_id, code)
    if tree is None or tree.root_node.has_error:
        return None
    return list(_leaves(tree.root_node))


@dataclass
class _Cosmetics:
    """What a normalised module lost: docstrings, annotations, decorators (as source text)."""

    docstrings: list[str]
    annotations: list[tuple[str, str]]  # (what, source): ("the annotation of `x`", "int")
    decorators: list[str]


class _StripCosmetics(ast.NodeTransformer):
    """Remove docstrings, annotations and decorators, recording them."""

    def __init__(self) -> None:
        self.found = _Cosmetics([], [], [])

    def _strip_docstring(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            self.found.docstrings.append(body[0].value.value)
            rest = body[1:]
            node.body = rest or [ast.Pass()]  # type: ignore[attr-defined]

    def visit_Module(self, node: ast.Module) -> ast.AST:
        self._strip_docstring(node)
        self.generic_visit(node)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self._strip_docstring(node)
        self.found.decorators.extend(ast.unparse(d) for d in node.decorator_list)
        node.decorator_list = []
        self.generic_visit(node)
        return node

    def _visit_function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> ast.FunctionDef | ast.AsyncFunctionDef:
        self._strip_docstring(node)
        self.found.decorators.extend(ast.unparse(d) for d in node.decorator_list)
        node.decorator_list = []
        if node.returns is not None:
            what = f"the return annotation of `{node.name}`"
            self.found.annotations.append((what, ast.unparse(node.returns)))
            node.returns = None
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for arg in every:
            if arg.annotation is not None:
                what = f"the annotation of `{arg.arg}`"
                self.found.annotations.append((what, ast.unparse(arg.annotation)))
                arg.annotation = None
        self.generic_visit(node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._visit_function(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if node.value is None:
            return node  # `x: int` declares a field (a dataclass's): it is code
        what = f"the annotation of `{ast.unparse(node.target)}`"
        self.found.annotations.append((what, ast.unparse(node.annotation)))
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def _normalised(code: str) -> tuple[str, _Cosmetics] | None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return None
    stripper = _StripCosmetics()
    tree = stripper.visit(tree)
    return ast.dump(tree), stripper.found


def _removed(old: list[str], new: list[str]) -> list[str] | None:
    """The items of `old` missing from `new`; None when `new` has one `old` does not."""
    left = list(old)
    for item in new:
        if item in left:
            left.remove(item)
        else:
            return None
    return left


def _names_in(source: str) -> set[str]:
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def unchanged_reason(
    language_id: str, old_code: str, new_code: str, undefined_before: set[str] | None = None
) -> str | None:
    """Why replacing `old_code` by `new_code` is not a change at all; None when it is one.

    Not a change: the same code tokens (whitespace and comments aside), or (Python) only
    docstrings, annotations or decorators deleted. Deleting an annotation or decorator that used
    a name undefined in the file (`undefined_before`) does fix something, and counts.
    """
    old_tokens = code_tokens(language_id, old_code)
    new_tokens = code_tokens(language_id, new_code)
    if old_tokens is not None and old_tokens == new_tokens:
        if language_id == "python":
            gone = _removed(_comments(old_code), _comments(new_code))
            if gone:
                return "it only deletes comments and changes no code"
        return "it is the same code as the original (only spacing or comments differ)"
    if language_id != "python":
        return None
    old = _normalised(old_code)
    new = _normalised(new_code)
    if old is None or new is None or old[0] != new[0]:
        return None
    old_c, new_c = old[1], new[1]
    docs = _removed(old_c.docstrings, new_c.docstrings)
    annotations = _removed([s for _, s in old_c.annotations], [s for _, s in new_c.annotations])
    decorators = _removed(old_c.decorators, new_c.decorators)
    if docs is None or annotations is None or decorators is None:
        return None  # something was added or rewritten, e.g. a better annotation
    if undefined_before:
        for source in annotations + decorators:
            if _names_in(source) & undefined_before:
                return None  # it removes the use of an undefined name: that is a fix
    parts: list[str] = []
    if docs:
        parts.append("the docstring" if len(docs) == 1 else f"{len(docs)} docstrings")
    kept = [s for _, s in new_c.annotations]
    for what, source in old_c.annotations:
        if source in kept:
            kept.remove(source)
        else:
            parts.append(what)
    parts.extend(f"the decorator `@{d}`" for d in decorators)
    if not parts:
        return "it is the same code as the original (only spacing or comments differ)"
    return f"it only deletes {_join(parts)}, which changes nothing the code does"


UNCHANGED_HINT = "keep the code as it is and change only what is wrong"


# -- redefinitions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    scope: tuple[str, ...]  # () = module, ("Inventory",) = that class's body
    name: str
    row: int  # 0-based
    kind: str  # "def" | "class" | "assign" | "import"


_REDEFINING_DECORATORS = ("overload", "setter", "getter", "deleter", "register")


def _decorated_to_redefine(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """`@overload`, `@x.setter` and the like define a name again on purpose."""
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in _REDEFINING_DECORATORS:
            return True
    return False


def _bindings_of(body: list[ast.stmt], scope: tuple[str, ...]) -> Iterator[Binding]:
    """Direct bindings of a module or class body (not those inside `if`/`try` blocks)."""
    for node in body:
        row = node.lineno - 1
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not _decorated_to_redefine(node):
                yield Binding(scope, node.name, row, "def")
        elif isinstance(node, ast.ClassDef):
            yield Binding(scope, node.name, row, "class")
            yield from _bindings_of(node.body, (*scope, node.name))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        yield Binding(scope, leaf.id, row, "assign")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name != "*":
                    name = alias.asname or alias.name.split(".")[0]
                    yield Binding(scope, name, row, "import")


def bindings(code: str) -> list[Binding] | None:
    """The module- and class-level names `code` binds; None when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return None
    return list(_bindings_of(tree.body, ()))


_NOUN = {"def": "function", "class": "class", "assign": "variable", "import": "import"}


def _noun(b: Binding) -> str:
    return "method" if b.kind == "def" and b.scope else _NOUN[b.kind]


def _clashes(new: Binding, existing: Binding) -> bool:
    """Whether `new` replaces `existing` by mistake (re-assigning a variable is ordinary code)."""
    if new.kind == "assign":
        return existing.kind in ("def", "class")
    return new.kind in ("def", "class")


def redefinition_reason(old_text: str, new_text: str, first_row: int, last_row: int) -> str | None:
    """Why the new code (rows `first_row..last_row` of `new_text`) clashes with a name; or None.

    A function or class the change defines whose name the same scope already binds elsewhere
    (more definitions of it than before), or a variable that replaces a function or class.
    """
    old = bindings(old_text)
    new = bindings(new_text)
    if old is None or new is None:
        return None
    old_count: dict[tuple[tuple[str, ...], str], int] = {}
    for b in old:
        old_count[(b.scope, b.name)] = old_count.get((b.scope, b.name), 0) + 1
    problems: list[str] = []
    for b in new:
        if not first_row <= b.row <= last_row:
            continue
        others = [
            o
            for o in new
            if o.scope == b.scope
            and o.name == b.name
            and not first_row <= o.row <= last_row
            and _clashes(b, o)
        ]
        if not others:
            continue
        count = sum(1 for o in new if o.scope == b.scope and o.name == b.name)
        if count <= old_count.get((b.scope, b.name), 0):
            continue  # the file already had as many: a definition was replaced, not added
        where = f"in class `{'.'.join(b.scope)}` " if b.scope else ""
        before = [o for o in old if o.scope == b.scope and o.name == b.name and _clashes(b, o)]
        other = before[0] if before else others[0]  # its line in the file as the user sees it
        problems.append(
            f"`{b.name}` is already defined {where}on line {other.row + 1} "
            f"(a {_noun(other)}); "
            f"choose a new name for the new {_noun(b)}, or use the existing `{b.name}`"
        )
    if not problems:
        return None
    return "; ".join(dict.fromkeys(problems))
