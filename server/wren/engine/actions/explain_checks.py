"""Checking an explanation against the code it explains (the verify step of Explain).

A small model writes confident nonsense: names that appear nowhere in the file ("the `__cxa__`
attribute"), parameters the function does not have, a return it does not make, the same two
sentences three times, a last sentence cut mid-word by the token limit. Each check here is pure
and cheap (milliseconds): it reads the explanation and the code, and says what to drop and why.

- grounding: every identifier written in code style (`backticks`) or as an obvious code token
  (snake_case, dotted.names, a name directly followed by "(") exists in the selection, the file,
  the language's builtins/keywords, or the file's name;
- claims: the parameters the explanation lists are the function's parameters, and what it says
  about the return (a value, nothing, a generator) matches the code (Python via `ast`, other
  languages via tree-sitter);
- repetition: near-duplicate sentences, list items and clauses (token-set Jaccard or difflib
  ratio >= 0.8) are dropped, not only exact repeats;
- endings: the text never ends mid-word or mid-sentence.

The structured form (Summary / Takes / Returns / Notes) gets its Takes and Returns from the
code's own signature when the model's version is wrong or missing.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import keyword
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wren.context.syntax import parse

if TYPE_CHECKING:
    from tree_sitter import Node

NEAR_DUPLICATE = 0.8
MAX_SHOWN_EXPR = 48
UNRELIABLE_SHARE = 0.5  # more than this share of the model's claims wrong: trust none of it
UNRELIABLE_TEXT = "The model could not explain this reliably."

FIELDS = ("Summary", "Takes", "Returns", "Notes")

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_WORD_RE = re.compile(_IDENT)
_DOTTED_RE = re.compile(_DOTTED)
_BACKTICK_RE = re.compile(r"`([^`\n]+)`")
_EMPHASIS_RE = re.compile(r"(?<!\w)_([^_\n]+?)_(?!\w)")
_DEF_RE = re.compile(r"\b(?:def|function|func|fn)\s+([A-Za-z_]\w*)\s*\(([^)]*)")
# Code-looking tokens outside backticks.
_SNAKE_RE = re.compile(r"(?<![\w.])(_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*|__\w+)(?![\w])")
_DOTTED_BARE_RE = re.compile(rf"(?<![\w.]){_IDENT}(?:\.{_IDENT})+(?![\w(])")
_CALL_RE = re.compile(rf"(?<![\w.])({_DOTTED})\(")
_FIELD_RE = re.compile(
    r"^\s*(?:[-*]\s*)?\**\s*(Summary|Takes|Returns|Notes)\s*\**\s*:\s*\**\s*(.*)$", re.IGNORECASE
)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[*_])")
_SENTENCE_END_RE = re.compile(r"[.!?][`'\")\]*_]*$")

_NOT_CODE = {"e.g", "i.e", "etc", "vs", "a.k.a", "U.S"}
_FILE_EXTENSIONS = {
    "py", "pyi", "js", "jsx", "ts", "tsx", "go", "rs", "java", "c", "h", "cc", "cpp", "hpp",
    "md", "txt", "json", "toml", "cfg", "ini", "yaml", "yml",
}  # fmt: skip
# Words every language's explanation may put in code style.
_COMMON_CODE_WORDS = {
    "true", "false", "null", "nil", "none", "undefined", "this", "self", "super", "void",
    "int", "float", "str", "string", "bool", "boolean", "char", "byte", "bytes", "list",
    "dict", "map", "set", "array", "object", "number", "function", "func", "fn", "var",
    "let", "const", "return", "yield", "async", "await", "class", "struct", "new",
}  # fmt: skip
_LANGUAGE_WORDS: dict[str, set[str]] = {
    "python": set(dir(builtins)) | set(keyword.kwlist) | set(keyword.softkwlist) | {"self", "cls"},
    "javascript": {"console", "log", "Math", "JSON", "Promise", "Array", "Object", "String",
                   "Number", "Error", "typeof", "instanceof", "prototype", "length"},
    "go": {"fmt", "err", "error", "make", "len", "cap", "append", "panic", "defer", "chan"},
    "rust": {"Option", "Some", "None", "Result", "Ok", "Err", "Vec", "String", "impl", "mut",
             "unwrap", "match", "Self", "Box"},
    "java": {"System", "out", "println", "String", "Integer", "List", "Map", "public",
             "private", "static", "final", "throws", "extends", "implements"},
    "c": {"printf", "malloc", "free", "sizeof", "NULL", "size_t", "unsigned", "static"},
}  # fmt: skip
_LANGUAGE_WORDS["typescript"] = _LANGUAGE_WORDS["javascript"] | {"interface", "type", "any"}
_LANGUAGE_WORDS["javascriptreact"] = _LANGUAGE_WORDS["javascript"]
_LANGUAGE_WORDS["typescriptreact"] = _LANGUAGE_WORDS["typescript"]
_LANGUAGE_WORDS["cpp"] = _LANGUAGE_WORDS["c"] | {"std", "cout", "endl", "vector", "auto"}

_SAYS_NOTHING_RE = re.compile(
    r"^\W*(nothing|none|no value|no return value|void|it does not return|does not return|"
    r"doesn't return|returns nothing|n/a)\b",
    re.IGNORECASE,
)
_SAYS_GENERATOR_RE = re.compile(r"\b(generator|iterator|iterable|yield|yields|lazily)\b", re.I)
_SAYS_NO_PARAMS_RE = re.compile(
    r"^\W*(nothing|none|no parameters|no arguments|no inputs?)\b", re.IGNORECASE
)
_PARAM_CLAIM_RE = re.compile(
    r"\b(parameters?|arguments?|args|takes|accepts|receives|inputs?)\b", re.IGNORECASE
)
_PROSE_NO_RETURN_RE = re.compile(
    r"\b(returns nothing|does not return (anything|a value)|doesn't return (anything|a value)|"
    r"has no return value|returns `?None`?\b)",
    re.IGNORECASE,
)
_PROSE_YIELDS_RE = re.compile(r"\b(it|function|method)\s+(yields|is a generator)\b", re.I)


# -- what the code says -----------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    annotation: str = ""
    default: str = ""

    def describe(self) -> str:
        text = f"`{self.name}`"
        if self.annotation:
            text += f" (`{self.annotation}`)"
        if self.default:
            text += f", default `{self.default}`"
        return text


@dataclass(frozen=True)
class Signature:
    """What a function's own code says about its inputs and output."""

    name: str
    kind: str  # "function", "method", "class"
    params: tuple[Param, ...]  # without self/cls
    returns_value: bool = False
    is_generator: bool = False
    return_exprs: tuple[str, ...] = ()
    return_lines: tuple[int, ...] = ()
    return_annotation: str = ""
    returns_known: bool = True  # False where a language returns implicitly (Rust)
    receiver: str = ""  # "self" / "cls" of a method

    @property
    def param_names(self) -> set[str]:
        return {p.name for p in self.params}

    def takes_text(self) -> str:
        """The Takes field as the signature says it."""
        if not self.params:
            return "nothing" + (f" besides `{self.receiver}`." if self.receiver else ".")
        return "; ".join(p.describe() for p in self.params) + "."

    def returns_text(self) -> str:
        """The Returns field as the code says it."""
        if self.kind == "class":
            return f"a new `{self.name}` object when called."
        if self.is_generator:
            return "a generator: it `yield`s values one at a time."
        if not self.returns_value:
            return "nothing (`None`)."
        valued = [e for e in dict.fromkeys(self.return_exprs) if e and e != "None"]
        typed = f"a `{self.return_annotation}`" if self.return_annotation else "a value"
        if len(valued) == 1 and len(valued[0]) <= MAX_SHOWN_EXPR:
            return f"the value of `{valued[0]}`" + (
                f" (`{self.return_annotation}`)." if self.return_annotation else "."
            )
        if valued and all(len(e) <= MAX_SHOWN_EXPR for e in valued[:3]) and len(valued) <= 3:
            return f"{typed}: one of " + ", ".join(f"`{e}`" for e in valued) + "."
        lines = ", ".join(str(n) for n in dict.fromkeys(self.return_lines))
        where = f" (see the `return` on line{'s' if ',' in lines else ''} {lines})" if lines else ""
        return f"{typed}{where}."


def signature_of(code: str, language_id: str, first_line: int = 1) -> Signature | None:
    """The signature of the one function/class `code` defines; None for other code."""
    if language_id == "python":
        return _python_signature(code, first_line)
    return _tree_sitter_signature(code, language_id, first_line)


def _python_signature(code: str, first_line: int) -> Signature | None:
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return None
    defs = [
        n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    others = [
        n for n in tree.body if n not in defs and not isinstance(n, ast.Import | ast.ImportFrom)
    ]
    if len(defs) != 1 or others:
        return None
    node = defs[0]
    if isinstance(node, ast.ClassDef):
        init = next(
            (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
        )
        params = _python_params(init.args, drop_first=True) if init is not None else ()
        return Signature(node.name, "class", params)
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    is_method = bool(positional) and positional[0].arg in ("self", "cls")
    params = _python_params(args, drop_first=is_method)
    exprs: list[str] = []
    lines: list[int] = []
    valued = generator = False
    for sub in _own_nodes(node):
        if isinstance(sub, ast.Return):
            lines.append(sub.lineno + first_line - 1)
            if sub.value is not None:
                text = ast.unparse(sub.value)
                exprs.append(text)
                valued = valued or text != "None"
            else:
                exprs.append("None")
        elif isinstance(sub, ast.Yield | ast.YieldFrom):
            generator = True
    annotation = ast.unparse(node.returns) if node.returns is not None else ""
    return Signature(
        node.name,
        "method" if is_method else "function",
        params,
        returns_value=valued,
        is_generator=generator,
        return_exprs=tuple(exprs),
        return_lines=tuple(lines),
        return_annotation=annotation,
        receiver=positional[0].arg if is_method else "",
    )


def _python_params(args: ast.arguments, drop_first: bool) -> tuple[Param, ...]:
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    pairs: list[tuple[ast.arg, ast.expr | None]] = list(zip(positional, defaults, strict=True))
    if drop_first and pairs:
        pairs = pairs[1:]
    out = [_param(a, d) for a, d in pairs]
    if args.vararg is not None:
        out.append(_param(args.vararg, None, "*"))
    out += [_param(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg is not None:
        out.append(_param(args.kwarg, None, "**"))
    return tuple(out)


def _param(arg: ast.arg, default: ast.expr | None, star: str = "") -> Param:
    annotation = ast.unparse(arg.annotation) if arg.annotation is not None else ""
    text = ast.unparse(default) if default is not None else ""
    if len(annotation) > MAX_SHOWN_EXPR:
        annotation = ""
    if len(text) > MAX_SHOWN_EXPR:
        text = "…"
    return Param(arg.arg, annotation, text) if not star else Param(arg.arg, annotation, "")


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's own body: not those of nested functions, lambdas, classes."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        sub = stack.pop()
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        yield sub
        stack.extend(ast.iter_child_nodes(sub))


_TS_FUNCTIONS = {
    "function_declaration", "function_definition", "method_definition", "method_declaration",
    "function_item", "generator_function_declaration", "function_expression", "arrow_function",
    "constructor_declaration",
}  # fmt: skip
_TS_NAME_TYPES = {
    "identifier", "shorthand_property_identifier_pattern", "field_identifier",
    "property_identifier",
}  # fmt: skip


def _tree_sitter_signature(code: str, language_id: str, first_line: int) -> Signature | None:
    tree = parse(language_id, code)
    if tree is None:
        return None
    root = tree.root_node
    funcs = [n for n in _walk(root) if n.type in _TS_FUNCTIONS]
    if not funcs:
        return None
    node = funcs[0]
    params_node = node.child_by_field_name("parameters")
    declarator = node.child_by_field_name("declarator")
    while params_node is None and declarator is not None:  # C/C++: int f(int a)
        params_node = declarator.child_by_field_name("parameters")
        declarator = declarator.child_by_field_name("declarator")
    if params_node is None:
        single = node.child_by_field_name("parameter")  # JS: x => x + 1
        names = [_text(single)] if single is not None else []
    else:
        names = [n for child in params_node.named_children for n in _ts_param_names(child)]
    name_node = node.child_by_field_name("name")
    name = _text(name_node) if name_node is not None else ""
    valued = generator = False
    exprs: list[str] = []
    lines: list[int] = []
    for sub in _walk(node, skip=_TS_FUNCTIONS):
        if sub.type == "return_statement":
            value = [c for c in sub.named_children if c.type != "comment"]
            lines.append(sub.start_point[0] + first_line)
            exprs.append(_text(value[0]) if value else "")
            valued = valued or bool(value)
        elif sub.type in ("yield_expression", "yield"):
            generator = True
    if node.type == "generator_function_declaration":
        generator = True
    return Signature(
        name,
        "function",
        tuple(Param(n) for n in names if n and n != "self"),
        returns_value=valued,
        is_generator=generator,
        return_exprs=tuple(exprs),
        return_lines=tuple(lines),
        returns_known=language_id != "rust",
    )


def _ts_param_names(node: Node) -> list[str]:
    kind = getattr(node, "type", "")
    if kind in ("comment", "self_parameter"):
        return []
    if kind in _TS_NAME_TYPES:
        return [_text(node)]
    named = [n for n in node.children_by_field_name("name")]
    if named:
        return [_text(n) for n in named]
    for key in ("pattern", "declarator", "left"):
        child = node.child_by_field_name(key)
        if child is not None:
            return _ts_param_names(child)
    first = next((c for c in node.named_children if c.type in _TS_NAME_TYPES), None)
    return [_text(first)] if first is not None else []


def _walk(node: Node, skip: set[str] | None = None) -> Iterator[Node]:
    stack = list(reversed(node.children))
    while stack:
        sub = stack.pop()
        yield sub
        if skip is not None and sub.type in skip:
            continue
        stack.extend(reversed(sub.children))


def _text(node: Node | None) -> str:
    raw = getattr(node, "text", b"") or b""
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


# -- grounding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """The names an explanation of this code may use."""

    words: frozenset[str]
    text: str  # the file, for dotted names that appear verbatim

    @classmethod
    def of(cls, code: str, file_text: str, language_id: str, display_name: str = "") -> Known:
        words = set(_WORD_RE.findall(code)) | set(_WORD_RE.findall(file_text))
        words |= _COMMON_CODE_WORDS | _LANGUAGE_WORDS.get(language_id, set())
        if display_name:
            words |= set(_WORD_RE.findall(display_name))
        return cls(frozenset(words), file_text + "\n" + code)

    def has(self, name: str) -> bool:
        if name in self.words or name.lower() in _COMMON_CODE_WORDS:
            return True
        parts = name.split(".")
        if len(parts) > 1 and parts[-1].lower() in _FILE_EXTENSIONS:
            parts = parts[:-1]  # "textwrap.py"
        if all(p in self.words for p in parts):
            return True
        return (
            len(parts) > 1
            and re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", self.text) is not None
        )


def named_identifiers(sentence: str) -> list[str]:
    """The identifiers a sentence names as code: in backticks, or code-shaped tokens."""
    names: list[str] = []
    for span in _BACKTICK_RE.findall(sentence):
        names += [t for t in _DOTTED_RE.findall(_strip_strings(span)) if not t.isdigit()]
    bare = _BACKTICK_RE.sub(" ", sentence)
    bare = re.sub(r"https?://\S+", " ", bare)
    bare = _EMPHASIS_RE.sub(r"\1", bare)  # markdown _italics_ are not names
    for pattern in (_CALL_RE, _DOTTED_BARE_RE, _SNAKE_RE):
        for match in pattern.finditer(bare):
            token = match.group(1) if pattern.groups else match.group(0)
            if token.rstrip(".") in _NOT_CODE or _is_emphasis(token):
                continue
            names.append(token)
    return list(dict.fromkeys(names))


def _strip_strings(span: str) -> str:
    """Code in backticks without its string literals: `'$'"'"'b'` names nothing."""
    return re.sub(r"'[^']*'|\"[^\"]*\"", " ", span)


def _is_emphasis(token: str) -> bool:
    return token.startswith("_") and token.endswith("_") and token.count("_") == 2


def missing_names(sentence: str, known: Known) -> list[str]:
    """The names a sentence uses that the code does not have."""
    return [n for n in named_identifiers(sentence) if not known.has(n)]


# -- claims about parameters and the return ----------------------------------------------------


def takes_problem(takes: str, sig: Signature) -> str:
    """Why a Takes field is wrong for `sig` ("" when it is right)."""
    allowed = (
        sig.param_names | {"self", "cls"} | set(_LANGUAGE_WORDS["python"]) | _COMMON_CODE_WORDS
    )
    for p in sig.params:
        allowed |= set(_WORD_RE.findall(p.annotation + " " + p.default))
    wrong = [
        n
        for span in _BACKTICK_RE.findall(takes)
        for n in _DOTTED_RE.findall(_strip_strings(span))
        if not all(part in allowed for part in n.split("."))
    ]
    listed = {w for w in _WORD_RE.findall(takes) if w in sig.param_names}
    what = f"`{sig.name}`" if sig.name else "the function"
    if wrong:
        return f"`{wrong[0]}` is not a parameter of {what}"
    if not sig.params:
        named = [n for n in _BACKTICK_RE.findall(takes) if n not in ("self", "cls")]
        if listed or named or not _SAYS_NO_PARAMS_RE.search(takes):
            return f"{what} takes no parameters"
        return ""
    if _SAYS_NO_PARAMS_RE.search(takes) and not listed:
        return f"{what} takes " + ", ".join(f"`{p.name}`" for p in sig.params)
    if not listed:
        return (
            "it names none of the parameters (" + ", ".join(f"`{p.name}`" for p in sig.params) + ")"
        )
    missing = [p.name for p in sig.params if p.name not in listed]
    if missing:
        return "it leaves out " + ", ".join(f"`{m}`" for m in missing)
    return ""


def returns_problem(returns: str, sig: Signature) -> str:
    """Why a Returns field is wrong for `sig` ("" when it is right)."""
    if sig.kind == "class" or not sig.returns_known:
        return ""
    what = f"`{sig.name}`" if sig.name else "the function"
    says_nothing = bool(_SAYS_NOTHING_RE.search(returns.replace("`", "")))
    if sig.is_generator:
        if not _SAYS_GENERATOR_RE.search(returns):
            return f"{what} is a generator (it uses `yield`)"
        return ""
    if sig.returns_value and says_nothing:
        return f"{what} returns a value"
    if not sig.returns_value and not says_nothing and "None" not in returns:
        return f"{what} returns nothing"
    return ""


def prose_claim_problem(sentence: str, sig: Signature) -> str:
    """Why a prose sentence's claim about parameters or the return is wrong ("" if none)."""
    what = f"`{sig.name}`" if sig.name else "the function"
    for span in _BACKTICK_RE.findall(sentence):
        quoted = _DEF_RE.search(span)  # "defined as `def textwrap(text, width=70)`"
        if quoted is None or sig.kind == "class":
            continue
        if sig.name and quoted.group(1) != sig.name:
            return f"the function is `{sig.name}`, not `{quoted.group(1)}`"
        names = [re.split(r"[:=]", p)[0].strip(" *") for p in quoted.group(2).split(",")]
        names = [n for n in names if n.isidentifier() and n not in ("self", "cls")]
        if names and set(names) != sig.param_names:
            return f"the parameters of {what} are " + (
                ", ".join(f"`{p.name}`" for p in sig.params) or "none"
            )
    if sig.kind != "class" and _PARAM_CLAIM_RE.search(sentence):
        listed = [
            n
            for span in _BACKTICK_RE.findall(sentence)
            for n in _DOTTED_RE.findall(_strip_strings(span))
        ]
        # "`r` and `math.pi` are its parameters": a listed name that is neither a parameter nor
        # the function itself, in a sentence about its parameters.
        code_names = [n for n in listed if n != sig.name and n not in _COMMON_CODE_WORDS]
        if code_names and any(n in sig.param_names for n in code_names):
            for n in code_names:
                if n not in sig.param_names and n.split(".")[0] not in sig.param_names:
                    return f"`{n}` is not a parameter of {what}"
    about_it = re.match(
        rf"^\W*(it|this|the (function|method|code)|`?{re.escape(sig.name or 'it')}`?)\b",
        sentence,
        re.IGNORECASE,
    )
    if sig.returns_known and sig.kind != "class" and about_it:
        if sig.returns_value and _PROSE_NO_RETURN_RE.search(sentence):
            return f"{what} returns a value"
        if not sig.is_generator and _PROSE_YIELDS_RE.search(sentence):
            return f"{what} is not a generator"
    return ""


# Constructs a sentence may say the code uses, and the Python nodes that would show it.
_CONSTRUCTS: tuple[tuple[re.Pattern[str], str, tuple[type[ast.AST], ...]], ...] = (
    (re.compile(r"\blambda", re.I), "`lambda`", (ast.Lambda,)),
    (re.compile(r"\blist comprehension", re.I), "list comprehension", (ast.ListComp,)),
    (re.compile(r"\bdict(ionary)? comprehension", re.I), "dict comprehension", (ast.DictComp,)),
    (re.compile(r"\bset comprehension", re.I), "set comprehension", (ast.SetComp,)),
    (re.compile(r"\bgenerator expression", re.I), "generator expression", (ast.GeneratorExp,)),
    (re.compile(r"\bwhile loop", re.I), "`while` loop", (ast.While,)),
    (re.compile(r"\bfor loop", re.I), "`for` loop", (ast.For, ast.AsyncFor, ast.comprehension)),
    (re.compile(r"\b(try|except)\b", re.I), "`try` statement", (ast.Try, ast.TryStar)),
    (re.compile(r"\bf-strings?\b", re.I), "f-string", (ast.JoinedStr,)),
    (re.compile(r"\bcontext manager|\bwith statement", re.I), "`with` statement", (ast.With,)),
)
_RECURSION_RE = re.compile(r"\brecursi(ve|vely|on)\b", re.I)
_DOCSTRING_RE = re.compile(r"\bdocstring", re.I)


def python_constructs(code: str) -> tuple[set[type[ast.AST]], set[str]] | None:
    """The node types in `code` and the names it calls; None when it does not parse."""
    try:
        tree = ast.parse(textwrap.dedent(code))
    except (SyntaxError, ValueError):
        return None
    kinds: set[type[ast.AST]] = set()
    called: set[str] = set()
    if any(
        ast.get_docstring(n, clean=False) is not None
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module)
    ):
        called.add("<docstring>")
    for node in ast.walk(tree):
        kinds.add(type(node))
        if isinstance(node, ast.Call):
            target = node.func
            called.add(target.attr if isinstance(target, ast.Attribute) else ast.unparse(target))
    return kinds, called


def construct_problem(
    sentence: str, constructs: tuple[set[type[ast.AST]], set[str]], name: str
) -> str:
    """Why a sentence's claim about what the code uses is wrong ("" when none is)."""
    kinds, called = constructs
    for pattern, words, nodes in _CONSTRUCTS:
        if pattern.search(sentence) and not any(n in kinds for n in nodes):
            return f"the code has no {words}"
    if _DOCSTRING_RE.search(sentence) and "<docstring>" not in called:
        return "the code has no docstring"
    if name and _RECURSION_RE.search(sentence) and name not in called:
        return f"`{name}` does not call itself"
    return ""


# -- repetition and endings --------------------------------------------------------------------


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def near_duplicate(a: str, b: str, threshold: float = NEAR_DUPLICATE) -> bool:
    """Two sentences say the same: token-set Jaccard or difflib ratio at least `threshold`."""
    ta, tb = _tokens(a), _tokens(b)
    if not ta or not tb:
        return False
    if min(len(ta), len(tb)) < 4:
        return ta == tb
    sa, sb = set(ta), set(tb)
    if len(sa & sb) / len(sa | sb) >= threshold:
        return True
    return difflib.SequenceMatcher(None, " ".join(ta), " ".join(tb)).ratio() >= threshold


def drop_repeated_clauses(sentence: str) -> str:
    """A sentence that loops inside itself ("a, b, a, b, a, ...") keeps each clause once."""
    parts = re.split(r"(?<=[;,])\s+", sentence)
    if len(parts) < 3:
        return sentence
    kept: list[str] = []
    for part in parts:
        if any(near_duplicate(part.rstrip(",;"), k.rstrip(",;")) for k in kept):
            continue
        kept.append(part)
    if len(kept) == len(parts):
        return sentence
    out = " ".join(kept).rstrip(",; ")
    return out if _SENTENCE_END_RE.search(out) else out + "."


def split_sentences(line: str) -> list[str]:
    return [s for s in _SENTENCE_SPLIT_RE.split(line.strip()) if s.strip()]


def complete_ending(text: str) -> str:
    """`text` cut back to its last complete sentence (a text cut by the token limit)."""
    text = text.rstrip()
    if not text or _SENTENCE_END_RE.search(text):
        return text
    if text.count("```") % 2 == 1:  # an open code block
        return complete_ending(text[: text.rfind("```")])
    best = -1
    for match in re.finditer(r"[.!?][`'\")\]*_]*(?=\s)", text):
        best = match.end()
    cut_line = text.rfind("\n")
    if best < 0 and cut_line < 0:
        return ""
    return text[: max(best, cut_line)].rstrip()


# -- the whole check -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Removed:
    text: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "reason": self.reason}


@dataclass
class CheckedExplanation:
    """The explanation after the check: markdown body, what was dropped, whether to trust it."""

    body: str
    removed: list[Removed] = field(default_factory=list)
    reliable: bool = True
    fields: dict[str, str] = field(default_factory=dict)  # structured style
    filled: list[str] = field(default_factory=list)  # fields taken from the code
    claims: int = 0  # the model's sentences/fields that were judged
    wrong: int = 0  # of those, wrong (not duplicates)
    code_fields: dict[str, str] = field(default_factory=dict)  # Takes/Returns from the code

    @property
    def repair_reasons(self) -> list[str]:
        return [r.reason for r in self.removed if r.reason != "repeats an earlier sentence"]


@dataclass(frozen=True)
class CodeFacts:
    """What the check compares the explanation with."""

    code: str
    file_text: str
    language_id: str
    first_line: int = 1
    display_name: str = ""
    example: str = ""  # the worked example in the prompt: copying it is not explaining

    def known(self) -> Known:
        return Known.of(self.code, self.file_text, self.language_id, self.display_name)

    def signature(self) -> Signature | None:
        return signature_of(self.code, self.language_id, self.first_line)


class _Judge:
    """Keeps the sentences that pass; remembers the ones that do not."""

    def __init__(self, facts: CodeFacts) -> None:
        self.known = facts.known()
        self.sig = facts.signature()
        self.constructs = python_constructs(facts.code) if facts.language_id == "python" else None
        self.kept: list[str] = []
        self.removed: list[Removed] = []
        self.claims = 0
        self.wrong = 0
        self.example = [
            s
            for line in facts.example.split("\n")
            for s in split_sentences(_FIELD_RE.sub(r"\2", line))
        ]

    def sentence(self, sentence: str, prose_claims: bool = True) -> str | None:
        """The sentence to keep (maybe shortened), or None when it is dropped."""
        sentence = drop_repeated_clauses(sentence)
        seen = [*self.kept, *(r.text for r in self.removed)]
        if any(near_duplicate(sentence, k) for k in seen):
            self.removed.append(Removed(sentence, "repeats an earlier sentence"))
            return None
        self.claims += 1
        if any(near_duplicate(sentence, e) for e in self.example):
            self.wrong += 1
            self.removed.append(Removed(sentence, "copies the example in the prompt"))
            return None
        missing = missing_names(sentence, self.known)
        if missing:
            self.wrong += 1
            self.removed.append(Removed(sentence, f"`{missing[0]}` does not appear in the code"))
            return None
        problem = ""
        if self.constructs is not None:
            name = self.sig.name if self.sig is not None else ""
            problem = construct_problem(sentence, self.constructs, name)
        if not problem and prose_claims and self.sig is not None:
            problem = prose_claim_problem(sentence, self.sig)
        if problem:
            self.wrong += 1
            self.removed.append(Removed(sentence, problem))
            return None
        self.kept.append(sentence)
        return sentence


def check_prose(raw: str, facts: CodeFacts, cut: bool) -> CheckedExplanation:
    """Free prose: drop ungrounded, wrong and repeated sentences; end on a whole sentence."""
    judge = _Judge(facts)
    last_line = raw.strip().rsplit("\n", 1)[-1].strip()
    plain_last = bool(last_line) and not re.match(r"^([-*#>|]|\d+\.|```)", last_line)
    cut = cut or plain_last  # prose that stops without a full stop stopped mid-sentence
    text = complete_ending(raw) if cut else raw.strip()
    if cut and text != raw.strip():
        judge.removed.append(
            Removed(raw.strip()[len(text) :].strip(), "cut off by the token limit")
        )
    paragraphs: list[str] = []
    for block in _blocks(text):
        if block.startswith("```"):
            if not any(near_duplicate(block, p) for p in paragraphs if p.startswith("```")):
                paragraphs.append(block)
            continue
        lines: list[str] = []
        for line in block.split("\n"):
            prefix = re.match(r"^\s*(?:[-*]|\d+\.)\s+", line)
            head = prefix.group(0) if prefix else ""
            kept = [k for s in split_sentences(line[len(head) :]) if (k := judge.sentence(s))]
            if kept:
                lines.append(head + " ".join(kept))
        if lines:
            paragraphs.append("\n".join(lines))
    body = "\n\n".join(paragraphs)
    reliable = bool(judge.kept) and judge.wrong <= UNRELIABLE_SHARE * max(1, judge.claims)
    return CheckedExplanation(
        body,
        judge.removed,
        reliable,
        claims=judge.claims,
        wrong=judge.wrong,
        code_fields=_code_fields(judge.sig),
    )


def _code_fields(sig: Signature | None) -> dict[str, str]:
    if sig is None:
        return {}
    return {"Takes": sig.takes_text(), "Returns": sig.returns_text()}


def _blocks(text: str) -> list[str]:
    """Paragraphs, with each fenced code block kept whole."""
    out: list[str] = []
    buf: list[str] = []
    in_code = False
    for line in text.split("\n"):
        if line.strip().startswith("```"):
            if not in_code:
                if buf:
                    out.append("\n".join(buf).strip())
                buf = [line]
                in_code = True
                continue
            buf.append(line)
            out.append("\n".join(buf).strip())
            buf, in_code = [], False
            continue
        if not in_code and not line.strip():
            if buf:
                out.append("\n".join(buf).strip())
            buf = []
            continue
        buf.append(line)
    if buf:
        out.append("\n".join(buf).strip())
    return [b for b in out if b]


def parse_fields(raw: str) -> dict[str, str]:
    """Summary / Takes / Returns / Notes from the model's answer; text before the first label is
    the summary, lines without a label continue the field above, a second form is ignored."""
    fields: dict[str, str] = {}
    current = "Summary"
    for line in raw.strip().split("\n"):
        match = _FIELD_RE.match(line)
        if match:
            name = match.group(1).capitalize()
            if fields.get(name):
                current = ""  # the model starts over: ignore the second copy
                continue
            current = name
            fields[current] = match.group(2).strip().rstrip("*").strip()
            continue
        if current and line.strip():
            fields[current] = (fields.get(current, "") + "\n" + line.rstrip()).strip()
    return {k: v for k, v in fields.items() if v}


def check_structured(raw: str, facts: CodeFacts, cut: bool) -> CheckedExplanation:
    """The four-field form: each field checked; Takes/Returns from the code when wrong."""
    judge = _Judge(facts)
    parsed = parse_fields(raw)
    out: dict[str, str] = {}
    filled: list[str] = []
    last = next((f for f in reversed(FIELDS) if f in parsed), "")
    for name in FIELDS:
        value = parsed.get(name, "")
        if cut and name == last:
            shorter = complete_ending(value)
            if shorter != value:
                judge.removed.append(
                    Removed(value[len(shorter) :].strip(), "cut off by the token limit")
                )
            value = shorter
        if not value:
            continue
        if value.startswith("```") or "\n```" in value:
            value = _blocks(value)[0] if not value.startswith("```") else ""
        sentences = [
            s for line in value.split("\n") for s in split_sentences(line.lstrip("-* ").strip())
        ]
        claims = name in ("Summary", "Notes")
        kept = [k for s in sentences if (k := judge.sentence(s, prose_claims=claims))]
        while kept and kept[-1].rstrip("*").endswith(":"):  # introduces what never came
            judge.removed.append(Removed(kept.pop(), "introduces text that is not there"))
        out[name] = " ".join(kept)
    sig = judge.sig
    if sig is not None:
        for name, problem_of, fill in (
            ("Takes", takes_problem, sig.takes_text),
            ("Returns", returns_problem, sig.returns_text),
        ):
            value = out.get(name, "")
            problem = problem_of(value, sig) if value else ""
            if problem and name == "Takes" and problem.startswith("it leaves out"):
                missing = [p for p in sig.params if p.name not in _WORD_RE.findall(value)]
                out[name] = (
                    value.rstrip(".") + "; also " + "; ".join(p.describe() for p in missing) + "."
                )
                filled.append(name)
                judge.removed.append(Removed(value, problem + " (added from the signature)"))
                continue
            if problem:
                judge.wrong += 1
                judge.removed.append(Removed(value, problem))
            if problem or not value:
                out[name] = fill()
                filled.append(name)
    own = [n for n in ("Summary", "Notes") if out.get(n)]
    reliable = bool(own) and judge.wrong <= UNRELIABLE_SHARE * max(1, judge.claims)
    body = render_structured(out)
    return CheckedExplanation(
        body,
        judge.removed,
        reliable,
        fields=out,
        filled=filled,
        claims=judge.claims,
        wrong=judge.wrong,
        code_fields=_code_fields(sig),
    )


def render_structured(fields: dict[str, str]) -> str:
    """Markdown: the summary as a sentence, then Takes / Returns / Notes as a short list."""
    parts: list[str] = []
    if fields.get("Summary"):
        parts.append(fields["Summary"])
    items = [f"- **{name}:** {fields[name]}" for name in FIELDS[1:] if fields.get(name)]
    if items:
        parts.append("\n".join(items))
    return "\n\n".join(parts)


def unreliable_body(checked: CheckedExplanation) -> str:
    """What to show when too little of the model's text survived: say so, plus code facts."""
    facts = checked.code_fields
    text = f"_{UNRELIABLE_TEXT}_"
    if facts:
        text += "\n\nFrom the code itself:\n\n" + "\n".join(
            f"- **{name}:** {value}" for name, value in facts.items()
        )
    return text


def check_explanation(
    raw: str, facts: CodeFacts, style: str = "structured", cut: bool = False
) -> CheckedExplanation:
    """Check `raw` (the model's answer) against `facts`; `cut`: it ended at the token limit."""
    if style == "structured":
        return check_structured(raw, facts, cut)
    return check_prose(raw, facts, cut)
