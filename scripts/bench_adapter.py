"""What serving a `wren tune` adapter costs per decode step of the fast decoder.

Builds the 4-bit decoder of the default model twice in one process, without and with an
adapter's update (`fast_decode.LowRankLinear`), fills one KV cache per decoder with the same
prompt (`--context` tokens of a stdlib module), then times single-token decode steps, the two
decoders alternating step by step so drift in the machine's speed hits both alike. Prints the
median step of each, their ratio, the weights each reads per token, and the load average before
and after (run it alone: `uptime` under 0.5). It also checks that both decoders still answer:
the greedy next tokens after the prompt are printed for each.

    .venv/bin/python scripts/bench_adapter.py --adapter /tmp/wren-eval-tune/click.adapter

With `--completions N` it measures what the user waits for instead: whole completions through
the `CompletionEngine` as the editor builds it (`eval_tune.load_engine`: context, clean-up, KV
reuse between requests on one file), without and with the adapter, alternating task by task
(ABBA order) over N one-line tasks of the adapter workspace's held-out files
(`eval_tune.line_tasks`, evenly spaced). Prints each side's median and p90, their ratios, the
median of the per-task ratios and how many lines each got right.

    .venv/bin/python scripts/bench_adapter.py --adapter /tmp/wren-eval-tune/click.adapter \\
        --completions 60
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--adapter", type=Path, required=True, help="a `wren tune` adapter folder")
    ap.add_argument("--context", type=int, default=1000, help="tokens in the KV cache")
    ap.add_argument("--steps", type=int, default=300, help="timed decode steps per decoder")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: Wren's choice)")
    ap.add_argument("--completions", type=int, default=0, help="time N whole completions")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    load_before = os.getloadavg()
    if args.completions:
        return report(completions(args), args, load_before)

    import torch

    from wren.model import kernels
    from wren.model.fast_decode import LeanModel
    from wren.model.loading import load_model
    from wren.model.tune.adapters import base_digest, read_adapter

    loaded = load_model("")
    if args.threads:
        torch.set_num_threads(args.threads)
    _checked, low_rank = read_adapter(loaded.model, args.adapter, base_digest(loaded.source))
    base = LeanModel.build(loaded.model)
    tuned = LeanModel.build(loaded.model, low_rank=low_rank)
    if base is None or tuned is None or base.weights != "q4":
        print("the 4-bit fast decoder does not cover this model", file=sys.stderr)
        return 1
    text = inspect.getsource(json.decoder) * 4
    prompt = loaded.tokenizer(text)["input_ids"][: args.context]
    decoders = {"base": base, "adapter": tuned}
    caches = {}
    answers = {}
    with torch.inference_mode():
        for name, model in decoders.items():
            cache = model.new_cache()
            logits = model.forward(prompt, cache, prompt=True)
            ids = [int(logits.argmax())]
            for _ in range(7):
                ids.append(int(model.forward(ids[-1:], cache).argmax()))
            cache.crop(len(prompt))
            caches[name] = cache
            answers[name] = loaded.tokenizer.decode(ids)
        times: dict[str, list[float]] = {name: [] for name in decoders}
        token = prompt[-1]
        for step in range(args.steps + 20):
            for name, model in decoders.items():
                cache = caches[name]
                t0 = time.perf_counter()
                model.forward([token], cache)
                dt = time.perf_counter() - t0
                cache.crop(len(prompt))
                if step >= 20:  # warm-up steps are not counted
                    times[name].append(dt)
    med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
    result = {
        "threads": torch.get_num_threads(),
        "kernels": kernels.available(),
        "context": len(prompt),
        "steps": args.steps,
        "median_ms": {k: round(v, 2) for k, v in med.items()},
        "ratio": round(med["adapter"] / med["base"], 3),
        "mb_per_token": {
            name: round(m.weight_bytes_per_token() / 1e6, 1) for name, m in decoders.items()
        },
        "greedy": answers,
    }
    return report(result, args, load_before)


def report(result: dict[str, Any], args: argparse.Namespace, load_before: tuple[float, ...]) -> int:
    """Print `result` with the load average before and after (and write it to --json)."""
    result["load_before"] = [round(x, 2) for x in load_before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def completions(args: argparse.Namespace) -> dict[str, Any]:
    """Whole editor completions with and without the adapter, alternating task by task."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import torch

    from eval_infill import run_task, settings_for
    from eval_tune import line_tasks, load_engine
    from wren.config import ContextSettings

    manifest = json.loads((args.adapter / "manifest.json").read_text())
    workspace = Path(manifest["workspace"])
    tasks = line_tasks(workspace, int(manifest["settings"]["heldout_percent"]))
    if len(tasks) > args.completions:
        step = len(tasks) / args.completions
        tasks = [tasks[int(i * step)] for i in range(args.completions)]
    engines = {"base": load_engine(None), "adapter": load_engine(args.adapter)}
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_for(True, rerank=False, budget_ms=ContextSettings().budgetMs)
    ms: dict[str, list[float]] = {name: [] for name in engines}
    right = dict.fromkeys(engines, 0)
    for i, task in enumerate(tasks):
        order = ["base", "adapter"] if i % 2 == 0 else ["adapter", "base"]
        for name in order:
            record = run_task(engines[name], task, settings, name, raw_multi=False)
            ms[name].append(record["total_ms"])
            right[name] += int(record["em"]["completion"])
    med = {name: statistics.median(v) for name, v in ms.items()}
    p90 = {name: statistics.quantiles(v, n=10)[-1] for name, v in ms.items()}
    per_task = [a / b for a, b in zip(ms["adapter"], ms["base"], strict=True) if b > 0]
    return {
        "threads": torch.get_num_threads(),
        "workspace": str(workspace),
        "tasks": len(tasks),
        "median_ms": {k: round(v, 1) for k, v in med.items()},
        "p90_ms": {k: round(v, 1) for k, v in p90.items()},
        "ratio_median": round(med["adapter"] / med["base"], 3),
        "ratio_p90": round(p90["adapter"] / p90["base"], 3),
        "median_of_task_ratios": round(statistics.median(per_task), 3),
        "exact_match": right,
    }


if __name__ == "__main__":
    raise SystemExit(main())
