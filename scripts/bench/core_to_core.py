"""Where this machine's two CPUs sit relative to each other, for the bandwidth bound.

`round_trip_ns()` builds and runs core_to_core.c: the time one cache line takes to go from
the first CPU this process may use to the second and back. About 55-120 ns means they share
an L3 cache; a few hundred means separate ones, where two threads can pull up to about twice
the memory bandwidth (this project's VMs move between the two without notice; BENCHMARKS.md,
round 11).
scripts/bench_latency.py prints it beside each bandwidth probe so every "bound" says which
placement it was read in.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("core_to_core.c")


def round_trip_ns() -> float | None:
    """The round trip in ns, or None without a C compiler, a second CPU or a working build."""
    cpus = sorted(os.sched_getaffinity(0))
    cc = shutil.which("cc") or shutil.which("gcc")
    if len(cpus) < 2 or cc is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    exe = Path(tempfile.gettempdir()) / f"wren-core-to-core-{digest}"
    try:
        if not exe.exists():
            subprocess.run([cc, "-O2", "-pthread", str(SOURCE), "-o", str(exe)], check=True)
        out = subprocess.run(
            [str(exe), str(cpus[0]), str(cpus[1])], check=True, capture_output=True, text=True
        )
        return float(out.stdout)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None


if __name__ == "__main__":
    print(round_trip_ns())
