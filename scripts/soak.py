"""Soak test: simulated typing against the real server over stdio for a long time (not in CI).

An editor's traffic, replayed: the script "types" functions from the Python standard library
into open documents, one keystroke at a time (incremental didChange), asks for an inline
completion after every keystroke and cancels the previous one with $/cancelRequest (as VS Code
does), sometimes accepts a suggestion that matches what it was about to type, pauses at line
ends, switches and closes files, polls `wren.server.status` / `wren/lastCompletion`, and asks
for an explanation every couple of minutes (batch work sharing the model).

It checks what a user would notice over a long session:
- resident memory stays flat: after a warm-up minute, the server's RSS never exceeds the
  warm-up level by more than 10%;
- zero errors: no JSON-RPC error other than RequestCancelled, no completion that ended in
  `decision: error` (the server's own counter), no stray bytes on stdout, the process alive;
- latency over time: p50/p95 of answered (not cancelled) completions per minute.

    .venv/bin/python scripts/soak.py --minutes 10 --write-benchmarks

Writes artifacts/soak.json and, with --write-benchmarks, the "## Soak" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import inspect
import itertools
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
REQUEST_CANCELLED = -32800
OPEN_FILES = 5  # files open at any time (one is closed and another opened as work moves on)
CURSOR_REST_S = 0.3  # the client's wren/cursorMoved delay
SOURCES = ["textwrap", "shlex", "difflib", "heapq", "fractions", "string", "json.decoder", "csv"]


# -- a minimal strict JSON-RPC client over stdio ----------------------------------------------


class Server:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ids = itertools.count(1)
        self.waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.stray = 0  # stdout bytes outside valid frames
        self.responses: dict[int, int] = defaultdict(int)
        self.stderr_tail = bytearray()
        self.tracebacks = 0
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._stderr())]

    @classmethod
    async def start(cls) -> Server:
        env = dict(os.environ)
        env.setdefault("HF_HUB_OFFLINE", "1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wren", "serve",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, limit=64 << 20,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = await out.readline()
                if not line:
                    return
                if line == b"\r\n":
                    break
                m = re.match(rb"^Content-Length: (\d+)\r\n$", line)
                if m:
                    length = int(m.group(1))
                elif not re.match(rb"^[A-Za-z-]+: .*\r\n$", line):
                    self.stray += len(line)
            if length is None:
                self.stray += 2
                continue
            body = await out.readexactly(length)
            msg = json.loads(body)
            if "method" in msg and "id" in msg:  # a server request: accept it
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            elif "id" in msg and "method" not in msg:
                self.responses[msg["id"]] += 1
                fut = self.waiters.pop(msg["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)

    async def _stderr(self) -> None:
        err = self.proc.stderr
        assert err is not None
        while chunk := await err.read(1 << 16):
            self.tracebacks += chunk.count(b"Traceback (most recent call last)")
            self.stderr_tail += chunk
            del self.stderr_tail[: max(0, len(self.stderr_tail) - 20000)]

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any) -> tuple[int, asyncio.Future[dict[str, Any]]]:
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[msg_id] = fut
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id, fut

    async def call(self, method: str, params: Any, timeout: float = 300) -> Any:
        _, fut = self.request(method, params)
        msg = await asyncio.wait_for(fut, timeout)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result")

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def status(self) -> dict[str, Any]:
        return dict(
            await self.call(
                "workspace/executeCommand", {"command": "wren.server.status", "arguments": []}
            )
        )


# -- the simulated user -------------------------------------------------------------------------


def corpus() -> list[tuple[str, str]]:
    """(module name, source) for the standard-library modules the user 'types'."""
    import importlib

    out = []
    for name in SOURCES:
        try:
            out.append((name, inspect.getsource(importlib.import_module(name))))
        except (ImportError, OSError, TypeError):
            continue
    return out


def function_spans(source: str) -> list[tuple[int, int]]:
    """Character spans of top-level and method `def` blocks (bodies of a few lines or more)."""
    lines = source.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    spans = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)def \w+\(", line)
        if not m:
            continue
        indent = len(m.group(1))
        j = i + 1
        while j < len(lines) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            j += 1
        if 4 <= j - i <= 40:
            spans.append((starts[i], starts[j]))
    return spans


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (t, seconds)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (t, bytes)
    keystrokes: int = 0
    requests: int = 0
    answered: int = 0
    with_items: int = 0
    cancelled: int = 0
    cancelled_at: list[float] = field(default_factory=list)
    accepted: int = 0
    rpc_errors: list[str] = field(default_factory=list)
    explains: int = 0
    explain_s: list[float] = field(default_factory=list)
    warmup_s: float = 0.0  # seconds from ready to the end of the warm-up

    def now(self) -> float:
        return time.monotonic() - self.started


class Typist:
    def __init__(self, server: Server, stats: Stats, rng: random.Random) -> None:
        self.server, self.stats, self.rng = server, stats, rng
        self.version: dict[str, int] = {}
        self.texts: dict[str, str] = {}
        self.open_order: list[str] = []
        self.outstanding: tuple[int, asyncio.Future[dict[str, Any]], float] | None = None
        self.pending: set[asyncio.Task[None]] = set()
        self.counter = 0
        self.todo: dict[str, str] = {}  # per open file: what is left to type at its end
        self.last_items: list[dict[str, Any]] = []  # the answer to the newest request

    def open(self, name: str, text: str, body: str) -> str:
        """Open a file holding `text`; the user is about to write `body` at its end."""
        self.counter += 1
        uri = (ROOT / "artifacts" / "soak" / f"{self.counter:04d}_{name}.py").as_uri()
        self.version[uri] = 1
        self.texts[uri] = text
        self.todo[uri] = body
        self.server.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        self.open_order.append(uri)
        return uri

    def close(self, uri: str) -> None:
        self.server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
        self.open_order.remove(uri)
        self.texts.pop(uri, None)
        self.todo.pop(uri, None)

    def open_random(self, sources: list[tuple[str, str]]) -> str:
        """A random function of a random module: the file up to it is open, it is to be typed."""
        while True:
            name, source = self.rng.choice(sources)
            spans = function_spans(source)
            if spans:
                start, end = self.rng.choice(spans)
                return self.open(name.replace(".", "_"), source[:start], source[start:end])

    def cursor_rests(self, uri: str) -> None:
        """What the client sends when the cursor has rested for 300 ms."""
        self.server.notify(
            "wren/cursorMoved", {"textDocument": {"uri": uri}, "position": self.cursor(uri)}
        )

    async def pause(self, uri: str, seconds: float) -> None:
        if seconds >= CURSOR_REST_S:
            await asyncio.sleep(CURSOR_REST_S)
            self.cursor_rests(uri)
            seconds -= CURSOR_REST_S
        await asyncio.sleep(seconds)

    def insert(self, uri: str, text: str) -> None:
        """Insert at the end of the document (the cursor is always at the end here)."""
        doc = self.texts[uri]
        line = doc.count("\n")
        col = len(doc) - (doc.rfind("\n") + 1)
        col16 = len(doc[len(doc) - col :].encode("utf-16-le")) // 2
        pos = {"line": line, "character": col16}
        self.version[uri] += 1
        self.texts[uri] = doc + text
        self.server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": self.version[uri]},
                "contentChanges": [{"range": {"start": pos, "end": pos}, "text": text}],
            },
        )

    def cursor(self, uri: str) -> dict[str, int]:
        doc = self.texts[uri]
        tail = doc[doc.rfind("\n") + 1 :]
        return {"line": doc.count("\n"), "character": len(tail.encode("utf-16-le")) // 2}

    def ask(self, uri: str) -> None:
        if self.outstanding is not None:
            msg_id, fut, _ = self.outstanding
            if not fut.done():
                self.server.notify("$/cancelRequest", {"id": msg_id})
        params = {
            "textDocument": {"uri": uri},
            "position": self.cursor(uri),
            "context": {"triggerKind": 2},
        }
        msg_id, fut = self.server.request("textDocument/inlineCompletion", params)
        self.stats.requests += 1
        self.outstanding = (msg_id, fut, time.monotonic())
        task = asyncio.create_task(self._collect(msg_id, fut, time.monotonic()))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _collect(self, msg_id: int, fut: asyncio.Future[dict[str, Any]], t0: float) -> None:
        msg = await fut
        if "error" in msg:
            if msg["error"].get("code") == REQUEST_CANCELLED:
                self.stats.cancelled += 1
                self.stats.cancelled_at.append(self.stats.now())
            else:
                self.stats.rpc_errors.append(f"inlineCompletion: {msg['error']}")
            return
        self.stats.answered += 1
        self.stats.latencies.append((self.stats.now(), time.monotonic() - t0))
        items = (msg.get("result") or {}).get("items") or []
        if items:
            self.stats.with_items += 1
        if self.outstanding is not None and self.outstanding[0] == msg_id:
            self.last_items = items

    async def type_burst(self, uri: str, keystrokes: int, deadline: float) -> None:
        """Type up to `keystrokes` characters of what is left to write in `uri`."""
        self.last_items = []
        self.cursor_rests(uri)  # the user just switched to this file
        await asyncio.sleep(self.rng.uniform(0.3, 1.0))
        typed = 0
        while self.todo[uri] and typed < keystrokes and time.monotonic() < deadline:
            body = self.todo[uri]
            # Accept a suggestion that is exactly what comes next (Tab), now and then.
            if self.last_items and self.rng.random() < 0.5:
                suggestion = str(self.last_items[0].get("insertText", ""))
                if suggestion and body.startswith(suggestion):
                    self.insert(uri, suggestion)
                    self.todo[uri] = body[len(suggestion) :]
                    self.stats.accepted += 1
                    self.last_items = []
                    self.ask(uri)
                    await self.pause(uri, self.rng.uniform(0.3, 1.0))
                    continue
            self.last_items = []
            if body[0] == "\n":  # the editor auto-indents: newline and indentation in one change
                j = 1
                while j < len(body) and body[j] in " \t":
                    j += 1
                chunk = body[:j]
            else:
                chunk = body[0]
            self.insert(uri, chunk)
            self.todo[uri] = body[len(chunk) :]
            typed += 1
            self.stats.keystrokes += 1
            self.ask(uri)
            if chunk[0] == "\n" and self.rng.random() < 0.3:
                await self.pause(uri, self.rng.uniform(0.5, 2.5))  # thinking at a line end
            elif chunk == " " and self.rng.random() < 0.1:
                await self.pause(uri, self.rng.uniform(0.4, 1.2))  # between words
            else:
                await asyncio.sleep(max(0.03, self.rng.gauss(0.13, 0.05)))


async def explain_now(server: Server, stats: Stats, uri: str, line: int) -> None:
    t0 = time.monotonic()
    arg = {
        "uri": uri,
        "range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 0}},
    }
    try:
        params = {"command": "wren.server.explain", "arguments": [arg]}
        await server.call("workspace/executeCommand", params, timeout=600)
        stats.explains += 1
        stats.explain_s.append(time.monotonic() - t0)
    except Exception as err:
        stats.rpc_errors.append(f"explain: {err}")


async def sample_rss(server: Server, stats: Stats, stop: asyncio.Event) -> None:
    proc = psutil.Process(server.proc.pid)
    while not stop.is_set():
        try:
            stats.rss.append((stats.now(), proc.memory_info().rss))
        except psutil.Error:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)


def percentile_ms(values: list[float], q: float) -> int | None:
    """The q-quantile of `values` (seconds) in milliseconds; None without data."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[k] * 1000)


async def soak(minutes: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    (ROOT / "artifacts" / "soak").mkdir(parents=True, exist_ok=True)
    server = await Server.start()
    await server.call(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": (ROOT / "artifacts" / "soak").as_uri(),
            "capabilities": {"window": {"workDoneProgress": True}},
            "initializationOptions": {"settings": {}, "workspaceTrusted": True},
        },
    )
    server.notify("initialized", {})
    t_load = time.monotonic()
    while (st := await server.status())["state"] not in ("ready", "error"):
        await asyncio.sleep(0.5)
    if st["state"] != "ready":
        raise SystemExit(f"model failed to load: {st}")
    load_s = time.monotonic() - t_load
    stats = Stats()
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server, stats, stop))
    typist = Typist(server, stats, rng)
    sources = corpus()
    # Warm-up: the steady working set (OPEN_FILES files, each completed once at its end, one
    # explanation), so that memory measured afterwards is about leaks, not about caches filling.
    for _ in range(OPEN_FILES):
        uri = typist.open_random(sources)
        await server.call(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": typist.cursor(uri),
                "context": {"triggerKind": 1},
            },
            timeout=600,
        )
    first = typist.open_order[0]
    await explain_now(server, stats, first, max(0, typist.texts[first].count("\n") - 2))
    stats.warmup_s = stats.now()
    deadline = time.monotonic() + minutes * 60
    next_explain = time.monotonic() + 60
    explain_task: asyncio.Task[None] | None = None
    current = typist.open_order[-1]
    while time.monotonic() < deadline:
        if rng.random() < 0.3:  # switch to another open file
            current = rng.choice(typist.open_order)
        await typist.type_burst(current, rng.randint(40, 200), deadline)
        if not typist.todo.get(current):  # the function is written: close it, open another
            typist.close(current)
            current = typist.open_random(sources)
        await server.call("wren/lastCompletion", {"textDocument": {"uri": current}})
        st = await server.status()
        if st["state"] != "ready":
            stats.rpc_errors.append(f"status: {st['state']} {st['message']}")
        if time.monotonic() > next_explain and (explain_task is None or explain_task.done()):
            line = max(0, typist.texts[current].count("\n") - 2)
            explain_task = asyncio.create_task(explain_now(server, stats, current, line))
            next_explain = time.monotonic() + 120
    if typist.pending:
        await asyncio.wait(typist.pending, timeout=120)
    if explain_task is not None:
        await asyncio.wait([explain_task], timeout=600)
    final = await server.status()
    stop.set()
    await sampler
    await server.call("shutdown", None)
    server.notify("exit", None)
    try:
        code = await asyncio.wait_for(server.proc.wait(), 10)
    except TimeoutError:
        server.proc.kill()
        code = -9
    return summarize(stats, server, final, code, minutes, load_s)


def summarize(
    stats: Stats, server: Server, final: dict[str, Any], code: int, minutes: float, load_s: float
) -> dict[str, Any]:
    w = stats.warmup_s  # minutes are counted from the end of the warm-up
    per_minute = []
    for m in range(int(minutes + 0.999)):
        lo, hi = w + m * 60, w + (m + 1) * 60
        lat = [s for t, s in stats.latencies if lo <= t < hi]
        rss = [r for t, r in stats.rss if lo <= t < hi]
        per_minute.append(
            {
                "minute": m + 1,
                "answered": len(lat),
                "cancelled": sum(1 for t in stats.cancelled_at if lo <= t < hi),
                "p50_ms": percentile_ms(lat, 0.5),
                "p95_ms": percentile_ms(lat, 0.95),
                "rss_mb": round(max(rss) / 2**20) if rss else None,
            }
        )
    measured = [(t, r) for t, r in stats.rss if t >= w]
    first_minute = [r for t, r in measured if t < w + 60] or [r for _, r in measured]
    baseline = statistics.median(first_minute)
    later = [r for t, r in measured if t >= w + 60] or [r for _, r in measured]
    peak = max(later)
    growth = peak / baseline - 1
    slope = 0.0
    if len(measured) > 2:
        ts = [t / 60 for t, _ in measured]
        rs = [r / 2**20 for _, r in measured]
        slope = statistics.linear_regression(ts, rs).slope  # MB per minute
    server_errors = int(final.get("stats", {}).get("errors", 0))
    errors = len(stats.rpc_errors) + server_errors + (1 if server.stray else 0) + server.tracebacks
    all_lat = [s for t, s in stats.latencies if t >= w]
    return {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, {platform.system()}",
        "model": final.get("model"),
        "device": final.get("device"),
        "minutes": minutes,
        "model_load_s": round(load_s, 1),
        "warmup_s": round(w, 1),
        "keystrokes": stats.keystrokes,
        "requests": stats.requests,
        "answered": stats.answered,
        "answered_with_items": stats.with_items,
        "cancelled": stats.cancelled,
        "accepted": stats.accepted,
        "explains": stats.explains,
        "explain_s": [round(s, 1) for s in stats.explain_s],
        "p50_ms": percentile_ms(all_lat, 0.5),
        "p95_ms": percentile_ms(all_lat, 0.95),
        "rss_baseline_mb": round(baseline / 2**20),
        "rss_peak_after_warmup_mb": round(peak / 2**20),
        "rss_growth_pct": round(100 * growth, 1),
        "rss_flat": growth <= 0.10,
        "rss_slope_mb_per_min": round(slope, 1),
        "server_stats": final.get("stats"),
        "rpc_errors": stats.rpc_errors[:20],
        "server_completion_errors": server_errors,
        "stray_stdout_bytes": server.stray,
        "tracebacks_on_stderr": server.tracebacks,
        "unanswered_requests": len(server.waiters),
        "answered_twice": sum(1 for n in server.responses.values() if n > 1),
        "exit_status": code,
        "errors": errors,
        "passed": errors == 0 and growth <= 0.10 and code == 0 and not server.waiters,
        "per_minute": per_minute,
        "samples": {
            "latency_s": [(round(t, 1), round(v, 3)) for t, v in stats.latencies],
            "rss_mb": [(round(t, 1), round(r / 2**20)) for t, r in stats.rss],
        },
    }


def markdown(result: dict[str, Any], command: str) -> str:
    def cell(value: Any) -> str:
        return "–" if value is None else str(value)

    rows = "\n".join(
        f"| {m['minute']} | {m['answered']} | {m['cancelled']} | {cell(m['p50_ms'])} "
        f"| {cell(m['p95_ms'])} | {cell(m['rss_mb'])} |"
        for m in result["per_minute"]
    )
    verdict = "PASS" if result["passed"] else "FAIL"
    return f"""## Soak

{result["minutes"]:g} minutes of simulated typing against the real server over stdio
(`{command}`; not part of CI). Each keystroke is an incremental didChange plus an inline
completion request; the previous request is cancelled on the wire, as VS Code does. The typist
writes functions from standard-library modules at the end of the file they come from, in bursts
across {OPEN_FILES} open files (a finished file is closed and another opened), pauses at some
line and word ends (then sends `wren/cursorMoved`, as the client does after 300 ms), accepts
suggestions that match what it was about to type, and asks for an explanation every 2 minutes.
A warm-up ({result["warmup_s"]:g} s: the {OPEN_FILES} files opened and completed once, one
explanation) comes first, so that memory is measured against the steady working set.

- Date {result["date"]}; machine: {result["machine"]} (shared with other jobs: latencies
  include CPU contention); model {result["model"]} on {result["device"]}.
- Result: **{verdict}**. Errors: {result["errors"]} (JSON-RPC errors other than
  RequestCancelled: {len(result["rpc_errors"])}, completions that ended in an error:
  {result["server_completion_errors"]}, stray stdout bytes: {result["stray_stdout_bytes"]},
  tracebacks on stderr: {result["tracebacks_on_stderr"]}); unanswered requests:
  {result["unanswered_requests"]}; answered twice: {result["answered_twice"]}; exit status
  after shutdown/exit: {result["exit_status"]}.
- Resident memory: {result["rss_baseline_mb"]} MB (median of the first minute after the
  warm-up), peak afterwards {result["rss_peak_after_warmup_mb"]} MB
  ({result["rss_growth_pct"]:+.1f}%; bound: +10%); trend {result["rss_slope_mb_per_min"]:+g} MB/min.
- Traffic: {result["keystrokes"]} keystrokes, {result["requests"]} completion requests,
  {result["answered"]} answered ({result["answered_with_items"]} with a suggestion),
  {result["cancelled"]} cancelled, {result["accepted"]} suggestions accepted,
  {result["explains"]} explanations ({", ".join(f"{s:g}" for s in result["explain_s"])} s).
- Latency of answered completions (request sent -> answer, cancelled ones excluded):
  p50 {result["p50_ms"]} ms, p95 {result["p95_ms"]} ms overall.

| minute | answered | cancelled | p50 ms | p95 ms | peak RSS MB |
|---:|---:|---:|---:|---:|---:|
{rows}
"""


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the "## Soak" section, leaving every other section alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Soak\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "soak.json")
    parser.add_argument("--write-benchmarks", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("per_minute", "samples")}, indent=2
        )
    )
    for row in result["per_minute"]:
        print(row)
    if args.write_benchmarks:
        command = f".venv/bin/python scripts/soak.py --minutes {args.minutes:g} --write-benchmarks"
        write_section(ROOT / "BENCHMARKS.md", markdown(result, command))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
