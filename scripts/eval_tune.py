"""Measure `wren tune`: held-out line completion before and after tuning on real repositories.

For each repository (the source of a pure-Python package installed in this environment, copied
to a scratch workspace), `wren tune`'s own by-file split decides the held-out files. Tasks: one-
line statements in held-out files, the statement masked from its indentation to the end of the
line (the document keeps the rest), completed through the CompletionEngine as the editor would.
Exact match / edit similarity (scripts/eval_infill.py's metrics) on the first line of the raw
output and on the shipped completion, base model vs the same model with the adapter merged.

    .venv/bin/python scripts/eval_tune.py --repos click cattrs --minutes 6 --tasks 30
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_infill import Task, edit_similarity, exact_match, first_line_raw

STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise)


def copy_repo(package: str, scratch: Path) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not an installed package")
    src = Path(next(iter(spec.submodule_search_locations)))
    dest = scratch / package
    if not dest.exists():
        shutil.copytree(src, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def line_tasks(workspace: Path, n: int, seed: int) -> list[Task]:
    from wren.model.tune.data import collect

    tasks: list[Task] = []
    for f in collect(workspace).heldout:
        if not f.rel.endswith(".py"):
            continue
        try:
            tree = ast.parse(f.text)
        except SyntaxError:
            continue
        lines = f.text.split("\n")
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        path = workspace / f.rel
        for stmt in ast.walk(tree):
            if not isinstance(stmt, STATEMENTS) or stmt.lineno != stmt.end_lineno:
                continue
            row = stmt.lineno - 1
            line = lines[row]
            if row < 5 or not line.isascii() or "#" in line:
                continue
            expected = line.strip()
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # docstrings
            if not 4 <= len(expected) <= 100:
                continue
            col = len(line) - len(line.lstrip())
            start, end = starts[row] + col, starts[row] + len(line)
            tasks.append(
                Task(
                    task_id=f"{workspace.name}/{f.rel}:{row + 1}",
                    suite="single",
                    uri=path.as_uri(),
                    path=str(path),
                    text=f.text[:start] + f.text[end:],
                    offset=start,
                    expected=expected,
                )
            )
    rng = random.Random(seed)
    if len(tasks) > n:
        keep = set(rng.sample(range(len(tasks)), n))
        tasks = [t for i, t in enumerate(tasks) if i in keep]
    return tasks


def run_tasks(adapter: Path | None, tasks: list[Task], prefix_tokens: int) -> dict[str, Any]:
    """Greedy next line, prompted as Wren prompts a prefix-only model (file header + prefix).

    Plain transformers greedy decoding on the fp32 model (the adapter merged the way the
    server merges it), so the numbers don't depend on the engine's time budget or on how
    loaded the machine is; latency is reported separately.
    """
    import torch

    from wren.model.loading import load_model
    from wren.model.tune.adapters import apply_adapter

    loaded = apply_adapter(load_model(""), adapter)
    if adapter is not None and not loaded.adapter:
        raise SystemExit(f"adapter not loaded: {loaded.adapter_note}")
    tok, model = loaded.tokenizer, loaded.model
    em, es, ms, samples = [], [], [], []
    for task in tasks:
        header = loaded.card.file_header.replace("{path}", Path(task.path).name)
        prefix = task.text[: task.offset]
        ids = tok(prefix, add_special_tokens=False)["input_ids"][-prefix_tokens:]
        ids = tok(header, add_special_tokens=False)["input_ids"] + ids
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                max_new_tokens=32,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
                stop_strings=["\n"],  # one line is the task
                tokenizer=tok,
            )
        ms.append((time.perf_counter() - t0) * 1000)
        raw = first_line_raw(tok.decode(out[0, len(ids) :]))
        em.append(exact_match(raw, task.expected))
        es.append(edit_similarity(raw, task.expected))
        samples.append({"id": task.task_id, "expected": task.expected, "raw": raw})
        print(f"{len(samples)}/{len(tasks)} {ms[-1]:.0f} ms", file=sys.stderr, flush=True)
    n = max(1, len(tasks))
    return {
        "adapter": loaded.adapter,
        "tasks": len(tasks),
        "em": sum(em) / n,
        "es": statistics.fmean(es) if es else 0.0,
        "median_ms": statistics.median(ms) if ms else 0.0,
        "samples": samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repos", nargs="+", default=["click", "cattrs", "typer"])
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prefix-tokens", type=int, default=480)
    ap.add_argument("--eval-windows", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/wren-eval-tune"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/wren-eval-tune/results.jsonl"))
    args = ap.parse_args()
    os.environ.setdefault("WREN_THREADS", str(args.threads))
    from wren.model.tune.train import TuneSettings, tune_workspace

    args.scratch.mkdir(parents=True, exist_ok=True)
    for repo in args.repos:
        workspace = copy_repo(repo, args.scratch)
        tasks = line_tasks(workspace, args.tasks, args.seed)
        before = run_tasks(None, tasks, args.prefix_tokens)
        settings = TuneSettings(
            minutes=args.minutes,
            threads=args.threads,
            seed=args.seed,
            eval_windows=args.eval_windows,
        )
        result = tune_workspace(workspace, settings, output=args.scratch / f"{repo}.adapter")
        after = run_tasks(result.folder, tasks, args.prefix_tokens)
        record = {
            "repo": repo,
            "load": os.getloadavg(),
            "enabled": result.enabled,
            "reason": result.reason,
            "metrics": {k: v for k, v in result.metrics.items() if k != "evaluations"},
            "files": result.manifest["files"],
            "before": {k: v for k, v in before.items() if k != "samples"},
            "after": {k: v for k, v in after.items() if k != "samples"},
        }
        print(json.dumps(record), flush=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(record | {"samples": [before["samples"], after["samples"]]}) + "\n")


if __name__ == "__main__":
    main()
