"""Fix rate on HumanEval functions broken by mechanical bugs, with and without the repair loop.

Each canonical solution gets one bug (deterministically chosen, rotating by problem index):
wrong operator (`+`/`-`, `<`/`<=`, `==`/`!=`, `and`/`or`, ...), off-by-one (an integer
constant + 1), missing return (`return x` -> `x`), wrong variable (a local name replaced by
another local). A mutant is kept only if it still compiles and fails the hidden tests. Wren's
Fix pipeline then gets the whole function selected and no diagnostic (the bug is logical) —
as a user selecting a function and asking for a fix. Single shot = round 1; with repair =
the docstring examples (visible tests) run in the sandbox and failures are fed back for up to
`--max-rounds` rounds. Scoring: the hidden tests, sandboxed.

    .venv/bin/python scripts/eval_fix.py --stride 2
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_common import (
    add_run_arguments,
    first_attempt_seconds,
    load_backend,
    load_problems,
    passes_hidden_tests,
    run_description,
    score,
    select,
    verify_options,
    write_benchmarks,
    write_results,
)

KINDS = ("wrong-operator", "off-by-one", "missing-return", "wrong-variable")

_BIN_SWAP = {"+": "-", "-": "+", "*": "+", "//": "*", "%": "//", "/": "*"}
_CMP_SWAP = {"<=": "<", ">=": ">", "==": "!=", "!=": "==", "<": "<=", ">": ">="}


def _offsets(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _pos(starts: list[int], line: int, col: int, text: str) -> int:
    # ast columns are UTF-8 byte offsets; HumanEval is ASCII except a few docstrings
    line_text = text[starts[line - 1] :].split("\n", 1)[0]
    return starts[line - 1] + len(line_text.encode("utf-8")[:col].decode("utf-8", "ignore"))


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def mutants(program: str, name: str, body_first_line: int, kind: str) -> Iterator[tuple[str, str]]:
    """(mutated program, description) for every site of `kind` in the solution's lines."""
    tree = ast.parse(program)
    fn = _function(tree, name)
    if fn is None:
        return
    starts = _offsets(program)

    def in_solution(node: ast.AST) -> bool:
        return getattr(node, "lineno", 0) >= body_first_line

    def at(node: ast.AST, end: bool = False) -> int:
        if end:
            return _pos(starts, node.end_lineno or 0, node.end_col_offset or 0, program)
        return _pos(starts, node.lineno, node.col_offset, program)

    def replace_in_gap(a: int, b: int, old: str, new: str) -> str | None:
        gap = program[a:b]
        idx = gap.find(old)
        if idx == -1:
            return None
        return program[: a + idx] + new + program[a + idx + len(old) :]

    nodes = [n for n in ast.walk(fn) if in_solution(n)]
    nodes.sort(key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0)))
    if kind == "wrong-operator":
        for n in nodes:
            if isinstance(n, ast.BinOp):
                gap_a, gap_b = at(n.left, end=True), at(n.right)
                for old, new in _BIN_SWAP.items():
                    gap = program[gap_a:gap_b]
                    if old in gap and not (old in ("/", "*") and "//" in gap and old != "//"):
                        out = replace_in_gap(gap_a, gap_b, old, new)
                        if out:
                            yield out, f"{old} -> {new} on line {n.lineno - body_first_line + 1}"
                        break
            elif isinstance(n, ast.Compare):
                gap_a, gap_b = at(n.left, end=True), at(n.comparators[0])
                gap = program[gap_a:gap_b]
                for old, new in _CMP_SWAP.items():
                    if old in gap:
                        out = replace_in_gap(gap_a, gap_b, old, new)
                        if out:
                            yield out, f"{old} -> {new} on line {n.lineno - body_first_line + 1}"
                        break
            elif isinstance(n, ast.BoolOp) and len(n.values) >= 2:
                gap_a, gap_b = at(n.values[0], end=True), at(n.values[1])
                old, new = ("and", "or") if isinstance(n.op, ast.And) else ("or", "and")
                out = replace_in_gap(gap_a, gap_b, old, new)
                if out:
                    yield out, f"{old} -> {new} on line {n.lineno - body_first_line + 1}"
    elif kind == "off-by-one":
        for n in nodes:
            if isinstance(n, ast.Constant) and type(n.value) is int:
                a, b = at(n), at(n, end=True)
                yield (
                    program[:a] + str(n.value + 1) + program[b:],
                    f"{n.value} -> {n.value + 1} on line {n.lineno - body_first_line + 1}",
                )
    elif kind == "missing-return":
        returns = [n for n in nodes if isinstance(n, ast.Return) and n.value is not None]
        for n in reversed(returns):
            a = at(n)
            if program.startswith("return ", a):
                yield (
                    program[:a] + program[a + len("return ") :],
                    f"missing return on line {n.lineno - body_first_line + 1}",
                )
    elif kind == "wrong-variable":
        local_names = sorted(
            {a.arg for a in fn.args.args}
            | {
                n.id
                for n in ast.walk(fn)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            }
        )
        for n in nodes:
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in local_names:
                others = [x for x in local_names if x != n.id]
                if not others:
                    continue
                a, b = at(n), at(n, end=True)
                yield (
                    program[:a] + others[0] + program[b:],
                    f"{n.id} -> {others[0]} on line {n.lineno - body_first_line + 1}",
                )


def break_solution(problem: dict[str, Any], index: int) -> tuple[str, str, str] | None:
    """(broken program, kind, description) or None when no mutant fails the hidden tests."""
    program = problem["prompt"] + problem["canonical_solution"]
    body_first_line = problem["prompt"].count("\n") + 1
    tries = 0
    for k in range(len(KINDS)):
        kind = KINDS[(index + k) % len(KINDS)]
        for mutated, what in mutants(program, problem["entry_point"], body_first_line, kind):
            try:
                compile(mutated, "<mutant>", "exec")
            except SyntaxError:
                continue
            tries += 1
            if not passes_hidden_tests(mutated, problem, 5.0):
                return mutated, kind, what
            if tries >= 8:
                return None
    return None


def function_span(program: str, name: str) -> tuple[int, int]:
    tree = ast.parse(program)
    fn = _function(tree, name)
    assert fn is not None
    starts = _offsets(program)
    first = (fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno) - 1
    last = fn.end_lineno or fn.lineno
    end = starts[last] if last < len(starts) else len(program)
    return starts[first], end


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(ap, "eval_fix.json")
    args = ap.parse_args()

    from wren.engine.actions.fix import FixRequest, fix
    from wren.engine.actions.llm import ActionModel
    from wren.types import CancelToken

    chosen = select(list(enumerate(load_problems())), args)
    backend = load_backend()
    options = verify_options(args)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    t_all = time.perf_counter()
    for index, problem in chosen:
        broken = break_solution(problem, index)
        if broken is None:
            skipped.append(problem["task_id"])
            continue
        text, kind, what = broken
        start, end = function_span(text, problem["entry_point"])
        model = ActionModel.for_backend(backend)
        t0 = time.perf_counter()
        outcome = fix(model, FixRequest(text, "python", start, end), options, CancelToken())
        seconds = time.perf_counter() - t0
        single_ok, final_ok = score(text, outcome, problem)
        rows.append(
            {
                "task_id": problem["task_id"],
                "bug": kind,
                "mutation": what,
                "single_shot_fixed": single_ok,
                "repair_fixed": final_ok,
                "rounds": outcome.rounds,
                "verified": outcome.verified,
                "model_calls": outcome.model_calls,
                "seconds": round(seconds, 2),
                "single_shot_seconds": first_attempt_seconds(outcome, seconds),
                "reason": outcome.reason,
                "attempts": [a.to_json() for a in outcome.attempts],
            }
        )
        n = len(rows)
        print(
            f"[{n}] {problem['task_id']} {kind} ({what}): single={single_ok} repair={final_ok} "
            f"rounds={outcome.rounds} {seconds:.1f}s (running: "
            f"{sum(r['single_shot_fixed'] for r in rows)}/{n} vs "
            f"{sum(r['repair_fixed'] for r in rows)}/{n})",
            flush=True,
        )
    total = time.perf_counter() - t_all
    n = max(1, len(rows))
    by_kind = {
        kind: {
            "bugs": sum(1 for r in rows if r["bug"] == kind),
            "single_shot_fixed": sum(
                1 for r in rows if r["bug"] == kind and r["single_shot_fixed"]
            ),
            "repair_fixed": sum(1 for r in rows if r["bug"] == kind and r["repair_fixed"]),
        }
        for kind in KINDS
    }
    summary = {
        "bugs": len(rows),
        "skipped_no_failing_mutant": skipped,
        "single_shot_fixed": sum(r["single_shot_fixed"] for r in rows),
        "repair_fixed": sum(r["repair_fixed"] for r in rows),
        "single_shot_fix_rate": round(sum(r["single_shot_fixed"] for r in rows) / n, 4),
        "repair_fix_rate": round(sum(r["repair_fixed"] for r in rows) / n, 4),
        "single_shot_seconds_per_bug": round(sum(r["single_shot_seconds"] for r in rows) / n, 2),
        "repair_seconds_per_bug": round(sum(r["seconds"] for r in rows) / n, 2),
        "single_shot_model_calls": len(rows),
        "repair_model_calls": sum(r["model_calls"] for r in rows),
        "by_kind": by_kind,
        "wall_seconds": round(total, 1),
    } | run_description(args, backend, "eval_fix.py")
    write_results(args.out, {"summary": summary, "bugs": rows})
    print(
        json.dumps({k: v for k, v in summary.items() if k != "skipped_no_failing_mutant"}, indent=1)
    )
    if args.write_benchmarks:
        write_benchmarks("eval_fix", table(summary))


def table(s: dict[str, Any]) -> str:
    n = s["bugs"]
    lines = [
        f"### Fix mechanical bugs — HumanEval canonical solutions ({s['date']})",
        "",
        f"- Model: {s['model']} (greedy); machine: {s['machine']}",
        f"- Command: `.venv/bin/python {s['command']}`; {n} broken functions from "
        f"{s['selection']} ({len(s['skipped_no_failing_mutant'])} problems skipped: no mutant "
        "failed the hidden tests)",
        "- The whole function is selected, no diagnostic is given. Repair: up to "
        f"{s['max_rounds']} rounds (style `{s.get('repair_style', 'conversation')}`) fed by the "
        "docstring examples run in the sandbox; scoring: hidden tests.",
        "",
        "| mode | fixed | rate | s/bug | model calls (total) |",
        "|---|---|---|---|---|",
        f"| single shot | {s['single_shot_fixed']}/{n} | {s['single_shot_fix_rate']:.1%} "
        f"| {s['single_shot_seconds_per_bug']} | {s['single_shot_model_calls']} |",
        f"| with repair loop | {s['repair_fixed']}/{n} | {s['repair_fix_rate']:.1%} "
        f"| {s['repair_seconds_per_bug']} | {s['repair_model_calls']} |",
        "",
        "| bug kind | bugs | single shot | with repair |",
        "|---|---|---|---|",
    ]
    for kind, k in s["by_kind"].items():
        lines.append(f"| {kind} | {k['bugs']} | {k['single_shot_fixed']} | {k['repair_fixed']} |")
    lines += ["", f"Wall time {s['wall_seconds']:.0f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
