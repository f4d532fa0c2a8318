"""Prefill and decode tokens/s, Wren vs llama-cpp-python, same prompts, side by side.

    .venv/bin/python scripts/bench/rates.py            # Markdown table + JSON on stdout

Both sides get the same token ids (the first 128/512/1,024 tokens of `json/decoder.py`) and
all cores. Prefill: from an empty cache, the whole prompt (Wren: the server's prompt path,
block attention in chunks; the peer: `Llama.eval` with n_batch 512, its best here). Decode:
64 greedy tokens after the 512-token prompt, no drafting on either side. Rows alternate
between the two sides, 3 rounds, median kept. Run alone: the load is printed.
"""

from __future__ import annotations

import inspect
import json
import json.decoder
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

LENGTHS = (128, 512, 1024)
ROUNDS = 3


def main() -> None:
    print(f"load before: {os.getloadavg()}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    from llama_backend import LlamaCppBackend

    from wren.model import kernels
    from wren.model.generation import TransformersBackend
    from wren.model.loading import configure_threads, default_model_file, load_model
    from wren.types import CancelToken, GenerationParams

    threads = configure_threads()
    wren = TransformersBackend(load_model(lean_only=True), speculative=False)
    wren.warm_up()
    model_file = default_model_file()
    assert model_file is not None
    peer = LlamaCppBackend(
        str(ROOT / ".peer-venv" / "bin" / "python"), model_file, wren, threads, n_batch=512
    )
    ids = wren.tokenize(inspect.getsource(json.decoder))
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    for r in range(ROUNDS):
        for n in LENGTHS:
            prompt = wren.detokenize(ids[:n])
            res = wren.generate(
                prompt, GenerationParams(max_new_tokens=1), CancelToken(), cache_slot=f"p{r}{n}"
            )
            add(f"wren prefill {n}", res.prompt_tokens / res.prefill_s)
            wren.drop_slot(f"p{r}{n}")
            rate = peer.call({"op": "prefill_rate", "ids": ids[:n]})["tokens_per_s"]
            add(f"peer prefill {n}", rate)
        prompt = wren.detokenize(ids[:512])
        params = GenerationParams(max_new_tokens=64, time_budget_s=120.0)
        wren.prefill(prompt, "d", CancelToken())
        res = wren.generate(prompt, params, CancelToken(), cache_slot="d")
        add("wren decode", res.tokens / res.decode_s)
        rate = peer.call({"op": "decode_rate", "ids": ids[:512], "n": 64})["tokens_per_s"]
        add("peer decode", rate)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"load after: {os.getloadavg()}; threads {threads}; kernels {kernels.available()}")
    print("\n| tokens/s | Wren | llama-cpp-python | Wren / peer |\n|---|---:|---:|---:|")
    for n in LENGTHS:
        w, p = med[f"wren prefill {n}"], med[f"peer prefill {n}"]
        print(f"| prefill {n:,} tokens | {w:.0f} | {p:.0f} | {w / p:.2f} |")
    w, p = med["wren decode"], med["peer decode"]
    print(f"| decode (64 after 512) | {w:.1f} | {p:.1f} | {w / p:.2f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
