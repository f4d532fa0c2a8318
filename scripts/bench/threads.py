"""Intra-op threads for the default model: 1 vs all cores, on an idle and on a busy machine.

    .venv/bin/python scripts/bench/threads.py            # prints a Markdown table

Each configuration runs in a fresh process (OpenMP settings are read once, at start) and
measures, on the same prompts: prefill of a 512-token prompt from an empty cache, and greedy
decode of 32 tokens. "busy" keeps one core spinning in a separate process (the editor, a
build) while the measurement runs. Configurations alternate, 3 rounds, the median is kept.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import inspect, json, os, sys, textwrap, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from wren.model.generation import TransformersBackend
from wren.model.loading import load_model
from wren.types import CancelToken, GenerationParams
backend = TransformersBackend(load_model(""))
backend.warm_up()
src = inspect.getsource(textwrap)
ids = backend.tokenize(src)[:512]
prompt = backend.detokenize(ids)
out = {}
for i in range(3):
    params = GenerationParams(max_new_tokens=1, time_budget_s=60)
    r = backend.generate(prompt, params, CancelToken(), cache_slot=f"p{i}")
    out.setdefault("prefill_tok_s", []).append(r.prompt_tokens / r.prefill_s)
    params = GenerationParams(max_new_tokens=32, time_budget_s=60)
    r = backend.generate(prompt + "\n", params, CancelToken(), cache_slot=f"p{i}")
    out.setdefault("decode_tok_s", []).append(max(1, r.tokens - 1) / r.decode_s)
print(json.dumps(out))
"""


def spin() -> None:
    while True:
        pass


WAIT_SETTINGS = {
    "default": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}


def run(threads: int, busy: bool, wait_policy: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(WAIT_SETTINGS[wait_policy])
    spinner = multiprocessing.Process(target=spin, daemon=True) if busy else None
    if spinner:
        spinner.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(threads)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if spinner:
            spinner.terminate()
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return {k: statistics.median(v) for k, v in data.items()}


def main() -> None:
    cores = os.cpu_count() or 2
    print(f"load before: {os.getloadavg()}, cores: {cores}, {time.strftime('%Y-%m-%d %H:%M')}")
    configs = [
        (t, busy, wp)
        for busy in (False, True)
        for t in (1, cores)
        for wp in (tuple(WAIT_SETTINGS) if t > 1 else ("default",))
    ]
    rows = []
    for busy, threads, wp in [(c[1], c[0], c[2]) for c in configs]:
        r = run(threads, busy, wp)
        rows.append((busy, threads, wp, r))
        print(f"busy={busy} threads={threads} wait={wp}: {r}", flush=True)
    print("\n| machine | threads | OpenMP wait | prefill tok/s (512) | decode tok/s |")
    print("|---|---:|---|---:|---:|")
    for busy, threads, wp, r in rows:
        print(
            f"| {'one core busy' if busy else 'idle'} | {threads} | {wp} | "
            f"{r['prefill_tok_s']:.0f} | {r['decode_tok_s']:.1f} |"
        )
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
