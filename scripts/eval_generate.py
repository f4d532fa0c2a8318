"""HumanEval pass@1 for Generate: (a) single shot, (b) verify-and-repair, through Wren's pipeline.

Each problem's prompt (imports, signature, docstring) is a document with the cursor after the
docstring; `wren.engine.actions.generate` writes the body exactly as the editor command does
(chat template, fenced answer, static checks). For (b) the visible tests are the examples in
the problem's own docstring (run in the sandbox); their failures are fed back for up to
`--max-rounds` repair rounds. The hidden tests (`check(...)`) are used only for scoring, also in
the sandbox. Greedy decoding is deterministic, so (a) is round 1 of (b): one run yields both.

    .venv/bin/python scripts/eval_generate.py                 # all 164 problems
    .venv/bin/python scripts/eval_generate.py --stride 2      # every 2nd problem (82)

Writes artifacts/eval_generate.json and, with --write-benchmarks, the table in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_common import (
    add_run_arguments,
    first_attempt_seconds,
    load_backend,
    load_problems,
    run_description,
    score,
    select,
    verify_options,
    write_benchmarks,
    write_results,
)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(ap, "eval_generate.json")
    ap.add_argument("--plan", action="store_true", help="run the analyst (plan) step first")
    args = ap.parse_args()

    from wren.engine.actions.generate import GenerateRequest, generate
    from wren.engine.actions.llm import ActionModel
    from wren.types import CancelToken

    problems = select(load_problems(), args)
    backend = load_backend()
    options = verify_options(args)
    rows: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for i, problem in enumerate(problems, 1):
        text = problem["prompt"]
        model = ActionModel.for_backend(backend)
        t0 = time.perf_counter()
        outcome = generate(
            model,
            GenerateRequest(text, "python", len(text), plan=args.plan),
            options,
            CancelToken(),
        )
        seconds = time.perf_counter() - t0
        single_ok, final_ok = score(text, outcome, problem)
        plan_calls = 1 if outcome.plan else 0
        row = {
            "task_id": problem["task_id"],
            "single_shot_pass": single_ok,
            "repair_pass": final_ok,
            "rounds": outcome.rounds,
            "verified": outcome.verified,
            "model_calls": outcome.model_calls,
            "single_shot_model_calls": 1 + plan_calls,
            "seconds": round(seconds, 2),
            "single_shot_seconds": first_attempt_seconds(outcome, seconds),
            "generated_tokens": model.generated_tokens,
            "reason": outcome.reason,
            "attempts": [a.to_json() for a in outcome.attempts],
        }
        rows.append(row)
        n_single = sum(r["single_shot_pass"] for r in rows)
        n_final = sum(r["repair_pass"] for r in rows)
        print(
            f"[{i}/{len(problems)}] {problem['task_id']}: single={single_ok} repair={final_ok} "
            f"rounds={outcome.rounds} calls={outcome.model_calls} {seconds:.1f}s "
            f"(running: {n_single}/{i} vs {n_final}/{i})",
            flush=True,
        )
    total_s = time.perf_counter() - t_all
    summary = summarize(rows, total_s)
    summary |= run_description(args, backend, "eval_generate.py") | {"plan": args.plan}
    write_results(args.out, {"summary": summary, "problems": rows})
    print(json.dumps(summary, indent=1))
    if args.write_benchmarks:
        write_benchmarks("eval_generate" + ("_plan" if args.plan else ""), table(summary))


def summarize(rows: list[dict[str, Any]], total_s: float) -> dict[str, Any]:
    n = max(1, len(rows))
    return {
        "problems": len(rows),
        "single_shot_passed": sum(r["single_shot_pass"] for r in rows),
        "repair_passed": sum(r["repair_pass"] for r in rows),
        "single_shot_pass_at_1": round(sum(r["single_shot_pass"] for r in rows) / n, 4),
        "repair_pass_at_1": round(sum(r["repair_pass"] for r in rows) / n, 4),
        "single_shot_seconds_per_problem": round(
            sum(r["single_shot_seconds"] for r in rows) / n, 2
        ),
        "repair_seconds_per_problem": round(sum(r["seconds"] for r in rows) / n, 2),
        "single_shot_model_calls": sum(r["single_shot_model_calls"] for r in rows),
        "repair_model_calls": sum(r["model_calls"] for r in rows),
        "repaired": sum(1 for r in rows if r["repair_pass"] and not r["single_shot_pass"]),
        "broken_by_repair": sum(1 for r in rows if r["single_shot_pass"] and not r["repair_pass"]),
        "wall_seconds": round(total_s, 1),
    }


def table(s: dict[str, Any]) -> str:
    n = s["problems"]
    return "\n".join(
        [
            f"### Generate from docstring — HumanEval pass@1"
            f"{' with the plan step' if s.get('plan') else ''} ({s['date']})",
            "",
            f"- Model: {s['model']} (greedy); machine: {s['machine']}",
            f"- Command: `.venv/bin/python {s['command']}`; problems: {n} ({s['selection']})",
            f"- Repair: up to {s['max_rounds']} rounds, style "
            f"`{s.get('repair_style', 'conversation')}`; visible tests = the docstring's own "
            "examples; scoring = the hidden tests, sandboxed. (a) is round 1 of (b) "
            "(greedy decoding is deterministic).",
            "",
            "| mode | pass@1 | passed | s/problem | model calls (total) | calls/problem |",
            "|---|---|---|---|---|---|",
            f"| (a) single shot | {s['single_shot_pass_at_1']:.1%} | {s['single_shot_passed']}/{n} "
            f"| {s['single_shot_seconds_per_problem']} | {s['single_shot_model_calls']} "
            f"| {s['single_shot_model_calls'] / max(1, n):.2f} |",
            f"| (b) verify + repair | {s['repair_pass_at_1']:.1%} | {s['repair_passed']}/{n} "
            f"| {s['repair_seconds_per_problem']} | {s['repair_model_calls']} "
            f"| {s['repair_model_calls'] / max(1, n):.2f} |",
            "",
            f"Repair fixed {s['repaired']} problem(s) and broke {s['broken_by_repair']}; "
            f"wall time {s['wall_seconds']:.0f} s.",
        ]
    )


if __name__ == "__main__":
    main()
