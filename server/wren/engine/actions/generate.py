"""Generate from a comment or docstring: plan (optional) -> write -> verify -> repair.

The spec is the comment at/above the cursor, or a function's signature and docstring when the
cursor is in a function that has nothing else. The code is inserted below the comment (or as
the function's body, replacing a `pass`/`...` stub) and returned as an edit.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from wren.engine.actions.examples import examples_from_docstring, examples_in_code
from wren.engine.actions.extract import (
    Extracted,
    drop_example_usage,
    function_body,
    function_named,
)
from wren.engine.actions.lang_checks import language_runner
from wren.engine.actions.layout import (
    dedent,
    detect_eol,
    detect_indent_unit,
    normalize_eol,
    reindent,
    to_eol,
)
from wren.engine.actions.llm import ActionModel, CodeAnswer, ask_for_text, complete_code
from wren.engine.actions.loop import (
    Candidate,
    Runner,
    VerifyOptions,
    run_examples,
    write_verify_repair,
)
from wren.engine.actions.outcome import EditOutcome, ProposedEdit, refused
from wren.engine.actions.prompts import (
    generate_from_comment_messages,
    generate_from_function_messages,
    plan_messages,
)
from wren.engine.actions.regions import BadInput, GenerateSpec, check_document, find_generate_spec
from wren.engine.actions.verify import CheckResult, python_syntax_error
from wren.types import CancelToken

PLAN_TOKENS = 96


@dataclass(frozen=True)
class GenerateRequest:
    text: str
    language_id: str
    offset: int  # the cursor
    path: str = ""
    plan: bool = False  # run the analyst step first


def _title(spec: GenerateSpec) -> str:
    if spec.kind == "docstring":
        return f"Generate the body of {spec.function_name}()"
    words = spec.request if len(spec.request) <= 50 else spec.request[:47] + "..."
    return f"Generate: {words}"


def _support_code(code: str, body: str, target: str, document: str) -> str:
    """Top-level imports and helper functions of the answer that the body uses.

    They become the first lines of the body, so the answer's `import math` or helper function
    comes along with it.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", body))
    lines = code.split("\n")
    parts: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = {(a.asname or a.name).split(".")[0] for a in node.names}
            if names & used and not all(_imported(n, document) for n in names):
                parts.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
        elif (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name != target
            and node.name in used
            and not re.search(rf"\bdef {node.name}\b", document)
        ):
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            parts.append(dedent("\n".join(lines[start - 1 : node.end_lineno])))
    return "\n".join(parts) + "\n" if parts else ""


def _imported(name: str, document: str) -> bool:
    """Whether `document` already has an import statement that binds `name`."""
    pattern = rf"^[ \t]*(?:import|from)[ \t][^\n]*\b{re.escape(name)}\b"
    return re.search(pattern, document, re.MULTILINE) is not None


def _strip_existing_imports(code: str, document: str) -> str:
    """Drop import lines the document already has (the model repeats the context)."""
    present = {line.strip() for line in normalize_eol(document).split("\n")}
    lines = code.split("\n")
    out = [
        line
        for line in lines
        if not (line.startswith(("import ", "from ")) and line.strip() in present)
    ]
    return "\n".join(out).lstrip("\n")


def _is_stub(body: str) -> bool:
    meaningful = [
        line.strip()
        for line in body.split("\n")
        if line.strip() and not line.strip().startswith("#")
    ]
    return all(
        line in ("pass", "...", "raise NotImplementedError", "raise NotImplementedError()")
        for line in meaningful
    )


def _strip_echoed_comment(code: str, request: str) -> str:
    """Drop leading comment lines that repeat the request."""
    lines = code.split("\n")
    words = set(re.findall(r"\w+", request.lower()))
    while lines and lines[0].strip().startswith(("#", "//")):
        said = set(re.findall(r"\w+", lines[0].lower()))
        if said and len(said & words) >= max(1, len(said) // 2):
            lines.pop(0)
        else:
            break
    return "\n".join(lines)


def _cut_at_dedent(text: str, def_indent: int) -> str:
    """The body lines of a completion: stop at the first line not deeper than the `def`."""
    out = []
    for line in normalize_eol(text).split("\n"):
        if line.strip() and len(line) - len(line.lstrip()) <= def_indent:
            break
        out.append(line)
    return "\n".join(out).rstrip() + "\n"


def generate(
    model: ActionModel, request: GenerateRequest, options: VerifyOptions, cancel: CancelToken
) -> EditOutcome:
    """Propose code for the comment/docstring at the cursor (nothing is written)."""
    text = request.text
    calls_before = model.calls
    try:
        check_document(text, "generate code from")
        spec = find_generate_spec(request.language_id, text, request.offset)
    except BadInput as err:
        return refused(str(err), "Generate")
    title = _title(spec)
    eol = detect_eol(text)
    unit = detect_indent_unit(text)
    lang = request.language_id
    header = dedent(normalize_eol(spec.header_code)).rstrip() + "\n" if spec.header_code else ""

    plan = ""
    if request.plan:
        plan = ask_for_text(
            model,
            plan_messages(header or spec.request, lang),
            cancel,
            max_new_tokens=PLAN_TOKENS,
        )

    if spec.kind == "docstring":
        messages = generate_from_function_messages(header, lang, spec.context, plan)
    else:
        messages = generate_from_comment_messages(spec.request, lang, spec.context, plan)

    def build(code: str) -> Candidate | str:
        code = normalize_eol(code)
        if spec.kind == "docstring":
            name = spec.function_name
            body = function_body(code, name)
            if body is None:
                syntax = python_syntax_error(code)
                if syntax is not None and re.search(r"^\s*def\s", code, re.MULTILINE):
                    return f"the answer does not parse (line {syntax[0] + 1}: {syntax[1]})"
                if function_named(code, name) is not None:
                    return f"the answer has no body for `{name}`"
                if re.search(r"^\s*def\s", code, re.MULTILINE):
                    return f"the answer does not define `{name}`"
                body = dedent(code).strip("\n") + "\n"  # the model wrote just the body
            body = _support_code(code, body, name, text) + body
            new_code = body
            shown = header + reindent(body, "    ", "    ") + "\n"
        else:
            if lang == "python":
                code = drop_example_usage(code)
            code = _strip_existing_imports(_strip_echoed_comment(code, spec.request), text)
            new_code = dedent(code).strip("\n") + "\n"
            shown = new_code
        if not new_code.strip() or _is_stub(new_code):
            return "the answer is only a stub; write the actual code"
        inserted = reindent(new_code.rstrip("\n"), spec.indent, unit) + "\n"
        if spec.needs_leading_eol:
            inserted = "\n" + inserted
        inserted = to_eol(inserted, eol)
        edit = ProposedEdit(spec.insert_start, spec.insert_end, inserted)
        new_document = edit.apply(text)
        first_row = text.count("\n", 0, spec.insert_start)
        last_row = first_row + normalize_eol(inserted).rstrip("\n").count("\n")
        return Candidate(edit, new_document, first_row, last_row, shown)

    if spec.kind == "docstring":
        docstring_examples = examples_in_code(header, {spec.function_name}) or (
            examples_from_docstring(header, {spec.function_name})
        )
    else:
        docstring_examples = []

    def run(candidate: Candidate, cancel: CancelToken) -> CheckResult:
        examples = docstring_examples or (
            examples_in_code(candidate.code) if spec.kind == "comment" else []
        )
        return run_examples(candidate, examples, options, cancel)

    runner: Runner | None = run if options.run_code and lang == "python" else None
    runner = runner or language_runner(lang, text, options)  # its own checker

    first = None
    if not model.chat:

        def completion_answer() -> CodeAnswer:
            prompt = normalize_eol(text[: spec.insert_start])
            if spec.kind == "docstring":
                raw = complete_code(model, prompt, cancel, stop=("\nclass ", "\nif __name__"))
                body = _cut_at_dedent(raw, len(spec.indent.expandtabs(4)) - 4)
                code = header + reindent(body, "    ", "    ")
            else:
                raw = complete_code(model, prompt, cancel, stop=("\n\n\n",))
                code = raw
            return CodeAnswer(Extracted(code if code.strip() else None, "no code"), raw)

        first = completion_answer

    outcome = write_verify_repair(
        model, messages, lang, text, build, options, cancel, title, runner, first_answer=first
    )
    outcome.plan = plan
    outcome.model_calls = model.calls - calls_before
    return outcome
