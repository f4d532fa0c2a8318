"""Inline completion through a shared OpenAI-compatible server: Wren's overhead, and load.

1. Replay: typing positions in stdlib code, each completed by Wren's engine with the remote
   backend (trigger, prompt layout, tokens via /tokenize, clean-up), against the very same raw
   prompt sent to the same server directly (a bare streaming HTTP client, no Wren).
2. Load: 1, 4 and 16 simulated typists sharing one server; each sends a completion request,
   waits for it, "types" for a moment, and sends the next. Latency p50/p95 per typist count and
   the server's generated tokens per second.

The server, started the way the tests start it (tests/remote/servers.py), on the default
model (SmolLM2-135M-Instruct) on this CPU:

  --server stdlib     tests/remote/openai_server.py, Wren's own backend behind the HTTP API
                      (the default; one generation at a time: no batching, unlike vLLM)
  --server llama-cpp  llama-cpp-python 0.3.36's server from .peer-venv (scripts/setup.sh) on
                      the default GGUF, in its best configuration here: all cores
                      (--n_threads/--n_threads_batch = CPU count), n_batch 512, n_ctx 4096,
                      requests queued (--interrupt_requests False), one generation at a time

`--endpoint URL --model NAME` measures another, already running server instead.
Server tokens/s: the stdlib server counts what it generated (`/stats`); for the others it is
the tokens the typists received (llama-cpp-python logs counts only for answers that ran to
their end, not for those Wren closed at the end of a line).

    .venv/bin/python scripts/bench_remote.py [--server llama-cpp] [--positions 12] [--requests 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from wren.config import CompletionSettings, ModelSettings, Settings  # noqa: E402
from wren.engine.completion import CompletionDetails, CompletionEngine  # noqa: E402
from wren.errors import GenerationError  # noqa: E402
from wren.remote import RemoteBackend  # noqa: E402
from wren.types import CancelToken, GenerationParams, Snapshot  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests.remote.servers import KINDS, ModelServer, start_server  # noqa: E402

# Latency, not the 2 s cut-off: a generous budget so a queued request still completes.
SETTINGS = Settings(completion=CompletionSettings(timeBudgetMs=60000))
SOURCES = ["textwrap.py", "json/encoder.py", "csv.py", "shlex.py", "fractions.py"]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def positions(n: int, seed: int) -> list[Snapshot]:
    """Cursor positions in the middle of code lines (after an indentation and a few chars)."""
    rng = random.Random(seed)
    lib = Path(os.__file__).parent
    out: list[Snapshot] = []
    texts = [(lib / s).read_text(encoding="utf-8") for s in SOURCES]
    while len(out) < n:
        text = rng.choice(texts)
        lines = text.split("\n")
        i = rng.randrange(20, len(lines) - 5)
        line = lines[i]
        body = line.strip()
        if len(body) < 12 or body.startswith(("#", '"', "'")):
            continue
        indent = len(line) - len(line.lstrip())
        cut = indent + rng.randrange(4, len(body) - 4)
        offset = sum(len(x) + 1 for x in lines[:i]) + cut
        # the rest of the line is not typed yet
        end = offset + len(line) - cut
        doc = text[:offset] + text[end:]
        out.append(Snapshot(uri=f"file:///bench/{len(out)}.py", text=doc, offset=offset))
    return out


class Recording(RemoteBackend):
    """The remote backend, remembering each prompt and its parameters."""

    prompts: list[tuple[str, GenerationParams]]

    def generate(self, prompt: str, params: GenerationParams, *args: Any, **kw: Any) -> Any:
        self.prompts.append((prompt, params))
        return super().generate(prompt, params, *args, **kw)


def direct(url: str, model: str, prompt: str, params: GenerationParams) -> tuple[float, str]:
    """The same request with a bare streaming client: seconds to the end of the line, text."""
    parts = urlsplit(url)
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": params.max_new_tokens,
        "temperature": 0,
        "stream": True,
        "stop": list(params.stop),
    }
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = ""
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:") or line == "data: [DONE]":
            if line == "data: [DONE]":
                break
            continue
        choices = json.loads(line[5:]).get("choices") or [{}]
        text += choices[0].get("text") or ""
        if params.stop_at_newline and "\n" in text.lstrip("\r\n \t"):
            break
    conn.close()
    return time.perf_counter() - t0, text


def flush(url: str, model: str) -> None:
    """An unrelated one-token request (not timed), so neither side of the replay finds its
    prompt in the server's prompt cache (llama-cpp-python keeps the last prompt's tokens)."""
    direct(url, model, "Hello", GenerationParams(max_new_tokens=1))


def replay(backend: Recording, snaps: list[Snapshot], url: str) -> dict[str, Any]:
    engine = CompletionEngine(backend, backend.card)
    settings = SETTINGS
    wren_s: list[float] = []
    direct_s: list[float] = []
    for snap in snaps:
        backend.prompts = []
        details = CompletionDetails(uri=snap.uri, line=0, character=0, version=0)
        flush(url, backend.name)
        t0 = time.perf_counter()
        engine.complete(snap, settings, CancelToken(), details)
        wren_s.append(time.perf_counter() - t0)
        if not backend.prompts:
            continue
        prompt, params = backend.prompts[-1]
        flush(url, backend.name)
        seconds, _ = direct(url, backend.name, prompt, params)
        direct_s.append(seconds)
    return {
        "n": len(snaps),
        "wren_p50_ms": percentile(wren_s, 0.5) * 1000,
        "wren_p95_ms": percentile(wren_s, 0.95) * 1000,
        "direct_p50_ms": percentile(direct_s, 0.5) * 1000,
        "direct_p95_ms": percentile(direct_s, 0.95) * 1000,
        "overhead_p50_ms": (percentile(wren_s, 0.5) - percentile(direct_s, 0.5)) * 1000,
    }


def load(
    backend: RemoteBackend, snaps: list[Snapshot], typists: int, requests: int, stats: Any
) -> dict[str, Any]:
    settings = SETTINGS
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    tokens_before = stats()["tokens"] if stats else 0
    received: list[int] = []

    def typist(k: int) -> None:
        rng = random.Random(k)
        engine = CompletionEngine(backend, backend.card)  # one per editor
        for r in range(requests):
            snap = snaps[(k * requests + r) % len(snaps)]
            snap = Snapshot(uri=f"{snap.uri}#{k}", text=snap.text, offset=snap.offset)
            details = CompletionDetails(uri=snap.uri, line=0, character=0, version=0)
            t0 = time.perf_counter()
            try:
                engine.complete(snap, settings, CancelToken(), details)
            except GenerationError as err:  # counted; the typist goes on
                with lock:
                    errors.append(str(err))
            else:
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    received.append(details.generated_tokens)
            time.sleep(rng.uniform(0.1, 0.3))  # typing on before the next request

    t0 = time.perf_counter()
    threads = [threading.Thread(target=typist, args=(k,)) for k in range(typists)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = (stats()["tokens"] - tokens_before) if stats else sum(received)
    return {
        "typists": typists,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "mean_ms": statistics.mean(latencies) * 1000 if latencies else float("nan"),
        "server_tokens_per_s": tokens / wall if wall else 0.0,
        "tokens_counted_by": "server" if stats else "client (tokens received)",
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", choices=KINDS, default="stdlib", help="which server to start")
    ap.add_argument("--endpoint", default="", help="measure this running server instead")
    ap.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="llama-cpp: threads (all cores)"
    )
    ap.add_argument("--model", default="")
    ap.add_argument("--positions", type=int, default=12)
    ap.add_argument("--requests", type=int, default=4, help="per typist in the load test")
    ap.add_argument("--typists", default="1,4,16")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--context-tokens", type=int, default=1500)
    args = ap.parse_args()
    global SETTINGS
    SETTINGS = Settings(
        completion=CompletionSettings(timeBudgetMs=60000, contextTokens=args.context_tokens)
    )
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    server: ModelServer | None = None
    url = args.endpoint
    if not url:
        server = start_server(args.server, threads=args.threads)
        url = server.url
    try:
        settings = ModelSettings(endpoint=url, servedModel=args.model)
        backend = Recording.connect(settings)
        backend.prompts = []
        exact = server.stats if server is not None and server.kind == "stdlib" else None
        snaps = positions(args.positions, args.seed)
        result: dict[str, Any] = {
            "server": server.kind if server else "external",
            "endpoint": url,
            "model": backend.name,
            "tokens": backend.tokens.mode,
            "uptime_before": uptime_before,
        }
        if server is not None and server.kind == "llama-cpp":
            result["server_command"] = " ".join(server.command())
        result["replay"] = replay(backend, snaps, url)
        result["load"] = [
            load(backend, snaps, int(t), args.requests, exact) for t in args.typists.split(",")
        ]
        result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print(json.dumps(result, indent=2))
    finally:
        if server is not None:
            server.kill()


if __name__ == "__main__":
    main()
