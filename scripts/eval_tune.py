"""Measure `wren tune`: held-out line completion and HumanEval infilling before and after tuning.

For each repository (the source of a pure-Python package installed in this environment, copied
to a scratch workspace), `wren tune` runs as the user runs it (`python -m wren tune PATH`, its own
process, so its peak RSS is its own) and its by-file split decides the held-out files. Tasks:
one-line statements in held-out files, masked from the indentation to the end of the line (the
document keeps the rest), completed through Wren's `CompletionEngine` as the editor does: the
model loaded as the server loads it, the adapter served beside the fast decoder's 4-bit
weights (`tune.adapters.apply_adapter`, `fast_decode.LowRankLinear`), the editor's default
completion settings (context on, rerank off) with a generous time budget so quality does not
depend on the machine's load. Scoring, task objects and HumanEval single-line infilling
(executed in Wren's sandbox) are `scripts/eval_infill.py`'s. The same tasks run before and
after; latency is the engine's `complete` time per task.

Reported per repository: files train / held out, tokens trained on and training tokens/s
(time in training steps only; held-out scoring apart), threads, why it stopped, peak RSS of
the tuning process, held-out loss, exact match / edit similarity of the shipped completion,
HumanEval single-line pass@1 with that repository's adapter, completion p50 with and without
it, and whether `wren tune` enabled the adapter.

    .venv/bin/python scripts/eval_tune.py --repos click cattrs rich --minutes 15 --tasks 100 \\
        --humaneval 100
    .venv/bin/python scripts/eval_tune.py --markdown /tmp/wren-eval-tune/results.jsonl
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_infill import (
    ROOT,
    RecordingEngine,
    Task,
    humaneval_tasks,
    run_task,
    sample,
    settings_for,
)
from wren.config import CompletionSettings, ContextSettings

STATEMENTS = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise)
DEFAULT_REPOS = ("click", "cattrs", "rich")
# 25 % of files held out (wren tune's default is 15 %): at 15 % cattrs holds out 4 small files
# (42 one-line tasks); at 25 % every default repository has more than 200.
HELDOUT_PERCENT = 25


def copy_repo(package: str, scratch: Path) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not an installed package")
    src = Path(next(iter(spec.submodule_search_locations)))
    dest = scratch / package
    if not dest.exists():
        shutil.copytree(src, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def line_tasks(workspace: Path, heldout_percent: int) -> list[Task]:
    """Every one-line statement of the held-out Python files (not docstrings/comments)."""
    from wren.model.tune.data import collect

    tasks: list[Task] = []
    for f in collect(workspace, heldout_percent).heldout:
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
        rows = set()
        for stmt in ast.walk(tree):
            if not isinstance(stmt, STATEMENTS) or stmt.lineno != stmt.end_lineno:
                continue
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # docstrings
            row = stmt.lineno - 1
            line = lines[row]
            expected = line.strip()
            if row < 5 or not line.isascii() or "#" in line or not 4 <= len(expected) <= 100:
                continue
            rows.add(row)
        for row in sorted(rows):  # file order: tasks of one file share the KV cache
            line = lines[row]
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
                    expected=line.strip(),
                    workspace=str(workspace),
                )
            )
    return tasks


def load_engine(adapter: Path | None) -> RecordingEngine:
    """The engine as the server builds it (lsp/lifecycle.py): load, adapter, pack, warm up."""
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model
    from wren.model.tune.adapters import apply_adapter

    loaded = load_model("", lean_only=adapter is None)
    if adapter is not None:
        apply_adapter(loaded, adapter)
        if not loaded.adapter:
            raise SystemExit(f"adapter not loaded: {loaded.adapter_note}")
    backend = TransformersBackend(loaded)
    backend.warm_up()
    return RecordingEngine(backend, loaded.card)


def run_all(
    engine: RecordingEngine, tasks: list[Task], args: argparse.Namespace, label: str
) -> list[dict[str, Any]]:
    settings = settings_for(args.context, rerank=args.rerank, budget_ms=ContextSettings().budgetMs)
    records = []
    t0 = time.perf_counter()
    for i, task in enumerate(tasks):
        records.append(run_task(engine, task, settings, label, raw_multi=False))
        if (i + 1) % 10 == 0 or i + 1 == len(tasks):
            rate = (time.perf_counter() - t0) / (i + 1)
            print(f"  {label}: {i + 1}/{len(tasks)} ({rate:.1f} s/task)", file=sys.stderr)
    return records


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    out: dict[str, Any] = {"tasks": n}
    if not n:
        return out
    out["em"] = sum(r["em"]["completion"] for r in records) / n
    out["em_raw"] = sum(r["em"]["raw"] for r in records) / n
    out["es"] = statistics.fmean(r["es"]["completion"] for r in records)
    out["p50_ms"] = statistics.median(r["total_ms"] for r in records)
    if all("pass" in r for r in records):
        out["pass"] = sum(r["pass"]["completion"] for r in records) / n
    return out


def tune(workspace: Path, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """`wren tune` in its own process, as a user runs it; the manifest it writes."""
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "wren",
        "tune",
        str(workspace),
        "--minutes",
        str(args.minutes),
        "--threads",
        str(args.threads),
        "--heldout-percent",
        str(args.heldout_percent),
        "--output",
        str(folder),
    ]
    log = folder.with_suffix(".log")
    print(f"  tuning: {' '.join(cmd[1:])} (log {log})", file=sys.stderr)
    load_before = os.getloadavg()
    with log.open("w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"wren tune failed ({done.returncode}): {' '.join(tail)} ({log})")
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    manifest["load_before"] = load_before
    manifest["load_after"] = os.getloadavg()
    return manifest


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repos", nargs="+", default=list(DEFAULT_REPOS))
    ap.add_argument("--minutes", type=float, default=15.0, help="wren tune budget per repo")
    ap.add_argument("--tasks", type=int, default=100, help="held-out lines per repository")
    ap.add_argument("--humaneval", type=int, default=100, help="HumanEval single-line tasks")
    ap.add_argument("--threads", type=int, default=0, help="wren tune --threads (0: auto)")
    ap.add_argument("--heldout-percent", type=int, default=HELDOUT_PERCENT)
    ap.add_argument("--no-context", dest="context", action="store_false")
    ap.add_argument(
        "--rerank", action="store_true", default=CompletionSettings().rerank, help="rerank on"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/wren-eval-tune"))
    ap.add_argument("--out", type=Path, default=None, help="JSONL (default: scratch/results)")
    ap.add_argument("--markdown", nargs="+", type=Path, help="print the table of JSONL and exit")
    args = ap.parse_args()
    if args.markdown:
        print(markdown([json.loads(x) for p in args.markdown for x in p.read_text().splitlines()]))
        return
    args.context = args.context and ContextSettings().enabled
    args.scratch.mkdir(parents=True, exist_ok=True)
    out = args.out or args.scratch / "results.jsonl"
    out.write_text("")
    t_start = time.perf_counter()

    def emit(record: dict[str, Any]) -> None:
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    workspaces = {repo: copy_repo(repo, args.scratch) for repo in args.repos}
    tasks: dict[str, list[Task]] = {}
    for repo, ws in workspaces.items():
        every = line_tasks(ws, args.heldout_percent)
        tasks[repo] = sample(every, args.tasks, args.seed)
        print(f"{repo}: {len(tasks[repo])} of {len(every)} held-out lines", file=sys.stderr)
    he_all = humaneval_tasks("single") if args.humaneval else []
    he = sample(he_all, args.humaneval, args.seed)

    engine = load_engine(None)
    base_he = run_all(engine, he, args, "humaneval-base")
    emit(
        {
            "kind": "base",
            "humaneval": summary(base_he),
            "humaneval_of": len(he_all),
            "load": os.getloadavg(),
            "samples": base_he,
        }
    )
    before = {repo: run_all(engine, tasks[repo], args, f"{repo}-base") for repo in args.repos}
    del engine
    gc.collect()

    for repo, ws in workspaces.items():
        folder = args.scratch / f"{repo}.adapter"
        try:
            manifest = tune(ws, folder, args)
        except RuntimeError as err:
            print(f"  {repo}: {err}", file=sys.stderr)
            emit({"kind": "repo", "repo": repo, "error": str(err), "before": summary(before[repo])})
            continue
        engine = load_engine(folder)
        after = run_all(engine, tasks[repo], args, f"{repo}-tuned")
        he_after = run_all(engine, he, args, f"humaneval-{repo}")
        del engine
        gc.collect()
        metrics = {k: v for k, v in manifest["metrics"].items() if k != "evaluations"}
        record = {
            "kind": "repo",
            "repo": repo,
            "minutes": args.minutes,
            "heldout_percent": args.heldout_percent,
            "files": manifest["files"],
            "train_tokens_available": manifest["train_tokens_available"],
            "enabled": manifest["enabled"],
            "reason": manifest["reason"],
            "metrics": metrics,
            "evaluations": manifest["metrics"].get("evaluations"),
            "load_tune": [manifest["load_before"], manifest["load_after"]],
            "load": os.getloadavg(),
            "before": summary(before[repo]),
            "after": summary(after),
            "humaneval_after": summary(he_after),
            "samples": {"before": before[repo], "after": after, "humaneval": he_after},
        }
        emit(record)
        print(json.dumps({k: v for k, v in record.items() if k != "samples"}), flush=True)
    print(f"eval process peak RSS {_rss_mb():.0f} MB", file=sys.stderr)
    print(f"done in {(time.perf_counter() - t_start) / 60:.1f} min -> {out}", file=sys.stderr)
    print(markdown([json.loads(x) for x in out.read_text().splitlines()]))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(records: list[dict[str, Any]]) -> str:
    base = next((r for r in records if r.get("kind") == "base"), None)
    repos = [r for r in records if r.get("kind") == "repo"]
    tuned = [r for r in repos if "error" not in r]
    head = [
        "| repo | files train / held out | tokens trained (steps) | train s | tokens/s "
        "(threads) | stopped | peak RSS | held-out loss | EM before → after | "
        "edit sim. before → after | HumanEval pass@1 base → tuned | p50 ms base → tuned "
        "| enabled |",
        "|---" * 13 + "|",
    ]
    rows = []
    ems_before, ems_after = [], []
    he_base = base["humaneval"] if base else {}
    for r in repos:
        if "error" in r:
            rows.append(f"| {r['repo']} | tuning failed: {r['error'][:120]} |" + " |" * 11)
            continue
        m, b, a, h = r["metrics"], r["before"], r["after"], r["humaneval_after"]
        ems_before.append(b.get("em", 0.0))
        ems_after.append(a.get("em", 0.0))
        he = (
            f"{_pct(he_base['pass'])} → {_pct(h['pass'])} ({h['tasks']})"
            if "pass" in h and "pass" in he_base
            else "—"
        )
        rows.append(
            f"| {r['repo']} | {r['files']['train']} / {r['files']['heldout']} "
            f"| {m['tokens_seen']:,} ({m['steps']}) | {m['step_seconds']:.0f} "
            f"| {m['tokens_per_second']:.0f} ({m['threads']}) | {m['stopped']} "
            f"| {m['peak_rss_mb'] / 1000:.1f} GB "
            f"| {m['heldout_loss_before']:.3f} → {m['heldout_loss_after']:.3f} "
            f"| {_pct(b['em'])} → {_pct(a['em'])} % ({b['tasks']}) "
            f"| {b['es']:.3f} → {a['es']:.3f} | {he} "
            f"| {b['p50_ms']:.0f} → {a['p50_ms']:.0f} | {'yes' if r['enabled'] else 'no'} |"
        )
    lines = head + rows
    if tuned:
        mb, ma = statistics.fmean(ems_before), statistics.fmean(ems_after)
        rel = f"{(ma / mb - 1) * 100:+.0f} % relative" if mb > 0 else "n/a relative"
        lines.append("")
        lines.append(f"Mean exact match over repositories: {_pct(mb)} → {_pct(ma)} % ({rel}).")
        loads = ", ".join(
            f"{r['repo']} {r['load_tune'][0][0]:.1f}→{r['load_tune'][1][0]:.1f}" for r in tuned
        )
        lines.append(f"Load average (1 min) before → after tuning: {loads}.")
    if base:
        lines.append(
            f"HumanEval single-line infilling: {base['humaneval'].get('tasks', 0)} of "
            f"{base['humaneval_of']} tasks (seeded sample); base p50 "
            f"{base['humaneval'].get('p50_ms', 0):.0f} ms."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
