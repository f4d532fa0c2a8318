"""Examples written in docstrings, turned into checks that can run against a candidate.

Docstrings show examples in many shapes; the common ones are understood:

    >>> add(2, 3)            (doctest; the expected value on the next line)
    5
    add(2, 3) == 5
    add(2, 3) ➞ 5            (also ->, =>, →)
    add(2, 3) should return 5 / returns 5 / = 5

Each example becomes a call and an expected value (a Python expression). The check script
runs every example and reports each failure as "add(2, 3) returned 6, expected 5".
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    call: str
    expected: str  # a Python expression

    def describe(self) -> str:
        return f"{self.call} == {self.expected}"


_ARROW = re.compile(
    r"^(?P<call>.+?\))\s*(?:==>|==|➞|->|=>|→|\u27f6|#\s*(?:returns?|=>|->)|should\s+return"
    r"|returns?|=)\s*(?P<exp>.+?)\s*$"
)


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _is_literal(node: ast.AST) -> bool:
    """Constants, containers, and arithmetic on them: what examples pass as arguments.

    "f(a) => 1" in prose names no variable `a`; such examples would only mislead."""
    return all(
        not isinstance(n, ast.Name) or n.id in ("True", "False", "None")
        for n in ast.walk(node)
        if not isinstance(n, ast.Call)
    ) and not any(isinstance(n, ast.Call) for n in ast.walk(node))


def _calls_one_of(call: str, names: set[str]) -> bool:
    try:
        tree = ast.parse(call, mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in names:
                args = [*node.args, *(k.value for k in node.keywords)]
                return all(_is_literal(a) for a in args)
    return False


def _clean_expected(text: str) -> str:
    text = text.strip().rstrip(".,;")
    # Trailing explanations: "3 (because ...)", "True # comment"
    text = re.split(r"\s+#", text)[0].strip()
    if not _is_expression(text):
        m = re.match(r"^(.*?\S)\s*\(.*\)$", text)
        if m and _is_expression(m.group(1)):
            text = m.group(1)
    return text


def examples_from_docstring(doc: str, names: set[str]) -> list[Example]:
    """Examples in `doc` whose call names one of `names` (the function(s) under test)."""
    found: list[Example] = []
    seen: set[tuple[str, str]] = set()
    lines = doc.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(">>>"):
            call = line[3:].strip()
            expected_lines = []
            j = i + 1
            while j < len(lines):
                nxt = lines[j].strip()
                if not nxt or nxt.startswith(">>>") or nxt.strip("\"'") == "":
                    break  # a blank line, the next example, or the docstring's closing quotes
                expected_lines.append(nxt)
                j += 1
            expected = " ".join(expected_lines)
            i = j
            if not expected and " == " in call:  # ">>> f(1) == 2"
                call, expected = (part.strip() for part in call.split(" == ", 1))
            if not expected or not _calls_one_of(call, names):
                continue
            if _is_expression(call) and _is_expression(expected):
                key = (call, expected)
                if key not in seen:
                    seen.add(key)
                    found.append(Example(call, expected))
            continue
        for candidate in _arrow_candidates(line):
            m = _ARROW.match(candidate)
            if not m:
                continue
            call, expected = m.group("call").strip(), _clean_expected(m.group("exp"))
            call = re.sub(r"^(?:for example|example|e\.g\.|>>>)[:,]?\s*", "", call, flags=re.I)
            if (
                _calls_one_of(call, names)
                and _is_expression(call)
                and expected
                and _is_expression(expected)
            ):
                key = (call, expected)
                if key not in seen:
                    seen.add(key)
                    found.append(Example(call, expected))
                break
        i += 1
    return found


def _arrow_candidates(line: str) -> list[str]:
    """The line, and the part after a leading label such as "Example 1:" or "- "."""
    out = [line]
    stripped = re.sub(r"^(?:[-*•]\s*|example\s*\d*\s*:\s*|input:\s*)", "", line, flags=re.I)
    if stripped != line:
        out.append(stripped)
    return out


def docstrings_of(code: str) -> dict[str, str]:
    """Function name -> its docstring, for every function in `code` (that parses)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {}
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                out[node.name] = doc
    return out


def examples_in_code(code: str, only: set[str] | None = None) -> list[Example]:
    """Examples from the docstrings of the functions in `code` (or of the names in `only`)."""
    found: list[Example] = []
    for name, doc in docstrings_of(code).items():
        if only is not None and name not in only:
            continue
        found.extend(examples_from_docstring(doc, {name}))
    return found


def check_script(module_code: str, examples: list[Example], test_code: str = "") -> str:
    """A script: the module, then every example (and `test_code`); exit status 1 on failure."""
    checks = [
        "",
        "",
        "def __wren_check_examples():",
        "    import math as __m",
        "    __failures = []",
        "    def __same(a, b):",
        "        if isinstance(a, float) or isinstance(b, float):",
        "            try:",
        "                return __m.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)",
        "            except TypeError:",
        "                return a == b",
        "        return a == b",
    ]
    for ex in examples:
        call, expected = ex.call, ex.expected
        checks += [
            "    try:",
            f"        __got = ({call})",
            f"        __want = ({expected})",
            "        if not __same(__got, __want):",
            f"            __failures.append({call!r} + ' returned ' + repr(__got)[:200]"
            f" + ', expected ' + {expected!r})",
            "    except Exception as __e:",
            f"        __failures.append({call!r} + ' raised ' + type(__e).__name__ + ': '"
            " + str(__e)[:200])",
        ]
    checks += [
        "    return __failures",
        "",
        "",
        "__wren_failures = __wren_check_examples()",
    ]
    if test_code.strip():
        checks += ["", "# the given test", test_code.rstrip(), ""]
    checks += [
        "if __wren_failures:",
        "    import sys as __s",
        "    print('Failing examples:', file=__s.stderr)",
        "    for __f in __wren_failures[:5]:",
        "        print('- ' + __f, file=__s.stderr)",
        "    __s.exit(1)",
        "",
    ]
    return module_code.rstrip("\n") + "\n" + "\n".join(checks)
