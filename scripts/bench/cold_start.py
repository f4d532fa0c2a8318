"""Server start to a first shown completion, in a fresh process (run by scripts/bench_latency.py,
or alone: `python scripts/bench/cold_start.py`).

Does what `wren serve` does on start, in the same order: the command line and the LSP server
modules (main thread), then on `initialized` (lsp/lifecycle.py) the engine and model modules,
`load_model` (converting the GGUF when the cache is empty; with the caches, the packed decoder
and the lean tokenizer), the backend and its warm-up. Then one completion request through
the engine at a place where the model's suggestion is shown (a new line in textwrap's
`TextWrapper.__init__`, "self.ex" typed), with the file open the way the server holds it.

Prints one JSON line: times measured from the parent's launch time (argv[1], a `time.time()`;
now when absent), each import group, each load step (`load_phases_s`: resolve / kernels /
packed / tokenizer with the caches; convert / model without), `to_ready_s` (what the status
bar waits for) and `to_ready_engine_s` (the same without the command-line and LSP imports, the
figure BENCHMARKS.md's round 3 reported), and resident memory (MB, from /proc/self/status)
after each step: `rss_*_mb` is VmRSS at that point, `peak_rss_mb` the high-water mark
(VmHWM), `steady_rss_mb` VmRSS a moment after the first completion, with `rss_split_mb`
(anonymous vs file-backed pages) and `rss_by_mapping_mb` at that point. `cpu_s_at`: the
process's CPU seconds (user + system) at each step, which a busy machine inflates far less
than wall time (run with WREN_THREADS=1 so no thread spins).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time

T_LAUNCH = float(sys.argv[1]) if len(sys.argv) > 1 else time.time()


def status_mb() -> dict[str, float]:
    out = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) / 1024
    return out


def rss_mb() -> float:
    return round(status_mb()["VmRSS"], 1)


def rss_by_mapping_mb() -> dict[str, float]:
    """Resident memory by what holds it (/proc/self/smaps): the heap and anonymous mappings
    (Python objects, tensors, the tokenizer), the packed-decoder file's pages (mapped, only
    the touched ones count), torch's libraries, other libraries."""
    groups: dict[str, float] = {}
    name = "[anon]"
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            head = line.split(maxsplit=6)
            if "-" in head[0] and not line.startswith(("Rss", "Pss")) and ":" not in head[0]:
                path = head[5].strip() if len(head) > 5 else ""
                if "/packed/" in path:
                    name = "packed decoder file"
                elif "site-packages/torch" in path:
                    name = "torch libraries"
                elif ".so" in path:
                    name = "other libraries"
                elif path in ("", "[heap]"):
                    name = "heap and anonymous"
                else:
                    name = "other"
            elif line.startswith("Rss:"):
                groups[name] = groups.get(name, 0.0) + int(line.split()[1]) / 1024
    return {k: round(v, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def probe() -> tuple[str, str, int]:
    """textwrap.py with "self.ex" typed on a new line in `TextWrapper.__init__`."""
    import textwrap

    path = inspect.getsourcefile(textwrap) or ""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    anchor = "        self.width = width\n"
    at = text.index(anchor) + len(anchor)
    typed = "        self.ex"
    return path, text[:at] + typed + "\n" + text[at:], at + len(typed)


def main() -> None:
    t_main = time.time()
    marks: dict[str, float] = {}
    rss: dict[str, float] = {}
    cpu: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = time.time()
        rss[name] = rss_mb()
        times = os.times()
        cpu[name] = round(times.user + times.system, 3)

    mark("python")
    import wren.cli  # noqa: F401  (`python -m wren serve` imports the command line first)

    mark("cli")
    from wren.lsp.app import create_server

    create_server()
    mark("lsp")
    # What lifecycle._load_model imports on its thread.
    from wren.config import Settings
    from wren.engine.completion import CompletionDetails, CompletionEngine
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model
    from wren.model.tune.adapters import choose_adapter
    from wren.types import CancelToken, Snapshot

    mark("engine_and_model")
    choice = choose_adapter("", None, True)
    loaded = load_model(lean_only=choice.path is None)  # as the server does
    mark("load_model")
    backend = TransformersBackend(loaded)
    mark("backend")
    backend.warm_up()
    backend.drop_caches()  # as lifecycle does
    mark("ready")
    engine = CompletionEngine(backend, loaded.card)

    path, text, offset = probe()
    engine.recent.update("file://" + path, text, "python")  # the open file (didOpen)
    snapshot = Snapshot(uri="file://" + path, text=text, offset=offset, path=path)
    details = CompletionDetails(uri=snapshot.uri, line=0, character=0, version=0)
    t_req = time.time()
    outcome = engine.complete(snapshot, Settings(), CancelToken(), details)
    t_done = time.time()
    peak = status_mb()["VmHWM"]
    time.sleep(0.5)
    after = status_mb()
    by_mapping = rss_by_mapping_mb()
    imports = {
        "cli": marks["cli"] - marks["python"],
        "lsp_server": marks["lsp"] - marks["cli"],
        "engine_and_model": marks["engine_and_model"] - marks["lsp"],
    }
    print(
        json.dumps(
            {
                "python_start_s": t_main - T_LAUNCH,
                "imports_s": sum(imports.values()),
                "imports_split_s": imports,
                "transformers_imported": "transformers" in sys.modules,
                "load_model_s": marks["load_model"] - marks["engine_and_model"],
                "load_phases_s": loaded.phases,
                "from_cache": loaded.from_cache,
                "lean_tokenizer": type(loaded.tokenizer).__name__ == "LeanTokenizer",
                "backend_s": marks["backend"] - marks["load_model"],
                "warm_up_s": marks["ready"] - marks["backend"],
                "to_ready_s": marks["ready"] - T_LAUNCH,
                "to_ready_engine_s": marks["ready"]
                - T_LAUNCH
                - imports["cli"]
                - imports["lsp_server"],
                "first_request_ms": (t_done - t_req) * 1000,
                "first_request_prompt_tokens": details.prompt_tokens,
                "first_request_decision": details.decision,
                "to_first_completion_s": t_done - T_LAUNCH,
                "completion": outcome.text,
                "cpu_s_at": cpu,
                "rss_after_mb": rss,
                "peak_rss_mb": round(peak, 1),
                "steady_rss_mb": round(after["VmRSS"], 1),
                "rss_split_mb": {k: round(after.get(k, 0.0), 1) for k in ("RssAnon", "RssFile")},
                "rss_by_mapping_mb": by_mapping,
            }
        )
    )


if __name__ == "__main__":
    main()
