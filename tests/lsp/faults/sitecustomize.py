"""Fault injection for the server under test (put this folder first on its PYTHONPATH).

It first runs the network block (tests/lsp/netblock/sitecustomize.py: only one sitecustomize
is imported per process). Then, switched on by environment variables:

- WREN_FAULT_NOISE=1: things that write to stdout the way model libraries do. When `torch` and
  `transformers` are imported (during the model load, after `wren serve` reserved the real
  stdout): `print`, `sys.stdout.write`, `os.write(1, ...)` and C-level `printf` via ctypes;
  a thread that keeps printing; an atexit print; and a transformers warning.
- WREN_FAULT_INJECT=1: a magic string in the document's URI changes what the model does for
  generations on that document (the decision is taken in `TransformersBackend.generate` from
  its `cache_slot`, which is the document URI; the fault is raised where the real one would be).
  The URI, not the prompt: other documents' prompts may quote this one as neighbor context.
  * `wren-fault-oom`: every forward pass raises torch.OutOfMemoryError.
  * `wren-fault-no-stop`: the model never stops by itself: no end-of-sequence token, no stop
    string, no newline stop; only the token and time limits remain.
  Forward passes are also counted: the most that ran at the same time across threads, and the
  names of the threads that ran them, go to the JSON file $WREN_FAULT_STATS.

Markers written by the noise all start with `WREN-NOISE`, so a test can find them on stderr.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_NETBLOCK = Path(__file__).resolve().parent.parent / "netblock" / "sitecustomize.py"
exec(compile(_NETBLOCK.read_text(), str(_NETBLOCK), "exec"))

OOM_MARK = "wren-fault-oom"
NO_STOP_MARK = "wren-fault-no-stop"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `callback(module)` right after the module `name` has been executed."""

    def __init__(self, name: str, callback: Callable[[ModuleType], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module  # type: ignore[attr-defined]
        callback = self.callback

        def exec_module(module: ModuleType) -> None:
            original(module)
            callback(module)

        loader.exec_module = exec_module  # type: ignore[attr-defined]
        return spec


def after_import(name: str, callback: Callable[[ModuleType], None]) -> None:
    sys.meta_path.insert(0, _AfterImport(name, callback))


# -- noise ----------------------------------------------------------------------------------


def _c_printf(text: str) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.printf(text.encode() + b"\n")
        libc.fflush(None)
    except Exception as err:  # no libc printf: say so where a test can see it
        os.write(2, f"WREN-NOISE-NO-PRINTF {err}\n".encode())


def _noise(where: str) -> Callable[[ModuleType], None]:
    def make_noise(module: ModuleType) -> None:
        if where == "torch":  # a library that starts a thread which keeps printing
            threading.Thread(target=_chatter, name="wren-noise", daemon=True).start()
        print(f"WREN-NOISE-PRINT after importing {where}")
        sys.stdout.write(f"WREN-NOISE-SYS-STDOUT after importing {where}\n")
        sys.stdout.flush()
        os.write(1, f"WREN-NOISE-FD1 after importing {where}\n".encode())
        _c_printf(f"WREN-NOISE-PRINTF after importing {where}")

    return make_noise


def _transformers_warning(module: ModuleType) -> None:
    _noise("transformers")(module)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.get_logger("transformers").warning("WREN-NOISE-HF-WARNING from transformers")
    except Exception as err:
        print(f"WREN-NOISE-HF-WARNING unavailable: {err}")


def _chatter() -> None:
    for i in range(1_000_000):
        print(f"WREN-NOISE-THREAD {i}", flush=True)
        time.sleep(0.5)


if os.environ.get("WREN_FAULT_NOISE") == "1":
    after_import("torch", _noise("torch"))
    after_import("transformers", _transformers_warning)
    after_import("tokenizers", _noise("tokenizers"))
    atexit.register(lambda: print("WREN-NOISE-ATEXIT", flush=True))


# -- model faults ---------------------------------------------------------------------------

_state = threading.local()

# Forward passes observed from outside the scheduler: how many ran at the same time (across
# threads), and on which threads. Written to $WREN_FAULT_STATS whenever either changes.
_forward_lock = threading.Lock()
_forward_stats: dict[str, Any] = {"active": 0, "max_active": 0, "passes": 0, "threads": []}


def _write_forward_stats() -> None:
    path = os.environ.get("WREN_FAULT_STATS")
    if path:
        import json

        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(_forward_stats, fh)
        os.replace(tmp, path)


def _enter_forward() -> None:
    name = threading.current_thread().name
    with _forward_lock:
        _forward_stats["active"] += 1
        _forward_stats["passes"] += 1
        changed = _forward_stats["active"] > _forward_stats["max_active"]
        _forward_stats["max_active"] = max(_forward_stats["max_active"], _forward_stats["active"])
        if name not in _forward_stats["threads"]:
            _forward_stats["threads"].append(name)
            changed = True
        if changed or _forward_stats["passes"] % 200 == 0:
            _write_forward_stats()


def _leave_forward() -> None:
    with _forward_lock:
        _forward_stats["active"] -= 1


def _patch_backend(module: ModuleType) -> None:
    backend = module.TransformersBackend
    original_generate = backend.generate
    original_forward = backend._forward
    original_init = backend.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._wren_real_stop_ids = set(self._stop_token_ids)

    def generate(self: Any, prompt: str, params: Any, *args: Any, **kwargs: Any) -> Any:
        import dataclasses

        slot = str(kwargs.get("cache_slot", args[1] if len(args) > 1 else None) or "")
        _state.oom = OOM_MARK in slot
        if NO_STOP_MARK in slot:
            params = dataclasses.replace(params, stop=(), stop_at_newline=False)
            self._stop_token_ids = set()
        else:
            self._stop_token_ids = set(self._wren_real_stop_ids)
        try:
            return original_generate(self, prompt, params, *args, **kwargs)
        finally:
            _state.oom = False
            self._stop_token_ids = set(self._wren_real_stop_ids)

    def _forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "oom", False):
            import torch

            raise torch.OutOfMemoryError("CUDA out of memory. (injected by Wren's tests)")
        _enter_forward()
        try:
            return original_forward(self, *args, **kwargs)
        finally:
            _leave_forward()

    backend.__init__ = __init__
    backend.generate = generate
    backend._forward = _forward


if os.environ.get("WREN_FAULT_INJECT") == "1":
    after_import("wren.model.generation", _patch_backend)
