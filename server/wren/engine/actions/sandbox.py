"""Run untrusted Python (a candidate fix, generated code, its examples) in a limited subprocess.

Limits, applied by the child itself before the candidate's first line runs:
- time: `timeout_s` wall clock (the process group is killed) and RLIMIT_CPU;
- memory: RLIMIT_AS (address space), so a runaway allocation fails with MemoryError;
- files: RLIMIT_FSIZE (no huge writes), RLIMIT_CORE 0, a fresh temporary working directory
  that is removed afterwards, HOME pointing there, a minimal environment;
- network: when `unshare -n` (or `unshare -rn`, an unprivileged user namespace) works on this
  machine the child runs in an empty network namespace (only a down loopback). In every case a
  guard installed before the candidate runs (`sys.addaudithook`) refuses socket connect/bind/
  sendto/getaddrinfo and starting processes (subprocess, os.system, os.exec*, os.fork).

The audit hook is a guard against accidents (code that downloads, shells out, forks), not a
security boundary: native code can bypass it. That is why running code stays off by default,
and is never enabled for an untrusted workspace.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MEMORY_MB = 1024
MAX_OUTPUT_CHARS = 4000

_GUARD = r"""
import os
import resource
import sys

# Limits first, before any candidate code: set here rather than in a preexec_fn, which is
# unsafe in the (multi-threaded) server process.
_cpu = int(os.environ["WREN_LIMIT_CPU"])
resource.setrlimit(resource.RLIMIT_CPU, (_cpu, _cpu + 1))
_mem = int(os.environ["WREN_LIMIT_AS"])
resource.setrlimit(resource.RLIMIT_AS, (_mem, _mem))
resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

_BLOCKED = {
    "socket.connect": "network access is blocked while Wren verifies code",
    "socket.bind": "network access is blocked while Wren verifies code",
    "socket.sendto": "network access is blocked while Wren verifies code",
    "socket.sendmsg": "network access is blocked while Wren verifies code",
    "socket.getaddrinfo": "network access is blocked while Wren verifies code",
    "socket.gethostbyname": "network access is blocked while Wren verifies code",
    "subprocess.Popen": "starting processes is blocked while Wren verifies code",
    "os.system": "starting processes is blocked while Wren verifies code",
    "os.exec": "starting processes is blocked while Wren verifies code",
    "os.posix_spawn": "starting processes is blocked while Wren verifies code",
    "os.spawn": "starting processes is blocked while Wren verifies code",
    "os.fork": "starting processes is blocked while Wren verifies code",
    "os.forkpty": "starting processes is blocked while Wren verifies code",
    "pty.spawn": "starting processes is blocked while Wren verifies code",
}


def _wren_guard(event, args):
    reason = _BLOCKED.get(event)
    if reason is not None:
        raise PermissionError(f"{event}: {reason}")


sys.addaudithook(_wren_guard)
del _wren_guard
_target = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(_target)
for _extra in os.environ.get("WREN_SANDBOX_PATH", "").split(os.pathsep):
    if _extra:
        sys.path.append(_extra)
import runpy

runpy.run_path(_target, run_name=os.environ.get("WREN_RUN_NAME", "__main__"))
"""


@dataclass(frozen=True)
class RunResult:
    ok: bool  # exited with status 0 in time
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    cancelled: bool = False
    network_isolation: str = "audit-hook"  # "namespace" when unshare was used too
    elapsed_s: float = 0.0

    @property
    def reason(self) -> str:
        """A short account of the failure, fit to show the user and the model."""
        if self.ok:
            return ""
        if self.cancelled:
            return "cancelled"
        if self.timed_out:
            return "it did not finish in time (infinite loop or too slow)"
        tail = _last_error(self.stderr) or _last_error(self.stdout)
        if self.returncode is not None and self.returncode < 0:
            sig = -self.returncode
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            return f"it was killed by {name}" + (f": {tail}" if tail else "")
        return tail or f"it exited with status {self.returncode}"


def _last_error(text: str) -> str:
    """The useful end of a traceback (or of failing-example output)."""
    lines = [line for line in text.strip().split("\n") if line.strip()]
    if not lines:
        return ""
    if any(line.startswith("Traceback") for line in lines):
        # The exception line plus the last frame's code line.
        last = lines[-1].strip()
        where = ""
        for line in reversed(lines[:-1]):
            if line.lstrip().startswith('File "'):
                where = line.strip()
                break
        return f"{last} ({where})" if where else last
    return "\n".join(lines[-8:])


@functools.cache
def network_namespace_prefix() -> tuple[str, ...]:
    """The `unshare` command that gives the child no network, or () when none works here."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    for flags in (("-n",), ("-rn",)):
        try:
            probe = subprocess.run(
                [unshare, *flags, "true"], capture_output=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if probe.returncode == 0:
            return (unshare, *flags)
    return ()


def run_python(
    code: str,
    timeout_s: float = 5.0,
    memory_mb: int = DEFAULT_MEMORY_MB,
    cancelled: Callable[[], bool] | None = None,
    extra_paths: tuple[str, ...] = (),
    isolate_network: bool = True,
    run_name: str = "__main__",
) -> RunResult:
    """Run `code` in a fresh, limited Python subprocess and collect its output.

    `run_name` is the module's `__name__`: verification runs user modules under another name
    so their `if __name__ == "__main__":` blocks stay quiet.
    """
    workdir = Path(tempfile.mkdtemp(prefix="wren-run-"))
    try:
        target = workdir / "candidate.py"
        target.write_text(code, encoding="utf-8")
        guard = workdir / "_wren_guard.py"
        guard.write_text(_GUARD, encoding="utf-8")
        prefix = network_namespace_prefix() if isolate_network else ()
        cmd = [*prefix, sys.executable, "-I", "-B", str(guard), str(target)]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "WREN_SANDBOX_PATH": os.pathsep.join(extra_paths),
            "WREN_RUN_NAME": run_name,
            "WREN_LIMIT_CPU": str(max(1, int(timeout_s) + 1)),
            "WREN_LIMIT_AS": str(memory_mb * 1024 * 1024),
            "no_proxy": "*",
        }
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        timed_out = was_cancelled = False
        deadline = t0 + timeout_s
        while True:
            try:
                out, err = proc.communicate(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() > deadline:
                    timed_out = True
                elif cancelled is not None and cancelled():
                    was_cancelled = True
                else:
                    continue
                _kill_group(proc)
                out, err = proc.communicate()
                break
        elapsed = time.perf_counter() - t0
        return RunResult(
            ok=proc.returncode == 0 and not timed_out and not was_cancelled,
            returncode=proc.returncode,
            stdout=_decode(out)[-MAX_OUTPUT_CHARS:],
            stderr=_decode(err)[-MAX_OUTPUT_CHARS:],
            timed_out=timed_out,
            cancelled=was_cancelled,
            network_isolation="namespace+audit-hook" if prefix else "audit-hook",
            elapsed_s=elapsed,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")
