"""Wren's CPU kernels alone: a layer's 4-bit matmuls and a layer's attention, hot in cache.

    .venv/bin/python scripts/bench/kernels.py            # prints a Markdown table

The default model's shapes (hidden 576, MLP 1,536, 9 query heads over 3 key/value heads of 64),
random weights on the 4-bit grid, 2 threads (or `--threads`). "Layer matmuls": q/k/v with the
fused RMSNorm, the output projection, gate/up with the norm, down with the fused SwiGLU, for
1, 2, 4, 8 and 64 input rows (a decode step, draft verification, a prefill chunk). "Attention":
RoPE, the half key/value cache write and attention of 1, 4 and 64 rows over 448 and 960
cached positions. Best of 5 repeats of each. It compares builds of `kernels.cpp` (run it once
per build, alternating); it is not a model benchmark: weights stay in cache between repeats.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from wren.model import kernels

HIDDEN, MLP, HEADS, KV_HEADS, HEAD_DIM = 576, 1536, 9, 3, 64


def best_seconds(fn: Callable[[], object], reps: int) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best


def q4_weight(n: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    packed = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    d = (torch.rand(n // 8, k // 32, 8) * 0.01).half()  # 8 output rows a vector (n % 8 == 0)
    m = (-torch.rand(n // 8, k // 32, 8) * 0.05).half()
    return packed, d, m


def layer_matmuls(rows: int) -> tuple[float, float]:
    """Seconds for one layer's four matmuls at `rows` input rows, and their multiply-adds."""
    qkv = q4_weight((HEADS + 2 * KV_HEADS) * HEAD_DIM, HIDDEN)
    o = q4_weight(HIDDEN, HEADS * HEAD_DIM)
    gate_up = q4_weight(2 * MLP, HIDDEN)
    down = q4_weight(HIDDEN, MLP)
    norm = torch.rand(HIDDEN) + 0.5
    x = torch.randn(rows, HIDDEN)
    attn = torch.randn(rows, HEADS * HEAD_DIM)
    gu = torch.randn(rows, 2 * MLP)
    op = torch.ops.wren.q4_linear

    def run() -> None:
        op(x, *qkv, norm, 1e-5)
        op(attn, *o)
        op(x, *gate_up, norm, 1e-5)
        op(gu, *down, glu=True)

    macs = rows * HIDDEN * ((HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM + 2 * MLP)
    macs += rows * MLP * HIDDEN
    return best_seconds(run, max(3, int(2e8 / macs))), macs


def attention(rows: int, cached: int) -> float:
    g = torch.Generator().manual_seed(0)
    cap = cached + rows + 64
    ck = torch.randn(KV_HEADS, cap, HEAD_DIM, generator=g).half()
    cv = torch.randn(KV_HEADS, cap, HEAD_DIM, generator=g).half()
    qkv = torch.randn(rows, (HEADS + 2 * KV_HEADS) * HEAD_DIM, generator=g)
    cos, sin = torch.rand(rows, HEAD_DIM), torch.rand(rows, HEAD_DIM)

    def run() -> None:
        torch.ops.wren.attend_decode(qkv, ck, cv, cos, sin, cached, HEADS, KV_HEADS, 0.125)

    return best_seconds(run, 20 if rows > 8 else 300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not kernels.available():
        raise SystemExit("Wren's kernels are not built: run scripts/setup.sh")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"load {os.getloadavg()[0]:.2f}, threads {args.threads}, {kernels.library_path()}")
    print("\n| layer matmuls | ms | GMAC/s |\n|---|---:|---:|")
    for rows in (1, 2, 4, 8, 64):
        sec, macs = layer_matmuls(rows)
        label = f"{rows} row{'s' if rows > 1 else ''}"
        print(f"| {label} | {sec * 1e3:.3f} | {macs / sec / 1e9:.1f} |")
    print("\n| attention, one layer | µs |\n|---|---:|")
    for rows, cached in ((1, 1000), (4, 1000), (64, 448), (64, 960)):
        label = f"{rows} row{'s' if rows > 1 else ''} over {cached} cached"
        print(f"| {label} | {attention(rows, cached) * 1e6:.0f} |")
    print(f"\nload after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
