"""How many CPU threads a forward pass uses, by the kind of job that runs it.

Interactive work (an inline completion the user is waiting for) uses every core; batch and
background work (explain/fix/generate, speculative prefill) uses half, so the editor and the
user's other programs stay responsive while it runs. `WREN_THREADS` fixes one number for all.

Measured (BENCHMARKS.md, "Threads"): with OpenMP's default (spinning) wait policy, 2 threads
on 2 cores are no slower than 1 on an idle machine and a little faster with one core busy, so
interactive work takes every core. `OMP_WAIT_POLICY=PASSIVE` doubles throughput when another
process holds a core but costs 10–25 % on an idle one; it is left to the user (set it in the
environment VS Code starts the server with).
"""

from __future__ import annotations

import os

_current: int | None = None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 2


def fixed_threads() -> int | None:
    """`WREN_THREADS`, when the user fixed one number for every job."""
    env = os.environ.get("WREN_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else None


def threads_for(interactive: bool) -> int:
    """Threads for a job: `WREN_THREADS` if set, else all cores (interactive) or half."""
    fixed = fixed_threads()
    if fixed is not None:
        return fixed
    n = cores()
    return n if interactive else max(1, n // 2)


def use_threads(interactive: bool) -> int:
    """Set torch's intra-op threads for the next job (a no-op when unchanged)."""
    global _current
    import torch

    n = threads_for(interactive)
    if n != _current:
        torch.set_num_threads(n)
        _current = n
    return n
