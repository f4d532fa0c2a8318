"""Start a real OpenAI-compatible server on localhost for the tests and scripts/bench_remote.py.

Two servers, both running the default model (SmolLM2-135M-Instruct):

  stdlib     tests/remote/openai_server.py: Wren's own in-process backend behind the HTTP API
             (written here; counts requests, disconnects and tokens at `GET /stats`)
  llama-cpp  llama-cpp-python 0.3.36's server (`python -m llama_cpp.server`, a third-party
             server) on the default GGUF, from `.peer-venv` (scripts/setup.sh builds it). It has
             no `/stats`: the counts come from its log (uvicorn's access lines, "Disconnected
             from client", llama.cpp's per-answer "eval time ... runs").

Both are started the same way: `start_server(kind)` returns a `ModelServer` once the server
answers `/v1/models`, or raises with the server's last output (a hang guard bounds the wait).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEER_PYTHON = ROOT / ".peer-venv" / "bin" / "python"
KINDS = ("stdlib", "llama-cpp")
START_TIMEOUT_S = 180.0  # hang guard: the stdlib server loads torch and the model first

_EVAL = re.compile(r"^llama_perf_context_print:\s+eval time =.*/\s*(\d+) runs")
_ACCESS = re.compile(r'"POST /v1/(chat/)?completions HTTP')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_gguf() -> Path:
    """The default model's GGUF, resolved the way Wren resolves an empty wren.model.path."""
    from wren.model.loading import resolve_source

    return resolve_source("").path


class ModelServer:
    """One server process: its URL, the model name it serves, and what it has done so far."""

    def __init__(self, kind: str, name: str, threads: int = 1, extra: tuple[str, ...] = ()):
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r} (one of {', '.join(KINDS)})")
        self.kind, self.name, self.threads, self.extra = kind, name, threads, extra
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        self._counts = {"requests": 0, "disconnects": 0, "tokens": 0}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "stdlib":
            cmd = [sys.executable, str(HERE / "openai_server.py"), "--port", str(self.port)]
            return cmd + (["--name", self.name] if self.name else [])
        if not PEER_PYTHON.exists():
            raise RuntimeError(
                f"{PEER_PYTHON} is missing: run scripts/setup.sh, which installs "
                "llama-cpp-python[server]==0.3.36 there (the third-party server of these tests)."
            )
        t = str(self.threads)
        return [
            str(PEER_PYTHON), "-m", "llama_cpp.server",
            "--model", str(default_gguf()),
            "--model_alias", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", "4096", "--n_batch", "512",
            "--n_threads", t, "--n_threads_batch", t,
            # A shared server must queue requests: by default each new request (even a
            # /extras/tokenize) cuts the running answer short with a bare [DONE].
            "--interrupt_requests", "False",
            *self.extra,
        ]  # fmt: skip

    def start(self, port: int = 0) -> ModelServer:
        self.port = port or free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "server")}
        self.proc = subprocess.Popen(
            self.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the {self.kind} model server exited with code {self.proc.returncode} "
                    "while starting:\n" + self.tail()
                )
            names = self.served()
            if names:
                if not self.name:
                    self.name = names[0]
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(
            f"the {self.kind} model server did not answer within {START_TIMEOUT_S:g} s:\n"
            + self.tail()
        )

    def served(self) -> list[str]:
        """The names `/v1/models` lists; [] while the server is not answering."""
        try:
            with urllib.request.urlopen(f"{self.url}/v1/models", timeout=5) as resp:
                data = json.loads(resp.read())
        except (OSError, ValueError, urllib.error.URLError):
            return []
        return [str(m["id"]) for m in data.get("data", [])]

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log.append(line.rstrip("\n"))
            with self._lock:
                if _ACCESS.search(line):
                    self._counts["requests"] += 1
                elif "Disconnected from client" in line:
                    self._counts["disconnects"] += 1
                elif m := _EVAL.match(line):
                    self._counts["tokens"] += int(m.group(1))

    def tail(self, n: int = 30) -> str:
        return "\n".join(list(self.log)[-n:])

    def stats(self) -> dict[str, int]:
        """Requests started, clients gone mid-answer, tokens generated (answers that ended)."""
        if self.kind == "stdlib":
            with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as resp:
                return dict(json.loads(resp.read()))
        with self._lock:
            return dict(self._counts)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)

    def restart(self) -> ModelServer:
        """Start it again on the same port (an editor's endpoint setting stays valid)."""
        self.kill()
        return self.start(self.port)


def start_server(
    kind: str, name: str = "", threads: int = 1, extra: tuple[str, ...] = ()
) -> ModelServer:
    """A started server of `kind`; llama-cpp serves the model as `name` (default: the model's)."""
    if kind == "llama-cpp" and not name:
        name = "SmolLM2-135M-Instruct"
    return ModelServer(kind, name, threads, extra).start()
