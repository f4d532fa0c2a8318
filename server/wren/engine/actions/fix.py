"""Fix: rewrite the code around a problem, check the rewrite, offer it as an edit."""

from __future__ import annotations

import ast
import difflib
import keyword
import re
from dataclasses import dataclass

from wren.engine.actions.examples import examples_in_code
from wren.engine.actions.extract import drop_example_usage, function_body, function_named
from wren.engine.actions.lang_checks import language_runner
from wren.engine.actions.layout import (
    dedent,
    detect_eol,
    detect_indent_unit,
    normalize_eol,
    region_indent,
    reindent,
    to_eol,
)
from wren.engine.actions.llm import ActionModel
from wren.engine.actions.loop import (
    Candidate,
    Runner,
    VerifyOptions,
    run_examples,
    write_verify_repair,
)
from wren.engine.actions.outcome import EditOutcome, minimal_edit, refused
from wren.engine.actions.prompts import fix_messages
from wren.engine.actions.regions import (
    BadInput,
    Region,
    check_document,
    check_region_text,
    fix_region,
)
from wren.engine.actions.verify import (
    CheckResult,
    code_identifiers,
    python_syntax_error,
    syntax_error_in,
    undefined_names,
)
from wren.types import CancelToken


@dataclass(frozen=True)
class FixRequest:
    text: str
    language_id: str
    start: int  # the selection or the diagnostic's range (start == end: just the cursor)
    end: int
    problems: tuple[str, ...] = ()  # diagnostic messages, from any source
    path: str = ""


def undefined_in_region(request: FixRequest, region: Region) -> list[str]:
    """Python: names the region reads that nothing in the document defines (a typo, a missing
    import) -- what an editor's "X is not defined" diagnostic would say, found by Wren itself."""
    if request.language_id != "python":
        return []
    text = normalize_eol(request.text)
    names = undefined_names(text)
    if not names:
        return []
    in_region = code_identifiers(region.text_of(text))
    return sorted(n for n in names if n in in_region)


def problems_in(request: FixRequest, region: Region, undefined: list[str]) -> list[str]:
    """The given diagnostics plus a syntax error Wren finds in the region and its `undefined`
    names (`undefined_in_region`)."""
    problems = [p.strip() for p in request.problems if p.strip()]
    text = normalize_eol(request.text)
    found: str | None = None
    if request.language_id == "python":
        err = python_syntax_error(text)
        if err is not None and region.first_row <= err[0] <= region.last_row + 1:
            found = f"syntax error on line {err[0] - region.first_row + 1}: {err[1]}"
    if found is None:
        err_text = syntax_error_in(request.language_id, text, region.first_row, region.last_row)
        if err_text is not None:
            found = err_text
    if found is not None and not any("syntax" in p.lower() for p in problems):
        problems.append(found)
    for name in undefined:
        if not any(name in p for p in problems):
            near = near_name(name, text)
            problems.append(
                f'"{name}" is not defined' + (f'. Did you mean "{near}"?' if near else "")
            )
    return problems


def near_name(name: str, text: str) -> str | None:
    """The identifier in `text` closest in spelling to the undefined `name` (`itme` ->
    `item`), as Python's own NameError suggests one; None when nothing is close."""
    words = code_identifiers(text) - {name} - set(keyword.kwlist)
    close = difflib.get_close_matches(name, sorted(words), n=1, cutoff=0.75)
    return close[0] if close else None


def _title(problems: list[str], region: Region) -> str:
    if problems:
        first = problems[0].split("\n")[0]
        return "Fix: " + (first if len(first) <= 60 else first[:57] + "...")
    return f"Fix lines {region.first_row + 1}-{region.last_row + 1}"


# Diagnostics about layout, which a change of whitespace or comments alone can fix.
_LAYOUT_PROBLEM = re.compile(
    r"whitespace|blank line|line too long|indent|spacing|format|comment|\b[EW][1-3]\d\d\b",
    re.IGNORECASE,
)


def _has_top_level_statements_after_defs(code: str) -> bool:
    return drop_example_usage(code) != code.rstrip() + "\n"


def fix(
    model: ActionModel, request: FixRequest, options: VerifyOptions, cancel: CancelToken
) -> EditOutcome:
    """Propose a verified replacement for the code at the request's range (nothing is written)."""
    text = request.text
    try:
        check_document(text, "fix")
        selected = text[request.start : request.end]
        if request.end > request.start and not request.problems:
            check_region_text(selected, "fix")  # a whitespace-only selection is a mistake
        region = fix_region(request.language_id, text, request.start, request.end)
        check_region_text(region.text_of(text), "fix")
    except BadInput as err:
        return refused(str(err), "Fix")
    undefined_before = undefined_in_region(request, region)
    problems = problems_in(request, region, undefined_before)
    title = _title(problems, region)
    eol = detect_eol(text)
    unit = detect_indent_unit(text)
    original = region.text_of(text)
    base = region_indent(text, region.start)
    shown = dedent(normalize_eol(original)).strip("\n") + "\n"
    keep_trailing_statements = _has_top_level_statements_after_defs(shown)
    ends_with_break = original.endswith(("\n", "\r"))

    documented = split_docstring(shown) if request.language_id == "python" else None
    layout_problem = any(_LAYOUT_PROBLEM.search(p) for p in problems)

    def build(code: str) -> Candidate | str:
        if request.language_id == "python" and not keep_trailing_statements:
            code = drop_example_usage(code)
        code = dedent(normalize_eol(code)).strip("\n")
        if not code.strip():
            return "the answer was empty"
        answer = code
        if documented is not None:
            spliced = documented.splice(code)
            if spliced is None:
                syntax = python_syntax_error(code)
                if syntax is not None:
                    return f"the answer does not parse (line {syntax[0] + 1}: {syntax[1]})"
                return f"the answer does not contain the function `{documented.name}`"
            code = spliced
        seen = documented.without_docstring if documented is not None else shown
        if _drops_most_code(seen, answer):
            return (
                "the answer drops most of the original code; rewrite the whole code shown, "
                "changing only what is needed"
            )
        new_region = reindent(code, base, unit)
        if ends_with_break:
            new_region += "\n"
        new_region = to_eol(new_region, eol)
        edit = minimal_edit(text, region.start, region.end, new_region)
        new_document = edit.apply(text)
        still = undefined_names(normalize_eol(new_document)) or set()
        left = [n for n in undefined_before if n in still]
        if left:  # a fix of the region must not leave its own undefined names in place
            near = near_name(left[0], normalize_eol(text))
            hint = f'did you mean "{near}"?' if near else "use a name the code defines"
            return f'"{left[0]}" is still not defined; {hint}'
        first_row = region.first_row
        last_row = first_row + normalize_eol(new_region).rstrip("\n").count("\n")
        # A layout diagnostic (line too long, blank lines...) is fixed by whitespace alone;
        # otherwise a rewrite must change the code, not only whitespace, comments, docstrings.
        replaces = None if layout_problem else shown
        return Candidate(
            edit, new_document, first_row, last_row, answer + "\n", replaces, code + "\n"
        )

    # The user's examples (docstrings of the original code), not ones the model rewrote.
    given_examples = examples_in_code(shown) if request.language_id == "python" else []

    def run(candidate: Candidate, cancel: CancelToken) -> CheckResult:
        names = _defined_names(candidate.code)
        examples = [e for e in given_examples if any(n in e.call for n in names)]
        return run_examples(candidate, examples, options, cancel)

    runner: Runner | None = run if options.run_code and request.language_id == "python" else None
    runner = runner or language_runner(request.language_id, text, options)  # its own checker

    if documented is not None:
        messages = fix_messages(
            documented.without_docstring, request.language_id, problems, documented.docstring
        )
    else:
        messages = fix_messages(shown, request.language_id, problems)
    # Room for the whole rewritten code (the answer repeats it) plus some slack.
    saved = model.max_code_tokens
    model.max_code_tokens = max(saved, min(1024, int(model.tokens(shown) * 1.3) + 64))
    try:
        return write_verify_repair(
            model, messages, request.language_id, text, build, options, cancel, title, runner
        )
    finally:
        model.max_code_tokens = saved


@dataclass(frozen=True)
class DocumentedFunction:
    """A region that is one Python function with a docstring.

    The model is shown the function without its docstring (the docstring becomes the task
    description), so it does not spend its tokens copying prose; its body is then spliced
    under the original signature and docstring, which it therefore cannot damage.
    """

    name: str
    header: str  # decorators, signature and docstring, as in the original
    signature: str  # ast dump of the arguments and return annotation
    docstring: str
    without_docstring: str

    def _only_drops_annotations(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        """The model kept the parameters but left out annotations (small models often do):
        that is no change to make, so its body goes under the original signature."""
        original = function_named(self.header + "    pass\n", self.name)
        if original is None or _bare(node) != _bare(original):
            return False
        mine, theirs = _annotations(original), _annotations(node)
        if len(mine) != len(theirs):
            return False
        return all(t is None or t == m for m, t in zip(mine, theirs, strict=True))

    def splice(self, answer: str) -> str | None:
        node = function_named(answer, self.name)
        if node is None:
            if re.search(r"^\s*(def|class)\s", answer, re.MULTILINE):
                return None
            body = dedent(answer).strip("\n") + "\n"  # just the body
        else:
            if _signature(node) != self.signature and not self._only_drops_annotations(node):
                return answer  # the model changed the signature: take its whole function
            found = function_body(answer, self.name)
            if found is None:
                return None
            body = found
        body_indent = "    "
        return self.header.rstrip("\n") + "\n" + reindent(body.rstrip("\n"), body_indent)


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return ast.dump(node.args) + "->" + (ast.dump(node.returns) if node.returns else "")


def _annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str | None]:
    a = node.args
    params = [*a.posonlyargs, *a.args, a.vararg, *a.kwonlyargs, a.kwarg]
    found = [p.annotation if p is not None else None for p in params] + [node.returns]
    return [ast.dump(x) if x is not None else None for x in found]


def _bare(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The signature without annotations (a copy; `node` is untouched)."""
    copy = ast.parse(ast.unparse(node.args).join(("def f(", "): pass"))).body[0]
    assert isinstance(copy, ast.FunctionDef)
    a = copy.args
    for param in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
        if param is not None:
            param.annotation = None
    return ast.dump(a)


def split_docstring(code: str) -> DocumentedFunction | None:
    """`code` as a `DocumentedFunction` when it is exactly one function with a docstring."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    fn = tree.body[0]
    doc = ast.get_docstring(fn)
    if not doc or len(fn.body) < 2:
        return None
    doc_node = fn.body[0]
    lines = code.split("\n")
    doc_first, doc_last = doc_node.lineno - 1, doc_node.end_lineno or doc_node.lineno
    if lines[doc_first][: doc_node.col_offset].strip():
        return None  # the docstring shares its line with the signature
    header = "\n".join(lines[:doc_last]) + "\n"
    without = "\n".join(lines[:doc_first] + lines[doc_last:]).rstrip("\n") + "\n"
    return DocumentedFunction(fn.name, header, _signature(fn), doc, without)


MIN_LINES_FOR_SHRINK_CHECK = 8


def _drops_most_code(original: str, answer: str) -> bool:
    """A fix that keeps less than half of a longer original deleted code it should keep."""
    before = sum(1 for line in original.split("\n") if line.strip())
    after = sum(1 for line in answer.split("\n") if line.strip())
    return before >= MIN_LINES_FOR_SHRINK_CHECK and after < before / 2


def _defined_names(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
