"""llama-cpp-python behind a JSON-lines pipe, for scripts/bench_latency.py (the peer side).

Runs in the separate peer venv (.peer-venv, from scripts/setup.sh), never in Wren's. One
request per line on stdin, one answer per line on stdout:

  {"op": "generate", "ids": [...], "max_tokens": 48, "stop": [...], "stop_at_newline": true,
   "time_budget_s": 2.0}       -> {"text", "tokens", "prompt_tokens", "prefill_s", "decode_s",
                                    "stop_reason"}  or {"cancelled": true}
  {"op": "prefill", "ids": [...]} -> {"prefill_s": ...}
  {"op": "cancel"}                 (while a generate runs: stop it at the next token)
  {"op": "prefill_rate", "ids": [...]}         -> {"tokens_per_s": ...}  (empty cache)
  {"op": "decode_rate", "ids": [...], "n": 64} -> {"tokens_per_s": ...}
  {"op": "rss"}                    -> {"peak_rss_mb": ...}

Greedy (top_k=1), the model's own prefix reuse plus its RAM prompt cache (LlamaRAMCache), the
same stop rules as Wren's decoder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import time
from typing import Any

from llama_cpp import Llama, LlamaRAMCache


class LineReader:
    """Lines from stdin without Python's read-ahead buffer, so `select` sees what is pending."""

    def __init__(self) -> None:
        self.buf = b""

    def _fill(self, timeout: float | None) -> bool:
        ready, _, _ = select.select([0], [], [], timeout)
        if not ready:
            return False
        data = os.read(0, 1 << 16)
        if not data:
            raise EOFError
        self.buf += data
        return True

    def readline(self, timeout: float | None = None) -> str | None:
        while b"\n" not in self.buf:
            if not self._fill(timeout):
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


STDIN = LineReader()


def _cancel_requested() -> bool:
    line = STDIN.readline(timeout=0)
    return line is not None and json.loads(line).get("op") == "cancel"


def generate(llm: Llama, req: dict[str, Any]) -> dict[str, Any]:
    ids = req["ids"]
    stop = list(req.get("stop", []))
    t0 = time.perf_counter()
    deadline = t0 + float(req.get("time_budget_s", 2.0))
    t_first = None
    text = ""
    tokens = 0
    reason = "max_tokens"
    stream = llm.create_completion(
        prompt=ids,
        max_tokens=int(req["max_tokens"]),
        temperature=0.0,
        top_k=1,
        top_p=1.0,
        min_p=0.0,
        repeat_penalty=1.0,
        stream=True,
        stop=stop or None,
    )
    try:
        for chunk in stream:
            if t_first is None:
                t_first = time.perf_counter()
            choice = chunk["choices"][0]
            text += choice["text"]
            tokens += 1
            if choice.get("finish_reason") == "stop":
                reason = "stop"
                break
            if req.get("stop_at_newline") and "\n" in text.lstrip("\r\n \t"):
                reason = "newline"
                break
            if time.perf_counter() > deadline:
                reason = "time"
                break
            if _cancel_requested():
                return {"cancelled": True}
    finally:
        stream.close()
    t_end = time.perf_counter()
    first = t_first if t_first is not None else t_end
    return {
        "text": text,
        "tokens": tokens,
        "prompt_tokens": len(ids),
        "prefill_s": first - t0,
        "decode_s": t_end - first,
        "stop_reason": reason,
    }


def prefill(llm: Llama, req: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the prompt (the model's prefix reuse applies) and stop before decoding.

    In 128-token steps, each reusing the last, so a cancel lands within one step (as Wren's).
    """
    t0 = time.perf_counter()
    ids = req["ids"]
    for end in [*range(128, len(ids), 128), len(ids)]:
        for _ in llm.generate(ids[:end], top_k=1, temp=0.0, reset=True):
            break
        if end < len(ids) and _cancel_requested():
            return {"cancelled": True}
    return {"prefill_s": time.perf_counter() - t0}


def prefill_rate(llm: Llama, req: dict[str, Any]) -> dict[str, Any]:
    """Evaluate `ids` from an empty cache in one call (n_batch tokens at a time)."""
    ids = req["ids"]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    return {"tokens_per_s": len(ids) / (time.perf_counter() - t0)}


def decode_rate(llm: Llama, req: dict[str, Any]) -> dict[str, Any]:
    ids = req["ids"]
    n = int(req.get("n", 64))
    llm.reset()
    gen = llm.generate(ids, top_k=1, temp=0.0, reset=True)
    next(gen)  # prompt evaluated, first token sampled
    t0 = time.perf_counter()
    for i, _ in enumerate(gen):
        if i + 1 >= n:
            break
    return {"tokens_per_s": n / (time.perf_counter() - t0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--n-batch", type=int, default=128)  # the replay's prefill step
    args = ap.parse_args()
    t0 = time.perf_counter()
    llm = Llama(
        model_path=args.model,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_batch=args.n_batch,
        verbose=False,
        seed=0,
    )
    llm.set_cache(LlamaRAMCache(capacity_bytes=512 << 20))
    print(json.dumps({"ready": True, "load_s": time.perf_counter() - t0}), flush=True)
    ops = {
        "generate": generate,
        "prefill": prefill,
        "prefill_rate": prefill_rate,
        "decode_rate": decode_rate,
    }
    while True:
        try:
            line = STDIN.readline()
        except EOFError:
            return
        if not line:
            continue
        req = json.loads(line)
        op = req.get("op")
        if op == "cancel":
            continue  # arrived after its generate finished
        if op == "rss":
            out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        else:
            out = ops[op](llm, req)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
