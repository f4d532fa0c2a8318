"""A `Backend` that forwards generation to llama-cpp-python in the benchmark venv.

Tokenizing stays with Wren's tokenizer (the same GGUF vocabulary), so both sides of the
benchmark build byte-identical prompts and feed identical token ids. The subprocess is
scripts/bench/llama_server.py; cancellation reaches it between two tokens.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wren.errors import GenerationCancelled
from wren.types import CancelToken, GenerationParams, GenerationResult

SERVER = Path(__file__).with_name("llama_server.py")


class LlamaCppBackend:
    name = "llama-cpp-python"
    device = "cpu"

    def __init__(
        self,
        python: str,
        model: Path,
        tokenizer_backend: Any,
        threads: int,
        n_batch: int = 128,
    ) -> None:
        self.tok = tokenizer_backend  # a TransformersBackend, for tokenize/detokenize only
        self.card = tokenizer_backend.card
        # The peer's own best: OpenMP's default (spinning) wait policy, whatever Wren uses.
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        argv = [python, str(SERVER), "--model", str(model), "--threads", str(threads)]
        self.proc = subprocess.Popen(
            [*argv, "--n-batch", str(n_batch)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._lock = threading.Lock()
        hello = json.loads(self._lines.get(timeout=120))
        self.load_s = float(hello["load_s"])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def _send(self, req: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()

    def call(self, req: dict[str, Any], cancel: CancelToken | None = None) -> dict[str, Any]:
        with self._lock:
            self._send(req)
            sent_cancel = False
            while True:
                try:
                    reply = json.loads(self._lines.get(timeout=0.002))
                    break
                except queue.Empty:
                    if cancel is not None and cancel.cancelled and not sent_cancel:
                        self._send({"op": "cancel"})
                        sent_cancel = True
        if reply.get("cancelled") or (cancel is not None and cancel.cancelled):
            raise GenerationCancelled(cancel.reason if cancel else "cancelled")
        return reply

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)

    # -- Backend protocol -------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return self.tok.tokenize(text)  # type: ignore[no-any-return]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tok.detokenize(ids)  # type: ignore[no-any-return]

    def special_tokens(self) -> list[str]:
        return self.tok.special_tokens()  # type: ignore[no-any-return]

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return self.tok.apply_chat_template(messages)  # type: ignore[no-any-return]

    def _ids(self, prompt: str, max_new_tokens: int) -> list[int]:
        return self.tok._prompt_ids(prompt, max_new_tokens)  # type: ignore[no-any-return]

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        cancel.raise_if_cancelled()
        ids = self._ids(prompt, params.max_new_tokens)
        out = self.call(
            {
                "op": "generate",
                "ids": ids,
                "max_tokens": params.max_new_tokens,
                "stop": list(params.stop),
                "stop_at_newline": params.stop_at_newline,
                "time_budget_s": params.time_budget_s,
            },
            cancel,
        )
        return GenerationResult(
            text=out["text"],
            tokens=out["tokens"],
            prompt_tokens=out["prompt_tokens"],
            cached_tokens=0,
            prefill_s=out["prefill_s"],
            decode_s=out["decode_s"],
            stop_reason=out["stop_reason"],
        )

    def prefill(
        self, prompt: str, cache_slot: str, cancel: CancelToken, max_new_tokens: int = 64
    ) -> GenerationResult:
        cancel.raise_if_cancelled()
        t0 = time.perf_counter()
        ids = self._ids(prompt, max_new_tokens)
        self.call({"op": "prefill", "ids": ids}, cancel)
        return GenerationResult("", 0, len(ids), 0, time.perf_counter() - t0, 0.0, "prefill")

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        raise NotImplementedError("not needed for the latency benchmark")
