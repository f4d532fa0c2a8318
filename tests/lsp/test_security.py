"""Security and privacy guarantees that are not about a single feature.

- Only safetensors and GGUF load; trust_remote_code is never passed as anything but False;
  nothing in the server unpickles, evals or starts processes outside the verification sandbox.
- No network: every server the tests start runs with outbound sockets blocked (the netblock
  sitecustomize, also loaded by the fault-injection one), the block works, and no server tried.
- Repository text is data: the client renders model output as untrusted markdown (no scripts,
  no command links, no raw HTML); model output runs only with `wren.verify.runCode` in a trusted
  workspace, and then only in the sandbox (its limits: tests/unit/test_sandbox.py).

(Weight-file parsing and the loader's refusals: tests/unit/test_checks.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from .conftest import NETBLOCK_LOG, server_env
from .rawclient import RawServer

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "server" / "wren"
CLIENT = ROOT / "client-vscode" / "src"
SANDBOX = SERVER / "engine" / "actions" / "sandbox.py"


def python_sources() -> list[Path]:
    return sorted(SERVER.rglob("*.py"))


def code_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that are code, not comments or docstring prose."""
    import io
    import tokenize

    text = path.read_text(encoding="utf-8")
    skip: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            continue
        if tok.type == tokenize.STRING and tok.string.startswith(('"""', "'''")):
            skip.update(range(tok.start[0], tok.end[0] + 1))
    return [(i, line) for i, line in enumerate(text.split("\n"), 1) if i not in skip]


# -- what the server never does -----------------------------------------------------------------


def test_trust_remote_code_is_never_enabled() -> None:
    offenders = []
    for path in python_sources():
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"trust_remote_code\s*=\s*([^,)\s]+)", text):
            if m.group(1) != "False":
                offenders.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
        for m in re.finditer(r"['\"]trust_remote_code['\"]\s*:\s*([^,}\s]+)", text):
            if m.group(1) != "False":
                offenders.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    assert not offenders, offenders


def test_every_folder_load_says_trust_remote_code_false() -> None:
    """Each from_pretrained on a model folder passes trust_remote_code=False explicitly
    (GGUF conversions read a single file and have no code to trust)."""
    loading = (SERVER / "model" / "loading.py").read_text(encoding="utf-8")
    calls = re.findall(r"from_pretrained\((?:[^()]|\([^()]*\))*\)", loading)
    assert calls
    for call in calls:
        assert "trust_remote_code=False" in call or "gguf_file=" in call, call


UNSAFE = {
    r"\bpickle\.loads?\(": "unpickling",
    r"\btorch\.load\(": "torch.load (pickle)",
    r"\b(joblib|dill|cloudpickle)\b": "pickle-based loaders",
    r"(?<![\w.])eval\(": "eval",
    r"(?<![\w.])exec\(": "exec",
    r"\bos\.(system|popen|exec\w*|spawn\w*)\(": "starting processes",
    r"\bimport subprocess\b|\bfrom subprocess\b|\bsubprocess\.\w+\(": "starting processes",
    r"shell\s*=\s*True": "a shell",
    r"load_unsafe_extensions\s*=\s*True": "jedi importing extension modules from the project",
    r"\b(urllib\.request|http\.client|requests|httpx|aiohttp|socket\.create_connection)\b": (
        "network clients"
    ),
    r"snapshot_download|hf_hub_download|local_files_only\s*=\s*False": "downloads",
}


# The only exceptions, each for one kind of thing and each stated in SECURITY.md.
ALLOWED: dict[Path, set[str]] = {
    # Verification runs candidate code, in a limited subprocess.
    SANDBOX: set(UNSAFE.values()),
    # `git ls-files` lists a repository's files for `wren tune` (a command the user runs) and for
    # the tags index (the server, in a trusted workspace only: `use_git=ls.workspace_trusted`).
    SERVER / "workspace_files.py": {"starting processes"},
    # `wren.model.endpoint`: the one network client, used only when the user sets an endpoint.
    SERVER / "remote" / "http.py": {"network clients"},
    SERVER / "remote" / "backend.py": {"network clients"},
}


def test_no_unpickling_eval_processes_or_network_outside_the_sandbox() -> None:
    offenders = []
    for path in python_sources():
        allowed = ALLOWED.get(path, set())
        for number, line in code_lines(path):
            for pattern, what in UNSAFE.items():
                if what not in allowed and re.search(pattern, line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_allowed_exceptions_still_exist() -> None:
    """An exception that matches nothing any more is stale: remove it and its SECURITY.md line."""
    for path, kinds in ALLOWED.items():
        found = {
            what
            for _, line in code_lines(path)
            for pattern, what in UNSAFE.items()
            if re.search(pattern, line)
        }
        assert kinds & found, f"{path.relative_to(ROOT)}: no {sorted(kinds)} left"


def test_the_server_never_starts_git_or_opens_a_connection_at_import() -> None:
    """tune/data.py and remote/ are imported lazily: `wren serve` without an endpoint loads
    neither (so neither the process start nor the network client is reachable)."""
    import subprocess
    import sys

    code = (
        "import sys; from wren.lsp.app import create_server; create_server(); "
        "bad = [m for m in ('wren.model.tune.data', 'wren.remote.http') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_model_libraries_are_told_to_stay_offline() -> None:
    code = (
        "import os, wren.model.loading as m; "
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'], "
        "os.environ['HF_HUB_DISABLE_TELEMETRY'])"
    )
    env = server_env()
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "1", "1"]


# -- no network -----------------------------------------------------------------------------------


def test_the_network_block_works(tmp_path: Path) -> None:
    """A positive control: in a process started like the test servers, connecting out fails
    and is recorded (so an empty record means nothing tried)."""
    log = tmp_path / "attempts.log"
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('203.0.113.7', 443), timeout=2)\n"
        "except OSError as err:\n"
        "    print('blocked' if 'blocked' in str(err) else f'other: {err}')\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "c = socket.create_connection(s.getsockname(), timeout=2); print('loopback ok')\n"
    )
    env = server_env(WREN_NETBLOCK_LOG=str(log))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[:2] == ["blocked", "loopback ok"], out.stdout + out.stderr
    assert "203.0.113.7" in log.read_text()


def test_fault_injection_servers_block_the_network_too(tmp_path: Path) -> None:
    log = tmp_path / "attempts.log"
    faults = str(Path(__file__).parent / "faults")
    env = server_env(WREN_NETBLOCK_LOG=str(log))
    env["PYTHONPATH"] = faults + ":" + env["PYTHONPATH"]
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('198.51.100.9', 80), timeout=2)\n"
        "except OSError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert "blocked" in out.stdout
    assert "198.51.100.9" in log.read_text()


@pytest.mark.model
def test_no_server_started_by_the_tests_tried_the_network() -> None:
    """Every server in this session (the shared one, the raw ones, the UTF-8 one, the broken-
    model ones) logs to the same file; this module runs after the other server tests."""
    attempts = NETBLOCK_LOG.read_text() if NETBLOCK_LOG.exists() else ""
    assert attempts == "", f"a server tried to reach the network:\n{attempts}"


# -- model output is data -------------------------------------------------------------------------


def test_client_renders_model_output_as_untrusted_markdown() -> None:
    """The webview has scripts and command links off, raw HTML escaped and a strict CSP;
    no MarkdownString is trusted or allowed HTML."""
    sources = {p.name: p.read_text(encoding="utf-8") for p in CLIENT.rglob("*.ts")}
    everything = "\n".join(sources.values())
    for forbidden in (
        r"enableScripts\s*:\s*true",
        r"enableCommandUris\s*:\s*true",
        r"isTrusted\s*(=|:)\s*true",
        r"supportHtml\s*(=|:)\s*true",
        r"MarkdownIt\(\{[^}]*html\s*:\s*true",
        r"innerHTML",
    ):
        assert not re.search(forbidden, everything), forbidden
    for creation in re.finditer(r"createWebviewPanel\((?:[^;])*?\)\s*;", everything, re.S):
        assert re.search(r"enableScripts\s*:\s*false", creation.group(0)), creation.group(0)
        assert re.search(r"enableCommandUris\s*:\s*false", creation.group(0)), creation.group(0)
    markdown = sources["markdown.ts"]
    assert re.search(r"new MarkdownIt\(\{[^}]*html\s*:\s*false", markdown)
    assert "default-src 'none'" in markdown


class _FakeServer(SimpleNamespace):
    def report_problems(self, problems: list[str]) -> None:
        self.problems = [*getattr(self, "problems", []), *problems]


@pytest.mark.parametrize("trusted", [True, False])
def test_running_code_needs_the_setting_and_a_trusted_workspace(trusted: bool) -> None:
    from wren.config import Settings
    from wren.lsp.actions import verify_options
    from wren.lsp.lifecycle import apply_settings

    ls: Any = _FakeServer(workspace_trusted=trusted, settings=Settings())
    assert verify_options(ls, "/w/a.py", "assert f() == 1").run_code is False  # off by default
    apply_settings(ls, {"verify": {"runCode": True}})
    options = verify_options(ls, "/w/a.py", "assert f() == 1")
    assert options.run_code is trusted
    assert (options.test_code != "") is trusted
    if not trusted:
        assert any("Restricted Mode" in p for p in ls.problems)
        ls.workspace_trusted = True  # even if trust state changed later, the setting stayed off
        assert ls.settings.verify.runCode is False


async def test_restricted_mode_turns_code_verification_off_in_the_server() -> None:
    server = await RawServer.start()
    try:
        await server.initialize({"verify": {"runCode": True}}, trusted=False)
        await server.status()
        messages = [
            n["params"]["message"]
            for n in server.notifications
            if n["method"] == "window/showMessage"
        ]
        assert any("Restricted Mode" in m for m in messages), messages
        await server.call("shutdown")
        server.notify("exit")
        assert await server.wait_exit(30) == 0
    finally:
        await server.kill()


def test_sandboxed_code_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    from wren.engine.actions.sandbox import run_python

    target = tmp_path / "written-by-candidate.txt"
    run_python(f"open({str(target)!r}, 'w').write('x')\n", timeout_s=10)
    assert not target.exists()
