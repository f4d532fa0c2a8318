"""Verification rules and the sandbox that runs candidate code (its limits are enforced)."""

from __future__ import annotations

import time

import pytest

from wren.engine.actions.sandbox import network_namespace_prefix, run_python
from wren.engine.actions.verify import (
    check_change,
    new_undefined_names,
    syntax_error_in,
    undefined_names,
)

# -- static checks --------------------------------------------------------------------------


def test_syntax_error_in_changed_rows_is_reported() -> None:
    text = "def f(x)\n    return x\n"
    err = syntax_error_in("python", text, 0, 1)
    assert err is not None and err.startswith("line 1")


def test_preexisting_error_elsewhere_is_not_the_changes_fault() -> None:
    old = "def f(:\n    pass\n\nx = 1\n"
    new = "def f(:\n    pass\n\nx = 2\n"
    assert syntax_error_in("python", new, 3, 3, old) is None


def test_a_change_that_breaks_a_clean_file_is_reported_wherever_the_error_is() -> None:
    old = "x = [1,\n     2]\ny = 3\n"
    new = "x = [1,\n     2\ny = 3\n"
    assert syntax_error_in("python", new, 1, 1, old) is not None


def test_other_languages_use_tree_sitter() -> None:
    assert syntax_error_in("javascript", "function f() { return 1; }\n", 0, 0) is None
    assert syntax_error_in("javascript", "function f() { return (1; }\n", 0, 0) is not None
    assert syntax_error_in("plaintext", "anything (", 0, 0) is None  # no grammar: no opinion


def test_undefined_names() -> None:
    code = (
        "import os\nfrom x import y\n\nCONST = 1\n\n"
        "def f(a, *args, **kw):\n    global G\n    G = 2\n    b = [i for i in a]\n"
        "    return os.path, y, CONST, b, len, missing, __name__\n\n"
        "class C:\n    attr = CONST\n    other = nowhere\n    def m(self):\n        return G, C\n"
    )
    assert undefined_names(code) == {"missing", "nowhere"}


def test_star_import_or_broken_code_disables_the_name_check() -> None:
    assert undefined_names("from os.path import *\nprint(join)\n") is None
    assert undefined_names("def f(:\n") is None


def test_only_new_undefined_names_count() -> None:
    old = "def f(items):\n    return totl\n"
    assert new_undefined_names(old, "def f(items):\n    return total\n") == ["total"]
    assert new_undefined_names(old, "def f(items):\n    return totl + 1\n") == []
    # a name mentioned only in a comment of the old code is still new
    old_comment = "# use numpy here\ndef f():\n    pass\n"
    assert new_undefined_names(old_comment, "# use numpy here\ndef f():\n    numpy.x\n") == [
        "numpy"
    ]


def test_check_change_rules() -> None:
    old = "def f(a):\n    return a\n"
    ok = check_change("python", old, "def f(a):\n    return a + 1\n", 0, 1, "return a + 1")
    assert ok.ok and ok.checks == ("syntax", "names")
    same = check_change("python", old, old, 0, 1, "def f(a):\n    return a\n")
    assert not same.ok and "same as the original" in same.reason
    bad = check_change("python", old, "def f(a):\n    return a +\n", 0, 1, "x")
    assert not bad.ok and "does not parse" in bad.reason
    names = check_change("python", old, "def f(a):\n    return helper(a)\n", 0, 1, "x")
    assert not names.ok and "`helper`" in names.reason
    empty = check_change("python", old, old + "\n", 0, 1, "   ")
    assert not empty.ok and "empty" in empty.reason


# -- sandbox --------------------------------------------------------------------------------


def test_runs_code_and_captures_output() -> None:
    result = run_python("print('hello')\n", timeout_s=10)
    assert result.ok and result.stdout.strip() == "hello"


def test_failure_reason_is_the_exception_line() -> None:
    result = run_python("def f():\n    return 1 / 0\nf()\n", timeout_s=10)
    assert not result.ok
    assert "ZeroDivisionError" in result.reason
    assert "candidate.py" in result.reason


def test_an_infinite_loop_is_killed() -> None:
    t0 = time.perf_counter()
    result = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert time.perf_counter() - t0 < 8
    assert not result.ok and (result.timed_out or (result.returncode or 0) < 0)
    assert "did not finish" in result.reason or "killed" in result.reason


def test_cpu_limit_applies_even_when_sleeping_is_not_involved() -> None:
    # RLIMIT_CPU ends a CPU-bound process even if the wall-clock watchdog were late.
    result = run_python(
        "import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU)[0])\n", timeout_s=3
    )
    assert result.ok and int(result.stdout) == 4


def test_memory_limit_is_enforced() -> None:
    result = run_python(
        "x = bytearray(600 * 1024 * 1024)\nprint('allocated')\n", timeout_s=10, memory_mb=256
    )
    assert not result.ok
    assert "MemoryError" in result.reason or (result.returncode or 0) < 0
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


def test_network_is_blocked_without_the_audit_hook_too_when_namespaces_work() -> None:
    if not network_namespace_prefix():
        pytest.skip("unshare -n is not available on this machine")
    code = (
        "import sys, socket\n"
        "sys.addaudithook  # the guard is installed, but ctypes-level code could bypass it;\n"
        "# the namespace has no route anyway:\n"
        "import fcntl, struct\n"
        "names = [n for _, n in socket.if_nameindex()]\n"
        "print(names)\n"
    )
    result = run_python(code, timeout_s=10)
    assert result.ok, result.stderr
    assert result.stdout.strip() == "['lo']"
    assert result.network_isolation == "namespace+audit-hook"


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
    t0 = time.perf_counter()
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    result = run_python("import time\ntime.sleep(30)\n", timeout_s=30, cancelled=cancelled)
    assert result.cancelled and not result.ok
    assert time.perf_counter() - t0 < 10
