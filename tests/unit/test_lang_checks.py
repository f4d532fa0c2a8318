"""Fix/Generate verification outside Python: parses no worse than before, the language's own
checker (only where allowed and installed)."""

from __future__ import annotations

import shutil

import pytest

from tests.unit.test_actions_pipeline import model_for
from wren.engine.actions.fix import FixRequest, fix
from wren.engine.actions.generate import GenerateRequest, generate
from wren.engine.actions.lang_checks import installed_checker, language_runner, run_checker
from wren.engine.actions.loop import Candidate, VerifyOptions
from wren.engine.actions.outcome import ProposedEdit
from wren.engine.actions.sandbox import run_tool
from wren.engine.actions.verify import check_change, parse_regression
from wren.types import CancelToken

STATIC = VerifyOptions(max_retries=0)
HAS_NODE = shutil.which("node") is not None

TS = "class Cart {\n  items: number[] = [];\n  // sum the items\n  \n}\n"
GO = "package main\n\n// Max returns the larger of a and b.\n"


def _insert(text: str, at: int, code: str) -> str:
    return text[:at] + code + text[at:]


# -- parses no worse ------------------------------------------------------------------------


def test_broken_typescript_edit_is_rejected_with_a_readable_reason() -> None:
    at = TS.index("  \n}")
    new = _insert(TS, at, "  total(): number {\n    return this.items.reduce((a, b) => a + b, 0;\n")
    result = check_change("typescript", TS, new, 3, 4, "total")
    assert not result.ok and result.stage == "syntax"
    assert "does not parse" in result.reason and "line " in result.reason
    assert "after the change, none before" in result.reason


def test_good_typescript_edit_is_accepted() -> None:
    at = TS.index("  \n}")
    code = "  total(): number {\n    return this.items.reduce((a, b) => a + b, 0);\n  }\n"
    result = check_change("typescript", TS, _insert(TS, at, code), 3, 5, code)
    assert result.ok and result.checks == ("syntax",)


def test_go_edit_broken_then_good() -> None:
    bad = GO + "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\treturn b\n}\n"
    assert not check_change("go", GO, bad, 3, 7, "Max").ok
    good = GO + "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n"
    assert check_change("go", GO, good, 3, 8, "Max").ok


def test_an_error_the_edit_does_not_cause_is_not_held_against_it() -> None:
    # The grammar cannot parse this macro use; a fix of the function around it keeps it.
    old = "int f(int x) {\n    FOREACH(i) x++;\n    return x +;\n}\n"
    new = "int f(int x) {\n    FOREACH(i) x++;\n    return x + 1;\n}\n"
    assert parse_regression("c", old, new, 0, 3) is None
    assert check_change("c", old, new, 0, 3, new).ok
    worse = "int f(int x) {\n    FOREACH(i) x++;\n    return x +;\n    y = ;\n}\n"
    assert parse_regression("c", old, worse, 0, 4) is not None


def test_a_language_without_a_grammar_is_not_judged() -> None:
    assert parse_regression("ruby", "x = 1\n", "x = (\n", 0, 0) is None


# -- the pipelines ------------------------------------------------------------------------------


def test_generate_in_typescript_rejects_a_broken_answer_and_takes_the_good_one() -> None:
    model, _ = model_for(
        "total(): number {\n  return this.items.reduce((a, b) => a + b, 0;\n}\n```",
        "total(): number {\n  return this.items.reduce((a, b) => a + b, 0);\n}\n```",
    )
    request = GenerateRequest(TS, "typescript", TS.index("  \n}") + 2)
    out = generate(model, request, VerifyOptions(max_retries=1), CancelToken())
    assert out.verified, out.reason
    assert out.rounds == 2 and out.attempts[0].stage == "syntax"
    assert "does not parse" in out.attempts[0].reason
    assert out.edit is not None and "0);" in out.edit.apply(TS)


def test_fix_in_go_never_offers_an_edit_that_parses_worse() -> None:
    text = GO + "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn a\n}\n"
    model, _ = model_for("func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\treturn b\n}\n```")
    start = text.index("return a\n}") + 7
    out = fix(model, FixRequest(text, "go", start, start), STATIC, CancelToken())
    assert out.edit is None and "does not parse" in out.reason


# -- the language's own checker -------------------------------------------------------------


def _candidate(document: str) -> Candidate:
    return Candidate(ProposedEdit(0, 0, ""), document, 0, 0, document)


def test_no_checker_in_restricted_mode_or_without_run_code() -> None:
    assert language_runner("javascript", "x = 1;\n", VerifyOptions(run_code=False)) is None
    assert language_runner("python", "x = 1\n", VerifyOptions(run_code=True)) is None
    assert language_runner("typescript", "let x = 1;\n", VerifyOptions(run_code=True)) is None


@pytest.mark.skipif(not HAS_NODE, reason="node is not installed")
def test_node_check_catches_what_the_grammar_accepts() -> None:
    # A second `let` of the same name parses for tree-sitter but is a SyntaxError for node.
    old = "let total = 0;\nfunction add(x) {\n  total += x;\n}\n"
    bad = old + "let total = 1;\n"
    assert parse_regression("javascript", old, bad, 4, 4) is None
    runner = language_runner("javascript", old, VerifyOptions(run_code=True))
    assert runner is not None
    failed = runner(_candidate(bad), CancelToken())
    assert not failed.ok and failed.checks == ("tool",)
    assert "node --check" in failed.reason and "SyntaxError" in failed.reason
    assert "line 5" in failed.reason
    passed = runner(_candidate(old + "add(2);\n"), CancelToken())
    assert passed.ok and passed.reason == "ran `node --check`"


@pytest.mark.skipif(not HAS_NODE, reason="node is not installed")
def test_generate_in_javascript_runs_node_check_when_trusted() -> None:
    text = "let total = 0;\n// add x to the total\n"
    model, backend = model_for(
        "let total = 0;\nfunction add(x) {\n  total += x;\n}\n```",
        "function add(x) {\n  total += x;\n}\n```",
    )
    options = VerifyOptions(run_code=True, max_retries=1)
    out = generate(model, GenerateRequest(text, "javascript", len(text)), options, CancelToken())
    assert out.verified, out.reason
    assert out.attempts[0].stage == "run" and "node --check" in out.attempts[0].reason
    assert "tool" in out.checks and "node --check" in out.reason
    assert "SyntaxError" in backend.prompts[1]  # the checker's words go back to the model


@pytest.mark.skipif(not HAS_NODE, reason="node is not installed")
def test_node_check_does_not_blame_an_error_that_was_already_there() -> None:
    old = "let a = 1;\nlet a = 2;\n"
    runner = language_runner("javascript", old, VerifyOptions(run_code=True))
    assert runner is not None
    result = runner(_candidate(old + "let b = 3;\n"), CancelToken())
    assert result.ok and result.checks == ()  # inconclusive: claims nothing


@pytest.mark.skipif(not HAS_NODE, reason="node is not installed")
def test_node_check_reads_es_modules_as_modules() -> None:
    found = installed_checker("javascript")
    assert found is not None
    module = 'import fs from "node:fs";\nexport const n = fs.constants ? 1 : 2;\n'
    assert run_checker(*found, module).passed
    assert not run_checker(*found, module + "export const = ;\n").passed


def test_run_tool_is_time_limited() -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    result = run_tool((sleep, "30"), {}, timeout_s=0.5)
    assert not result.ok and result.timed_out
