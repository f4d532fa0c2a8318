"""How many CPU threads a forward pass uses, by the kind of job that runs it.

Interactive work (an inline completion the user is waiting for) uses every core; batch and
background work (explain/fix/generate, speculative prefill) uses half, so the editor and the
user's other programs stay responsive while it runs. `WREN_THREADS` fixes one number for all.

OpenMP's default wait policy spins idle threads; when another process holds a core, threads
spinning against it made a prefill many times slower. The server starts with
`OMP_WAIT_POLICY=PASSIVE` (set in `wren serve` before torch loads) unless the user set it. The
numbers behind these choices are in BENCHMARKS.md ("Threads").
"""

from __future__ import annotations

import os

_current: int | None = None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 2


def threads_for(interactive: bool) -> int:
    """Threads for a job: `WREN_THREADS` if set, else all cores (interactive) or half."""
    env = os.environ.get("WREN_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
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
