"""The sandbox that runs candidate code: its limits, its isolation, and that it waits politely.

Tests that need bubblewrap skip (with the reason) where it is missing; on the development
machines and in CI it is installed, so they run.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wren.engine.actions.loop import Candidate, VerifyOptions, run_examples
from wren.engine.actions.outcome import ProposedEdit
from wren.engine.actions.sandbox import (
    BUBBLEWRAP,
    DEFAULT_TIMEOUT_S,
    LIMITS,
    MAX_OUTPUT_BYTES,
    MAX_OUTPUT_CHARS,
    MAX_PROCESSES,
    MAX_TIMEOUT_S,
    NAMESPACES,
    Isolation,
    clamp_timeout,
    detect_isolation,
    isolation,
    isolation_level,
    run_python,
    verification_status,
)
from wren.engine.scheduler import BATCH, INTERACTIVE, Scheduler
from wren.errors import GenerationCancelled
from wren.types import CancelToken

ROOT = Path(__file__).resolve().parents[2]

needs_bwrap = pytest.mark.skipif(
    isolation().level != BUBBLEWRAP,
    reason="bubblewrap (bwrap) is not installed or does not work here: "
    f"the sandbox runs at a weaker level ({isolation_level()})",
)


def _processes_named(name: str) -> list[int]:
    """Processes whose comm (the name set with PR_SET_NAME) is `name`, seen from the host."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path("/proc", entry, "comm").read_text().strip() == name:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _wait_until(predicate: object, timeout: float) -> bool:
    """Poll `predicate` (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


@pytest.fixture
def unique_name() -> Iterator[str]:
    """A process name for a candidate's helper; leftovers are killed after the test."""
    name = "wren" + uuid.uuid4().hex[:10]
    yield name
    for pid in _processes_named(name):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


_NAME_SELF = (
    "import ctypes\n"
    "ctypes.CDLL(None).prctl(15, ctypes.c_char_p({name!r}.encode()), 0, 0, 0)  # PR_SET_NAME\n"
)


# -- the basics --------------------------------------------------------------------------------


def test_runs_code_and_captures_output() -> None:
    result = run_python("print('hello')\n", timeout_s=10)
    assert result.ok and result.stdout.strip() == "hello"
    assert result.output_bytes == len("hello\n")


def test_failure_reason_is_the_exception_line() -> None:
    result = run_python("def f():\n    return 1 / 0\nf()\n", timeout_s=10)
    assert not result.ok
    assert "ZeroDivisionError" in result.reason
    assert "candidate.py" in result.reason


def test_an_infinite_loop_is_killed() -> None:
    result = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert not result.ok and (result.timed_out or (result.returncode or 0) < 0)
    assert "did not finish" in result.reason or "killed" in result.reason


def test_cpu_limit_applies_even_when_sleeping_is_not_involved() -> None:
    # RLIMIT_CPU ends a CPU-bound process even if the wall-clock watchdog were late.
    result = run_python(
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU)[0])\n", timeout_s=3
    )
    assert result.ok and int(result.stdout) == 4


def test_the_timeout_is_clamped_whatever_the_caller_asks() -> None:
    assert clamp_timeout(10_000) == MAX_TIMEOUT_S
    assert clamp_timeout(2.5) == 2.5
    assert clamp_timeout(math.nan) == DEFAULT_TIMEOUT_S
    assert clamp_timeout(-1) == DEFAULT_TIMEOUT_S
    assert clamp_timeout(math.inf) == MAX_TIMEOUT_S
    # ...and the run itself gets the clamped limit (RLIMIT_CPU = timeout + 1).
    result = run_python(
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU)[0])\n", timeout_s=1e9
    )
    assert result.ok and int(result.stdout) == int(MAX_TIMEOUT_S) + 1


def test_memory_limit_is_enforced() -> None:
    result = run_python(
        "x = bytearray(600 * 1024 * 1024)\nprint('allocated')\n", timeout_s=10, memory_mb=256
    )
    assert not result.ok
    assert "MemoryError" in result.reason or "killed" in result.reason
    assert "allocated" not in result.stdout


def test_socket_connect_fails() -> None:
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "s.settimeout(2)\n"
        "s.connect(('93.184.216.34', 80))\n"
        "print('connected')\n"
    )
    result = run_python(code, timeout_s=10)
    assert not result.ok
    assert "connected" not in result.stdout
    assert "network access is blocked" in result.reason


def test_starting_processes_is_blocked() -> None:
    result = run_python("import subprocess\nsubprocess.run(['true'])\n", timeout_s=10)
    assert not result.ok and "starting processes is blocked" in result.reason
    result = run_python("import os\nos.system('true')\n", timeout_s=10)
    assert not result.ok and "blocked" in result.reason


def test_environment_and_workdir_are_fresh() -> None:
    code = "import os\nprint(sorted(k for k in os.environ if 'TOKEN' in k or 'KEY' in k))\n"
    result = run_python(code, timeout_s=10)
    assert result.ok and result.stdout.strip() == "[]"


def test_run_name_keeps_main_blocks_quiet() -> None:
    code = "if __name__ == '__main__':\n    raise SystemExit(3)\nprint('imported')\n"
    assert run_python(code, timeout_s=10, run_name="__wren_check__").ok
    assert not run_python(code, timeout_s=10).ok


def test_cancellation_stops_the_run() -> None:
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    result = run_python("import time\ntime.sleep(30)\n", timeout_s=30, cancelled=cancelled)
    assert result.cancelled and not result.ok and not result.timed_out


def test_a_cancelled_token_kills_the_child(unique_name: str) -> None:
    cancel = CancelToken()
    code = _NAME_SELF.format(name=unique_name) + "import time\ntime.sleep(30)\n"

    def cancel_when_running() -> None:
        if _wait_until(lambda: _processes_named(unique_name), 20):
            cancel.cancel("superseded")

    threading.Thread(target=cancel_when_running, daemon=True).start()
    result = run_python(code, timeout_s=30, cancel=cancel)
    assert result.cancelled and not result.timed_out
    assert _wait_until(lambda: not _processes_named(unique_name), 10)


# -- isolation level -----------------------------------------------------------------------------


def test_the_isolation_level_is_stated_with_its_gap() -> None:
    line = isolation_level()
    assert line and "\n" not in line
    assert line.split(":")[0] in ("bubblewrap", "unshare", "limits only")
    if isolation().level != BUBBLEWRAP:
        assert "gap" in line  # a weaker level says what it leaves open


@pytest.mark.parametrize("level", [NAMESPACES, LIMITS])
def test_fallback_levels_still_run_code_and_say_what_they_leave_open(level: str) -> None:
    found = detect_isolation((level,))
    if found.level != level:
        pytest.skip(f"unshare does not work here (fell back to {found.level})")
    result = run_python("print(6 * 7)\n", timeout_s=10, sandbox=found)
    assert result.ok and result.stdout.strip() == "42"
    assert result.isolation == level
    assert "gap:" in found.describe()


@needs_bwrap
def test_bubblewrap_is_used_where_installed() -> None:
    assert isolation().level == BUBBLEWRAP
    assert isolation_level().startswith("bubblewrap:")
    assert run_python("print(1)\n", timeout_s=10).isolation == BUBBLEWRAP


def test_network_is_blocked_without_the_audit_hook_too_when_namespaces_work() -> None:
    if isolation().level == LIMITS:
        pytest.skip("neither bubblewrap nor unshare works here")
    code = "import socket\nprint([n for _, n in socket.if_nameindex()])\n"
    result = run_python(code, timeout_s=10)
    assert result.ok, result.stderr
    assert result.stdout.strip() == "['lo']"


# -- the holes a candidate could use -----------------------------------------------------------


def test_an_output_flood_is_cut_off_and_the_child_stopped() -> None:
    # Without a cap the server would hold everything printed until the timeout.
    code = "line = 'x' * 1000\nwhile True:\n    print(line)\n"
    result = run_python(code, timeout_s=30)
    assert not result.ok and result.output_overflow and not result.timed_out
    assert MAX_OUTPUT_BYTES < result.output_bytes <= MAX_OUTPUT_BYTES + 65536
    assert len(result.stdout) <= MAX_OUTPUT_CHARS
    assert "output" in result.reason


def test_a_fork_bomb_is_bounded() -> None:
    # Native fork (ctypes) gets past the audit hook; the process limit stops it.
    code = (
        "import ctypes, os, time\n"
        "libc = ctypes.CDLL(None)\n"
        "n = 0\n"
        "for _ in range(300):\n"
        "    pid = libc.fork()\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    if pid < 0:\n"
        "        break\n"
        "    n += 1\n"
        "print(n)\n"
    )
    if os.geteuid() == 0 and not isolation().pids_cgroup:
        pytest.skip(f"root is exempt from RLIMIT_NPROC and no pids cgroup: {isolation_level()}")
    result = run_python(code, timeout_s=30)
    assert result.ok, result.reason
    assert 0 <= int(result.stdout) <= MAX_PROCESSES


@needs_bwrap
def test_a_setsid_grandchild_dies_with_the_run(tmp_path: Path, unique_name: str) -> None:
    marker = tmp_path / "escaped"
    code = (
        "import ctypes, os, time\n"
        "if ctypes.CDLL(None).fork() == 0:\n"
        "    os.setsid()  # leaves the process group the sandbox kills\n"
        + "    ".join(("", *_NAME_SELF.format(name=unique_name).splitlines(True)))
        + "    time.sleep(2)\n"
        "    try:\n"
        f"        open({str(marker)!r}, 'w').write('escaped')\n"
        "    except OSError:\n"
        "        pass\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('parent done')\n"
    )
    result = run_python(code, timeout_s=10)
    assert "parent done" in result.stdout
    # Generous margins: the grandchild would have written the marker after 2 s.
    assert _wait_until(lambda: not _processes_named(unique_name), 10), "the grandchild survived"
    time.sleep(3)
    assert not marker.exists()


@needs_bwrap
def test_the_child_cannot_signal_the_server() -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, frame: received.append(sig))
    try:
        code = (
            "import os, signal\n"
            "try:\n"
            f"    os.kill({os.getpid()}, signal.SIGTERM)\n"
            "    print('sent')\n"
            "except OSError as err:\n"
            "    print(type(err).__name__)\n"
        )
        result = run_python(code, timeout_s=10)
        time.sleep(0.2)  # a delivered signal's handler would have run by now
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert result.ok, result.reason
    assert result.stdout.strip() in ("ProcessLookupError", "PermissionError")
    assert received == []


@needs_bwrap
def test_native_code_has_no_network(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    code = (
        "import ctypes, socket, struct\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)\n"
        f"addr = struct.pack('=HH4s8x', socket.AF_INET, socket.htons({port}),"
        " socket.inet_aton('127.0.0.1'))\n"
        "rc = libc.connect(fd, addr, len(addr))\n"
        "print('connected' if rc == 0 else 'refused', ctypes.get_errno())\n"
    )
    try:
        result = run_python(code, timeout_s=10)
        assert result.ok, result.reason
        assert result.stdout.startswith("refused")
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's loopback
    finally:
        listener.close()


@needs_bwrap
def test_native_system_call_writes_nothing_outside_the_work_folder(tmp_path: Path) -> None:
    outside = [tmp_path / "from-system.txt", ROOT / f".wren-sandbox-probe-{uuid.uuid4().hex}"]
    commands = "; ".join(f"echo x > {p}" for p in outside)
    code = f"import ctypes\nprint(ctypes.CDLL(None).system({commands.encode()!r}))\n"
    try:
        result = run_python(code, timeout_s=10)
        assert result.ok, result.reason
        assert [p for p in outside if p.exists()] == []
    finally:
        for p in outside:
            p.unlink(missing_ok=True)


@needs_bwrap
def test_writes_to_home_and_the_repository_do_not_land(tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    targets = [Path.home() / f".wren-sandbox-probe-{token}", ROOT / f".wren-probe-{token}"]
    code = (
        "import sys\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('wrote', path)\n"
        "    except OSError as err:\n"
        "        print('refused', type(err).__name__)\n"
    )
    try:
        result = run_python(code, timeout_s=10)
        assert result.ok, result.reason
        assert [t for t in targets if t.exists()] == []
        # The repository is read-only; the home is a private, empty, throwaway folder.
        assert "refused OSError" in result.stdout or "refused PermissionError" in result.stdout
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


@needs_bwrap
def test_the_users_home_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # A readable "home" outside /tmp, with an ssh-like secret: only the sandbox hides it.
    base = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else ROOT
    home = Path(tempfile.mkdtemp(prefix="wren-home-", dir=base))
    try:
        secret = home / ".ssh" / "id_test"
        secret.parent.mkdir()
        secret.write_text("PRIVATE KEY")
        home.chmod(0o755)
        secret.parent.chmod(0o755)
        secret.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        monkeypatch.setenv("HOME", str(home))
        code = (
            f"try:\n    print(open({str(secret)!r}).read())\n"
            "except OSError as err:\n    print(type(err).__name__)\n"
        )
        result = run_python(code, timeout_s=10)
        assert result.ok, result.reason
        assert "PRIVATE KEY" not in result.stdout
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)


@needs_bwrap
def test_the_files_next_to_the_code_stay_importable(tmp_path: Path) -> None:
    # Verification imports the user's sibling modules (extra_paths): hidden folders are
    # mounted back read-only for them.
    (tmp_path / "helper_mod.py").write_text("VALUE = 41\n")
    result = run_python(
        "import helper_mod\nprint(helper_mod.VALUE + 1)\n",
        timeout_s=10,
        extra_paths=(str(tmp_path),),
    )
    assert result.ok, result.reason
    assert result.stdout.strip() == "42"


# -- waiting politely -------------------------------------------------------------------------


def test_completions_run_while_a_test_runs(unique_name: str) -> None:
    """A verification run (a BATCH job) waits for its child in slices, calling the cancel
    token's checkpoint: an INTERACTIVE job submitted meanwhile runs while the child is still
    running, and cancelling the batch job kills the child."""
    scheduler = Scheduler()
    started = threading.Event()
    code = _NAME_SELF.format(name=unique_name) + "import time\ntime.sleep(30)\n"
    candidate = Candidate(ProposedEdit(0, 0, code), code, 0, 0, code)
    options = VerifyOptions(run_code=True, timeout_s=30)
    batch_cancel: list[CancelToken] = []

    def batch(cancel: CancelToken) -> object:
        batch_cancel.append(cancel)
        started.set()
        return run_examples(candidate, [], options, cancel)

    def interactive(cancel: CancelToken) -> bool:
        # Runs inside the batch job's wait: the sandboxed child is still alive.
        alive = _wait_until(lambda: bool(_processes_named(unique_name)), 20)
        batch_cancel[0].cancel("done with this test")
        return alive

    try:
        batch_future, _ = scheduler.submit(batch, BATCH)
        assert started.wait(30)
        quick_future, _ = scheduler.submit(interactive, INTERACTIVE)
        assert quick_future.result(timeout=60) is True, "the completion waited for the run"
        with pytest.raises(GenerationCancelled):
            batch_future.result(timeout=60)
        assert _wait_until(lambda: not _processes_named(unique_name), 10)
    finally:
        scheduler.close()


def test_isolation_override_keeps_limits_only() -> None:
    result = run_python("print('x')\n", timeout_s=10, sandbox=Isolation(LIMITS))
    assert result.ok and result.isolation == LIMITS


def test_the_status_says_how_runs_are_isolated_and_probes_only_when_running_is_on() -> None:
    assert verification_status(False) == {"runCode": False, "isolation": "not used"}
    assert verification_status(True) == {"runCode": True, "isolation": isolation_level()}


@needs_bwrap
def test_a_run_dies_with_the_server(unique_name: str) -> None:
    """If the server is killed (no cleanup runs), its sandboxed child dies with it."""
    code = _NAME_SELF.format(name=unique_name) + "import time\ntime.sleep(60)\n"
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom wren.engine.actions.sandbox import run_python\n"
            "run_python(sys.stdin.read(), timeout_s=60)\n",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        assert server.stdin is not None
        server.stdin.write(code.encode())
        server.stdin.close()
        assert _wait_until(lambda: bool(_processes_named(unique_name)), 30)
        server.kill()
        server.wait(timeout=30)
        assert _wait_until(lambda: not _processes_named(unique_name), 10), "the run outlived it"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
