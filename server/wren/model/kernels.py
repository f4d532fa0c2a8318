"""Build and load Wren's AVX2 matmul kernels (kernels.cpp) for the lean decoder.

`python -m wren.model.kernels` compiles them once (scripts/setup.sh runs it; ~16 s here) into
the cache directory, keyed by the source, torch and Python versions. The server only loads
what was built: it never compiles at start, and without the kernels (no compiler, no AVX2,
`WREN_KERNELS=off`) the decoder uses torch's own 4-bit/8-bit kernels and says so in the log.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from pathlib import Path

import torch

from wren.model.cache_dir import cache_root

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.cpp")
# -fopenmp: at::parallel_for splits rows over torch's intra-op threads. The library's
# libgomp.so.1 resolves to the one torch already loaded (same soname), so there is one pool.
CFLAGS = ["-O3", "-mavx2", "-mfma", "-mf16c", "-ffp-contract=off", "-fopenmp"]
LDFLAGS = ["-fopenmp"]
REQUIRED_CPU_FLAGS = ("avx2", "fma", "f16c")
# AVX-512 VNNI at 256 bits (AMD Zen 4, Intel Ice Lake and later): the 4-bit dot products' two
# multiply-adds and their sum become two instructions instead of three, with the same integer
# results (outputs bit-identical to the AVX2 build). 1,024-token prefill 474 -> 505-512
# tokens/s here (2026-11-28). Only for a CPU that has it: the build is keyed by its flags.
VNNI_CPU_FLAGS = ("avx512_vnni", "avx512vl")  # as /proc/cpuinfo spells them
VNNI_CFLAGS = ["-mavx512vnni", "-mavx512vl"]

_state: dict[str, bool] = {}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_supported() -> bool:
    """True when this CPU has the instructions the kernels use (x86-64 with AVX2, FMA, F16C)."""
    flags = cpu_flags()
    return all(f in flags for f in REQUIRED_CPU_FLAGS)


def cflags() -> list[str]:
    """The compiler flags for this CPU: AVX2, plus VNNI where it has it."""
    flags = cpu_flags()
    return CFLAGS + (VNNI_CFLAGS if all(f in flags for f in VNNI_CPU_FLAGS) else [])


def build_dir() -> Path:
    key = hashlib.sha256()
    key.update(SOURCE.read_bytes())
    key.update(" ".join(cflags()).encode())
    key.update(torch.__version__.encode())
    key.update(sys.version.encode())
    return cache_root() / "kernels" / key.hexdigest()[:16]


def library_path() -> Path:
    return build_dir() / "wren_kernels.so"


def build() -> Path:
    """Compile the kernels (needs a C++ compiler and ninja); returns the shared library."""
    from torch.utils import cpp_extension

    out = build_dir()
    out.mkdir(parents=True, exist_ok=True)
    # The `ninja` wheel puts its binary beside this interpreter, which need not be on PATH.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    cpp_extension.load(
        name="wren_kernels",
        sources=[str(SOURCE)],
        extra_cflags=cflags(),
        extra_ldflags=LDFLAGS,
        build_directory=str(out),
        is_python_module=False,
        verbose=False,
    )
    _state["loaded"] = True
    return library_path()


def available() -> bool:
    """Load the built kernels once; False (with the reason logged) when they can't be used."""
    if "loaded" in _state:
        return _state["loaded"]
    ok = False
    if os.environ.get("WREN_KERNELS", "").lower() in ("0", "off", "false"):
        log.info("AVX2 kernels off (WREN_KERNELS): using torch's 4-bit kernels")
    elif not cpu_supported():
        log.info("this CPU lacks AVX2/FMA/F16C: using torch's 4-bit kernels")
    elif not library_path().is_file():
        log.warning(
            "fast CPU kernels are not built (decoding is ~2x slower): run scripts/setup.sh "
            "or `python -m wren.model.kernels`"
        )
    else:
        try:
            torch.ops.load_library(str(library_path()))
            ok = True
        except (OSError, RuntimeError) as err:
            log.warning("fast CPU kernels could not be loaded (%s): using torch's kernels", err)
    _state["loaded"] = ok
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether they are built")
    args = parser.parse_args(argv)
    if not cpu_supported():
        print("wren kernels: this CPU lacks AVX2/FMA/F16C; torch's kernels will be used")
        return 0
    if library_path().is_file():
        print(f"wren kernels: built ({library_path()})")
        return 0
    if args.check:
        print("wren kernels: not built")
        return 1
    print("wren kernels: compiling (about a minute)...", flush=True)
    print(f"wren kernels: built ({build()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
