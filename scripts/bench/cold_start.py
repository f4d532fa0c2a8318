"""Server start to first completion, in a fresh process (run by scripts/bench_latency.py).

Does what `wren serve` does on start (lsp/lifecycle.py): load the model (converting the GGUF
when the cache is empty), build the backend, warm it up, then answers one completion request
through the engine. Prints one JSON line with times measured from the parent's launch time.
"""

from __future__ import annotations

import inspect
import json
import resource
import sys
import time

T_LAUNCH = float(sys.argv[1])


def main() -> None:
    t_main = time.time()
    from wren.config import Settings
    from wren.engine.completion import CompletionDetails, CompletionEngine
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model
    from wren.types import CancelToken, Snapshot

    t_imports = time.time()
    loaded = load_model(lean_only=True)  # as the server does without an adapter
    t_loaded = time.time()
    backend = TransformersBackend(loaded)
    backend.warm_up()
    t_ready = time.time()
    engine = CompletionEngine(backend, loaded.card)
    import textwrap

    path = inspect.getsourcefile(textwrap) or ""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    # A new line in TextWrapper.__init__, "self." typed: a real single-line completion.
    at = text.index("        self.width = width\n") + len("        self.width = width\n")
    text = text[:at] + "        self.\n" + text[at:]
    offset = at + len("        self.")
    snapshot = Snapshot(uri="file://" + path, text=text, offset=offset, path=path)
    details = CompletionDetails(uri=snapshot.uri, line=0, character=0, version=0)
    t_req = time.time()
    outcome = engine.complete(snapshot, Settings(), CancelToken(), details)
    t_done = time.time()
    print(
        json.dumps(
            {
                "python_start_s": t_main - T_LAUNCH,
                "imports_s": t_imports - t_main,
                "load_model_s": t_loaded - t_imports,
                "from_cache": loaded.from_cache,
                "backend_and_warm_up_s": t_ready - t_loaded,
                "to_ready_s": t_ready - T_LAUNCH,
                "first_request_ms": (t_done - t_req) * 1000,
                "first_request_prompt_tokens": details.prompt_tokens,
                "to_first_completion_s": t_done - T_LAUNCH,
                "completion": outcome.text,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
