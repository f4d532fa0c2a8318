"""Opening a folder never runs its code, trusted or not (issue 10, item 1).

`python -m wren serve` started from a workspace folder put that folder first on `sys.path`, so a
workspace holding `typer.py`, `rich/`, or a `wren/` package ran its code inside the server as
soon as VS Code started it, Restricted Mode included. The client now starts the server with
`-P` (safe path) from a neutral working directory (client-vscode/src/pure/launch.ts; its
SERVER_ARGS are read from that file here, so this test and the client agree), and the server
drops the working directory from `sys.path` before importing anything else (defence in depth).

Every planted module writes a marker file when imported; each test starts a real server,
initializes it on that workspace, opens a file that imports the planted names, and gets a
completion. No marker may appear. The control test starts the server the old way and sees the
markers: the planted files are live, and the old launch was the hole.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from .conftest import server_env
from .rawclient import RawServer

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_TS = ROOT / "client-vscode" / "src" / "pure" / "launch.ts"

# Module names Wren or its dependencies import at start-up or while serving, plus the files
# Python itself might pick up from a directory (site customization, .pth, pyvenv.cfg).
PLANTED_MODULES = (
    "typer.py",
    "rich/__init__.py",
    "attrs.py",
    "cattrs.py",
    "jedi.py",
    "logging.py",
    "pygls/__init__.py",
    "wren/__init__.py",
    "sitecustomize.py",
    "usercustomize.py",
)
DOCUMENT = "import typer\nimport rich\nimport attrs\nimport jedi\n\n\ndef add(a, b):\n    return "


def client_server_args() -> list[str]:
    """`SERVER_ARGS` from the client's launch.ts: the argv the extension starts Python with."""
    match = re.search(r"export const SERVER_ARGS = (\[[^\]]*\])", LAUNCH_TS.read_text("utf-8"))
    assert match, f"SERVER_ARGS not found in {LAUNCH_TS}"
    args = json.loads(match.group(1))
    assert args[-3:] == ["-m", "wren", "serve"], args
    return list(args)


OLD_CLIENT_ARGS = ["-m", "wren", "serve"]


def plant(workspace: Path, markers: Path, modules: Sequence[str] = PLANTED_MODULES) -> None:
    """Files that write `markers/<name>` when Python imports or processes them."""
    markers.mkdir(parents=True, exist_ok=True)
    for rel in modules:
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = markers / rel.replace("/", "__")
        path.write_text(f"open({str(marker)!r}, 'w').write('imported')\n", encoding="utf-8")
    # A .pth file runs its `import` lines when it sits in a site directory.
    pth = markers / "evil.pth"
    (workspace / "evil.pth").write_text(f"import os; open({str(pth)!r}, 'w').write('pth')\n")
    # A pyvenv.cfg next to the interpreter would redirect sys.prefix; here it must do nothing.
    (workspace / "pyvenv.cfg").write_text(
        f"home = {workspace / 'bin'}\ninclude-system-site-packages = false\nversion = 3.11.0\n"
    )
    (workspace / "main.py").write_text(DOCUMENT, encoding="utf-8")


def launch_env() -> dict[str, str]:
    """The client's environment (process env + PYTHONUNBUFFERED/PYTHONIOENCODING) with the
    tests' network block, and no empty PYTHONPATH entry (that one means "the working
    directory" even under -P; the client's neutral working directory covers it)."""
    env = server_env(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    env["PYTHONPATH"] = os.pathsep.join(p for p in env["PYTHONPATH"].split(os.pathsep) if p)
    return env


async def start(args: Sequence[str], cwd: Path) -> RawServer:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=str(cwd),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=launch_env(),
        limit=64 * 1024 * 1024,
    )
    return RawServer(proc)


async def answer(raw: RawServer, method: str, params: object = None) -> dict[str, object]:
    """The response to a request, failing at once (with the server's log) if the server exits."""
    _, fut = raw.request(method, params)
    exited = asyncio.ensure_future(raw.proc.wait())
    try:
        await asyncio.wait({fut, exited}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not fut.done():
        log = raw.stderr_text()[-3000:]
        pytest.fail(f"no answer to {method} (exit {raw.proc.returncode}):\n{log}")
    response = fut.result()
    assert "error" not in response, (response, raw.stderr_text()[-3000:])
    return response


async def serve_one_completion(raw: RawServer, workspace: Path) -> dict[str, object]:
    """initialize (untrusted, like Restricted Mode) on the workspace, open a file that imports
    the planted names, get a completion; returns the inline completion response."""
    await answer(
        raw,
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": workspace.as_uri(),
            "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
            "capabilities": {},
            "initializationOptions": {
                "settings": {"completion": {"timeBudgetMs": 20000}},
                "workspaceTrusted": False,
            },
        },
    )
    raw.notify("initialized", {})
    for _ in range(3000):  # the model loads in a few seconds; a hang guard only
        st = (await answer(raw, "workspace/executeCommand", {"command": "wren.server.status"}))[
            "result"
        ]
        assert isinstance(st, dict)
        if st["state"] in ("ready", "error"):
            break
        await asyncio.sleep(0.2)
    assert st["state"] == "ready", (st, raw.stderr_text()[-3000:])
    uri = (workspace / "main.py").as_uri()
    raw.open(uri, DOCUMENT)
    lines = DOCUMENT.split("\n")
    position = {"line": len(lines) - 1, "character": len(lines[-1])}
    response = await answer(
        raw,
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}},
    )
    await answer(raw, "shutdown")
    raw.notify("exit")
    assert await raw.wait_exit(30) == 0, raw.stderr_text()[-3000:]
    return response


@pytest.fixture
async def servers() -> AsyncIterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for raw in started:
        await raw.kill()


def written(markers: Path) -> list[str]:
    return sorted(p.name for p in markers.iterdir())


@pytest.mark.model
async def test_client_launch_runs_no_workspace_code(
    tmp_path: Path, servers: list[RawServer]
) -> None:
    """The client's argv from its working directory (a neutral folder, here the storage dir)."""
    workspace, markers, storage = tmp_path / "ws", tmp_path / "markers", tmp_path / "storage"
    storage.mkdir()
    plant(workspace, markers)
    raw = await start(client_server_args(), cwd=storage)
    servers.append(raw)
    response = await serve_one_completion(raw, workspace)
    assert written(markers) == [], raw.stderr_text()[-3000:]
    assert "result" in response


@pytest.mark.model
async def test_client_args_run_no_workspace_code_even_from_the_workspace(
    tmp_path: Path, servers: list[RawServer]
) -> None:
    """The client's argv with the workspace itself as working directory (an older client, or
    a user starting the server by hand there): -P alone keeps the planted `wren/` out."""
    workspace, markers = tmp_path / "ws", tmp_path / "markers"
    plant(workspace, markers)
    raw = await start(client_server_args(), cwd=workspace)
    servers.append(raw)
    await serve_one_completion(raw, workspace)
    assert written(markers) == [], raw.stderr_text()[-3000:]
    assert "ignoring the working directory" not in raw.stderr_text()


@pytest.mark.model
async def test_server_drops_the_working_directory_without_safe_path(
    tmp_path: Path, servers: list[RawServer]
) -> None:
    """Defence in depth: started the old way (no -P, cwd = workspace), the server removes the
    working directory from sys.path before importing its dependencies, and says so. (It cannot
    stop a planted `wren/` package, imported before any of its code runs: the control below.)"""
    workspace, markers = tmp_path / "ws", tmp_path / "markers"
    plant(workspace, markers, [m for m in PLANTED_MODULES if not m.startswith("wren/")])
    raw = await start(OLD_CLIENT_ARGS, cwd=workspace)
    servers.append(raw)
    await serve_one_completion(raw, workspace)
    assert written(markers) == [], raw.stderr_text()[-3000:]
    assert "WARNING wren: ignoring the working directory on the import path" in raw.stderr_text()


async def test_control_old_launch_ran_workspace_code(
    tmp_path: Path, servers: list[RawServer]
) -> None:
    """The hole, shown: the old argv from the workspace imports the planted `wren/` package
    (the server never starts). If this stops writing a marker, the tests above prove nothing."""
    workspace, markers = tmp_path / "ws", tmp_path / "markers"
    plant(workspace, markers)
    raw = await start(OLD_CLIENT_ARGS, cwd=workspace)
    servers.append(raw)
    code = await raw.wait_exit(60)
    assert code != 0
    assert written(markers) == ["wren____init__.py"], raw.stderr_text()[-3000:]
