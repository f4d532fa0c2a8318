"""Run untrusted Python (a candidate fix, generated code, its examples) in a limited subprocess.

Three isolation levels; the strongest this machine supports is used (`isolation()`), and
`isolation_level()` says in one line which one is active and what it leaves open:

- "bubblewrap" (`bwrap`, the default on Linux where it is installed and works): the child sees
  the file system read-only, with /tmp, /home, /root and $HOME replaced by empty private
  folders (the Python installation is mounted back read-only); the only writable place is the
  run's own work folder, removed afterwards. It has its own network namespace (no network, not
  even the host's loopback), its own process namespace (it cannot see or signal the server or
  any other process, and everything it started dies with it), a new session (no terminal) and
  no capabilities. It dies with the server (`--die-with-parent`).
- "namespaces" (`unshare`, where bubblewrap is missing): no network and, where possible, its
  own process namespace; it can still read and write what the user can.
- "limits": only the limits below. It can read and write what the user can, reach the network
  through native code, and signal the user's processes.

At every level, applied by the child itself before the candidate's first line runs:
- time: the wall clock (`timeout_s`, clamped to MAX_TIMEOUT_S; the process group is killed)
  and RLIMIT_CPU;
- memory: RLIMIT_AS (address space), so a runaway allocation fails with MemoryError;
- files: RLIMIT_FSIZE (no huge writes), RLIMIT_CORE 0, a fresh work folder as HOME and TMPDIR,
  a minimal environment;
- processes: RLIMIT_NPROC (MAX_PROCESSES more than the user already runs; the kernel ignores
  it for root, so a root server puts the run in its own pids cgroup when it can write one);
- output: read as it comes, at most MAX_OUTPUT_BYTES; a child that prints more is killed;
- a guard installed before the candidate runs (`sys.addaudithook`) refuses socket connect/bind/
  sendto/getaddrinfo and starting processes (subprocess, os.system, os.exec*, os.fork). The
  hook is a guard against accidents (code that downloads, shells out, forks), not a boundary:
  native code (ctypes) bypasses it. The namespaces above are the boundary.

While it waits for the child, `run_python` calls the cancel token's checkpoint every
POLL_S seconds, so the scheduler runs queued completions while a test runs, and a cancelled
request kills the child at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wren.types import CancelToken

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 60.0  # no run lasts longer, whatever the settings say
MAX_OUTPUT_CHARS = 4000  # of each stream, kept for the failure reason (the end of it)
MAX_OUTPUT_BYTES = 1 << 20  # stdout + stderr read from the child before it is stopped
MAX_PROCESSES = 64  # processes and threads a run may add
POLL_S = 0.05  # how often the waiting loop checks the clock, the cancel token, the scheduler
_CHUNK = 65536

BUBBLEWRAP = "bubblewrap"
NAMESPACES = "namespaces"
LIMITS = "limits"

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


def _tasks_of(uid):
    # Processes and threads of `uid` visible here: what the kernel counts against RLIMIT_NPROC
    # (in a fresh user namespace, only the namespace's own).
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


if os.path.isdir("/proc"):
    _nproc = _tasks_of(os.getuid()) + int(os.environ["WREN_LIMIT_NPROC"])
    _hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if _hard != resource.RLIM_INFINITY:
        _nproc = min(_nproc, _hard)
    resource.setrlimit(resource.RLIMIT_NPROC, (_nproc, _nproc))

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


# -- isolation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Isolation:
    """How runs are isolated on this machine (see the module docstring)."""

    level: str  # BUBBLEWRAP, NAMESPACES or LIMITS
    unshare: tuple[str, ...] = ()  # the `unshare` command, for NAMESPACES
    pids_cgroup: str = ""  # a writable pids cgroup to bound a root server's runs, or ""

    @property
    def own_pid_namespace(self) -> bool:
        return self.level == BUBBLEWRAP or "--pid" in self.unshare

    def describe(self) -> str:
        """One line: the level, what it guarantees, and what it leaves open."""
        if os.geteuid() != 0:
            procs = f"at most {MAX_PROCESSES} processes"
        elif self.pids_cgroup:
            procs = f"at most {MAX_PROCESSES} processes (pids cgroup)"
        else:
            procs = "no process-count limit (running as root without a writable pids cgroup)"
        if self.level == BUBBLEWRAP:
            return (
                "bubblewrap: read-only file system, private work folder, home and /tmp hidden, "
                f"no network, own process namespace, {procs}"
            )
        if self.level == NAMESPACES:
            pid = ", own process namespace" if self.own_pid_namespace else ""
            return (
                f"unshare: no network{pid}, {procs}; gap: the code can read and write "
                "what the user can (install bubblewrap for file-system isolation)"
            )
        return (
            f"limits only (time, memory, file size, {procs}); gap: the code can read and "
            "write what the user can, use the network through native code and signal the "
            "user's processes (install bubblewrap)"
        )


def _probe(cmd: list[str], workdir: str | None = None) -> bool:
    """Does `cmd` + a Python that prints "ok" work here?"""
    try:
        out = subprocess.run(
            [*cmd, sys.executable, "-I", "-c", "print('ok')"],
            capture_output=True,
            timeout=20,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == b"ok"


_UNSHARE_FLAGS = (
    ("--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"),
    ("--net", "--pid", "--fork", "--kill-child", "--mount-proc"),
    ("--user", "--map-root-user", "--net"),
    ("--net",),
)


def detect_isolation(levels: tuple[str, ...] = (BUBBLEWRAP, NAMESPACES, LIMITS)) -> Isolation:
    """The first of `levels` that works on this machine (LIMITS always does)."""
    cgroup = _pids_cgroup_parent() if os.geteuid() == 0 else ""
    linux = sys.platform.startswith("linux")
    if BUBBLEWRAP in levels and linux and shutil.which("bwrap"):
        workdir = tempfile.mkdtemp(prefix="wren-probe-")
        try:
            if _probe(_bwrap_command(workdir, ()), workdir):
                return Isolation(BUBBLEWRAP, pids_cgroup=cgroup)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    unshare = shutil.which("unshare")
    if NAMESPACES in levels and linux and unshare:
        for flags in _UNSHARE_FLAGS:
            if _probe([unshare, *flags]):
                return Isolation(NAMESPACES, unshare=(unshare, *flags), pids_cgroup=cgroup)
    return Isolation(LIMITS, pids_cgroup=cgroup)


_probe_lock = threading.Lock()


def isolation() -> Isolation:
    """The isolation runs get on this machine (probed once, logged once)."""
    with _probe_lock:
        return _detected()


@functools.cache
def _detected() -> Isolation:
    found = detect_isolation()
    log.info("code verification sandbox: %s", found.describe())
    return found


def isolation_level() -> str:
    """One line for the status and the log: the active isolation level and its gap."""
    return isolation().describe()


def verification_status(run_code: bool) -> dict[str, object]:
    """For the server's status: is running code on, and how is it isolated. Probes only when
    it is on (the probe starts a process)."""
    return {"runCode": run_code, "isolation": isolation_level() if run_code else "not used"}


def _hidden_dirs() -> list[str]:
    """Folders replaced by empty ones in the bubblewrap sandbox (outermost first)."""
    out: list[str] = []
    for raw in ("/tmp", "/home", "/root", os.environ.get("HOME", ""), str(Path.home())):
        if not raw or not os.path.isabs(raw):
            continue
        real = os.path.realpath(raw)
        if real == "/" or not os.path.isdir(real):
            continue
        if any(real == h or real.startswith(h + "/") for h in out):
            continue
        out = [h for h in out if not h.startswith(real + "/")]
        out.append(real)
    return sorted(out)


def _python_roots() -> list[str]:
    """What the child's interpreter needs to see: the installation and the environment."""
    roots = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    roots.append(os.path.dirname(os.path.realpath(sys.executable)))
    roots.append(os.path.dirname(os.path.abspath(sys.executable)))
    return roots


def _bwrap_command(workdir: str, extra_paths: tuple[str, ...]) -> list[str]:
    bwrap = shutil.which("bwrap") or "bwrap"
    cmd = [
        bwrap,
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup namespaces
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    if os.geteuid() == 0:
        cmd += ["--cap-drop", "ALL"]  # bwrap keeps root's capabilities unless told
    hidden = _hidden_dirs()
    for folder in hidden:
        cmd += ["--tmpfs", folder]
    seen: set[str] = set()
    for path in [*_python_roots(), *extra_paths]:
        if not path or not os.path.isabs(path):
            continue
        real = os.path.realpath(path)
        inside = any(real == h or real.startswith(h + "/") for h in hidden)
        if not inside or not os.path.exists(real):
            continue
        for dest in {real, os.path.abspath(path)}:
            if dest not in seen:
                seen.add(dest)
                cmd += ["--ro-bind", real, dest]
    cmd += ["--bind", workdir, workdir, "--chdir", workdir, "--"]
    return cmd


# -- a pids cgroup for runs of a root server ---------------------------------------------------


def _pids_cgroup_parent() -> str:
    """A cgroup folder with the pids controller that this (root) process can create in."""
    candidates = ["/sys/fs/cgroup/pids"]
    try:
        if "pids" in Path("/sys/fs/cgroup/cgroup.subtree_control").read_text().split():
            candidates.append("/sys/fs/cgroup")
    except OSError:
        pass
    for parent in candidates:
        if not os.path.isfile(os.path.join(parent, "cgroup.procs")):
            continue
        _remove_stale_cgroups(parent)
        probe = os.path.join(parent, f"wren-probe-{os.getpid()}")
        try:
            os.mkdir(probe)
        except OSError:
            continue
        try:
            Path(probe, "pids.max").write_text(str(MAX_PROCESSES))
            return parent
        except OSError:
            continue
        finally:
            _remove_cgroup(probe)
    return ""


def _remove_stale_cgroups(parent: str) -> None:
    """Run cgroups left by a server that was killed (their server pid is gone)."""
    for entry in Path(parent).glob("wren-sandbox-*-*"):
        owner = entry.name.split("-")[2]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            _remove_cgroup(str(entry))


_run_ids = iter(range(1 << 62))


def _make_cgroup(parent: str) -> str:
    path = os.path.join(parent, f"wren-sandbox-{os.getpid()}-{next(_run_ids)}")
    try:
        os.mkdir(path)
        Path(path, "pids.max").write_text(str(MAX_PROCESSES + 2))
    except OSError as err:
        log.warning("could not create a pids cgroup for the sandbox: %s", err)
        _remove_cgroup(path)
        return ""
    return path


def _remove_cgroup(path: str) -> None:
    """Kill what is left in the run's cgroup (only the run's processes are there), remove it."""
    if not os.path.isdir(path):
        return
    for _ in range(100):
        try:
            pids = [int(p) for p in Path(path, "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.02)
    log.warning("could not remove the sandbox cgroup %s", path)


# -- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    ok: bool  # exited with status 0 in time
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    cancelled: bool = False
    isolation: str = LIMITS  # the level the run had (BUBBLEWRAP, NAMESPACES, LIMITS)
    elapsed_s: float = 0.0
    output_bytes: int = 0  # bytes read from the child's stdout and stderr
    output_overflow: bool = False  # it printed more than MAX_OUTPUT_BYTES and was stopped

    @property
    def reason(self) -> str:
        """A short account of the failure, fit to show the user and the model."""
        if self.ok:
            return ""
        if self.cancelled:
            return "cancelled"
        if self.output_overflow:
            return f"it printed more than {MAX_OUTPUT_BYTES // 1024} KiB of output and was stopped"
        if self.timed_out:
            return "it did not finish in time (infinite loop or too slow)"
        tail = _last_error(self.stderr) or _last_error(self.stdout)
        code = self.returncode
        if code is not None and (code < 0 or (self.isolation != LIMITS and code > 128)):
            sig = -code if code < 0 else code - 128  # a wrapper reports 128 + signal
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            return f"it was killed by {name}" + (f": {tail}" if tail else "")
        return tail or f"it exited with status {code}"


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


def clamp_timeout(timeout_s: float) -> float:
    """A usable timeout: at most MAX_TIMEOUT_S; nonsense (NaN, <= 0) becomes the default."""
    if not isinstance(timeout_s, int | float) or math.isnan(timeout_s) or timeout_s <= 0:
        return DEFAULT_TIMEOUT_S
    return min(float(timeout_s), MAX_TIMEOUT_S)


class _Tail:
    """The last `keep` bytes of a stream."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.keep:
            del self.data[: -self.keep]

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")[-MAX_OUTPUT_CHARS:]


def run_python(
    code: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    cancelled: Callable[[], bool] | None = None,
    extra_paths: tuple[str, ...] = (),
    isolate_network: bool = True,
    run_name: str = "__main__",
    cancel: CancelToken | None = None,
    sandbox: Isolation | None = None,
) -> RunResult:
    """Run `code` in a fresh, limited, isolated Python subprocess and collect its output.

    `run_name` is the module's `__name__`: verification runs user modules under another name
    so their `if __name__ == "__main__":` blocks stay quiet. `cancel` (or `cancelled`) stops
    the run; `cancel.checkpoint()` is called while waiting. `sandbox` overrides the detected
    isolation (tests); `isolate_network=False` runs with the limits only.
    """

    def prepare(workdir: Path) -> list[str]:
        target = workdir / "candidate.py"
        target.write_text(code, encoding="utf-8")
        guard = workdir / "_wren_guard.py"
        guard.write_text(_GUARD, encoding="utf-8")
        return [sys.executable, "-I", "-B", str(guard), str(target)]

    level = sandbox or (isolation() if isolate_network else Isolation(LIMITS))
    env = {"WREN_SANDBOX_PATH": os.pathsep.join(extra_paths), "WREN_RUN_NAME": run_name}
    return _run_sandboxed(prepare, level, timeout_s, memory_mb, extra_paths, env, cancel, cancelled)


# Applies the limits, then becomes the tool: `python -I -c _EXEC_LIMITS tool args...`.
_EXEC_LIMITS = (
    "import os, resource, sys\n"
    "_cpu = int(os.environ['WREN_LIMIT_CPU'])\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (_cpu, _cpu + 1))\n"
    "_mem = int(os.environ['WREN_LIMIT_AS'])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (_mem, _mem))\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def run_tool(
    argv: tuple[str, ...],
    files: dict[str, str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
    cancel: CancelToken | None = None,
    sandbox: Isolation | None = None,
) -> RunResult:
    """Run an installed program (a language's own checker, e.g. `node --check f.js`) on
    `files` (name -> text), written into the run's work folder, which is its current folder.

    The same isolation, time, memory, file-size and output limits as `run_python`; not the
    audit hook (the tool is not Python) nor RLIMIT_NPROC (a runtime's threads count against
    it): the process namespace is what contains it. `argv[0]` must be an absolute path; its
    installation folder is made visible when it lives under a hidden folder (~/.nvm).
    """
    tool = os.path.realpath(argv[0])
    install = os.path.dirname(os.path.dirname(tool))  # .../bin/node -> ...

    def prepare(workdir: Path) -> list[str]:
        for name, text in files.items():
            (workdir / name).write_text(text, encoding="utf-8")
        return [sys.executable, "-I", "-B", "-c", _EXEC_LIMITS, tool, *argv[1:]]

    level = sandbox or isolation()
    return _run_sandboxed(prepare, level, timeout_s, memory_mb, (install,), {}, cancel, None)


def _run_sandboxed(
    prepare: Callable[[Path], list[str]],
    level: Isolation,
    timeout_s: float,
    memory_mb: int,
    extra_paths: tuple[str, ...],
    extra_env: dict[str, str],
    cancel: CancelToken | None,
    cancelled: Callable[[], bool] | None,
) -> RunResult:
    """A fresh work folder, the command `prepare` writes into it, run at `level`, cleaned up."""
    timeout_s = clamp_timeout(timeout_s)
    workdir = Path(tempfile.mkdtemp(prefix="wren-run-"))
    cgroup = ""
    try:
        inner = prepare(workdir)
        if level.level == BUBBLEWRAP:
            prefix = _bwrap_command(str(workdir), extra_paths)
        else:
            prefix = list(level.unshare)
        cmd = [*prefix, *inner]
        if level.pids_cgroup and os.geteuid() == 0:
            cgroup = _make_cgroup(level.pids_cgroup)
            if cgroup:  # the shell joins the cgroup, then becomes the sandbox
                procs = os.path.join(cgroup, "cgroup.procs")
                cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *cmd]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "TMPDIR": str(workdir),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            **extra_env,
            "WREN_LIMIT_CPU": str(max(1, int(timeout_s) + 1)),
            "WREN_LIMIT_AS": str(memory_mb * 1024 * 1024),
            "WREN_LIMIT_NPROC": str(MAX_PROCESSES),
            "no_proxy": "*",
        }

        def stop_requested() -> bool:
            if cancel is not None and cancel.cancelled:
                return True
            return cancelled is not None and cancelled()

        def checkpoint() -> None:
            if cancel is not None:
                cancel.checkpoint()

        return _run(cmd, workdir, env, timeout_s, stop_requested, checkpoint, level.level)
    finally:
        if cgroup:
            _remove_cgroup(cgroup)
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    cmd: list[str],
    workdir: Path,
    env: dict[str, str],
    timeout_s: float,
    stop_requested: Callable[[], bool],
    checkpoint: Callable[[], None],
    level: str,
) -> RunResult:
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
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Tail(4 * MAX_OUTPUT_CHARS), _Tail(4 * MAX_OUTPUT_CHARS)
    tails = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    total = 0
    timed_out = was_cancelled = overflow = False
    deadline = t0 + timeout_s
    exited_at: float | None = None
    selector = selectors.DefaultSelector()
    try:
        for stream in (proc.stdout, proc.stderr):
            selector.register(stream, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select(timeout=POLL_S):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                total += len(chunk)
                tails[key.fd].add(chunk)
                if total > MAX_OUTPUT_BYTES:
                    overflow = True
                    break
            if overflow:
                break
            now = time.perf_counter()
            if proc.poll() is not None:
                # Done when both pipes are closed; a descendant that keeps one open gets a
                # moment, then is killed with the group.
                exited_at = exited_at or now
                if not selector.get_map() or now - exited_at > 0.5:
                    break
            if now > deadline:
                timed_out = True
                break
            if stop_requested():
                was_cancelled = True
                break
            checkpoint()  # the scheduler may run queued interactive work here
    finally:
        selector.close()
        _kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("the sandboxed process %d did not exit after SIGKILL", proc.pid)
    stopped = timed_out or was_cancelled or overflow
    return RunResult(
        ok=proc.returncode == 0 and not stopped,
        returncode=proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        timed_out=timed_out,
        cancelled=was_cancelled,
        isolation=level,
        elapsed_s=time.perf_counter() - t0,
        output_bytes=total,
        output_overflow=overflow,
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
