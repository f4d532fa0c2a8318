"""Fix/Generate in languages other than Python: the language's own checker.

The static check (the edited file parses no worse than before) is `verify.parse_regression`,
run by `check_change` as Python's checks are. This module adds the optional second check: the
language's own fast checker (`language_runner`), run in the sandbox on the edited document,
only when running code is allowed (the setting is on and the workspace is trusted) and the
tool is installed; never in Restricted Mode, never required. A failure only counts when the
tool's output blames the code and the original document passes the same check (an error that
was already there is not the edit's fault); anything else (the tool crashed, ran out of time)
is inconclusive and claims nothing.

Only `node --check` is wired: it is fast and needs nothing but the file. `tsc --noEmit` on one
file, `go vet` and `cargo check` need the project around the file (modules, crates, the types
of imports) and take seconds; they are candidates for later.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from wren.engine.actions.loop import Candidate, Runner, VerifyOptions
from wren.engine.actions.sandbox import RunResult, run_tool
from wren.engine.actions.verify import CheckResult
from wren.types import CancelToken

log = logging.getLogger(__name__)

TOOL_TIMEOUT_S = 5.0  # a syntax check takes a fraction of a second; this is a hang guard
TOOL_MEMORY_MB = 4096  # V8 reserves address space far beyond what it uses


@dataclass(frozen=True)
class LanguageChecker:
    """How to run one language's syntax checker on a single file."""

    name: str  # as the user reads it: "node --check"
    program: str  # looked up on PATH
    args: tuple[str, ...]  # "{file}" stands for the file's name
    suffix: Callable[[str], str]  # the file name's suffix for a given text
    fault: re.Pattern[str]  # output that blames the code (else the tool itself failed)


_ES_MODULE = re.compile(r"^\s*(import\s*[\w{*'\"]|export\s)", re.MULTILINE)


def _js_suffix(text: str) -> str:
    # `import`/`export` only parse as a module: .mjs tells node so without a package.json.
    return ".mjs" if _ES_MODULE.search(text) else ".js"


CHECKERS: dict[str, LanguageChecker] = {
    "javascript": LanguageChecker(
        "node --check", "node", ("--check", "{file}"), _js_suffix, re.compile(r"SyntaxError")
    ),
}


def installed_checker(language_id: str) -> tuple[LanguageChecker, str] | None:
    """The checker for `language_id` and the tool's path, when one is wired and installed."""
    checker = CHECKERS.get(language_id)
    if checker is None:
        return None
    path = shutil.which(checker.program)
    return (checker, path) if path else None


@dataclass(frozen=True)
class ToolVerdict:
    """One run of a checker: passed, failed because of the code (with why), or inconclusive."""

    passed: bool
    blames_code: bool
    message: str


def run_checker(
    checker: LanguageChecker, path: str, text: str, cancel: CancelToken | None = None
) -> ToolVerdict:
    """Run `checker` on `text` in the sandbox."""
    name = "wren_check" + checker.suffix(text)
    argv = (path, *(a.replace("{file}", name) for a in checker.args))
    result = run_tool(
        argv, {name: text}, timeout_s=TOOL_TIMEOUT_S, memory_mb=TOOL_MEMORY_MB, cancel=cancel
    )
    if result.ok:
        return ToolVerdict(True, False, "")
    output = result.stderr + "\n" + result.stdout
    if result.timed_out or result.cancelled or not checker.fault.search(output):
        return ToolVerdict(False, False, result.reason)
    return ToolVerdict(False, True, _tool_message(result, name, checker))


def _tool_message(result: RunResult, name: str, checker: LanguageChecker) -> str:
    """`SyntaxError: Unexpected token '}' (line 4)` from the tool's output."""
    output = result.stderr + "\n" + result.stdout
    line = re.search(re.escape(name) + r":(\d+)", output)
    fault = next((ln.strip() for ln in output.split("\n") if checker.fault.search(ln)), "")
    where = f" (line {line.group(1)})" if line else ""
    return (fault or result.reason)[:200] + where


def language_runner(language_id: str, old_text: str, options: VerifyOptions) -> Runner | None:
    """The `Runner` for Fix/Generate in a non-Python language: its own checker on the edited
    document. None when running code is not allowed (Restricted Mode, the setting is off)
    or no checker is installed."""
    if not options.run_code or language_id == "python":
        return None
    found = installed_checker(language_id)
    if found is None:
        return None
    checker, path = found
    original: list[ToolVerdict] = []  # the old text's verdict, computed once when needed

    def run(candidate: Candidate, cancel: CancelToken) -> CheckResult:
        verdict = run_checker(checker, path, candidate.new_document, cancel)
        cancel.raise_if_cancelled()
        if verdict.passed:
            return CheckResult(True, f"ran `{checker.name}`", ("tool",))
        if verdict.blames_code:
            if not original:
                original.append(run_checker(checker, path, old_text, cancel))
                cancel.raise_if_cancelled()
            if original[0].passed:
                return CheckResult(
                    False, f"`{checker.name}` reports {verdict.message}", ("tool",), "run"
                )
        log.info("%s was inconclusive: %s", checker.name, verdict.message or "it failed")
        return CheckResult(True, "", ())

    return run
