"""Thread policy by job class (model/threads.py) and its wiring into the scheduler."""

from __future__ import annotations

import pytest

from wren.model import threads


def test_interactive_uses_every_core_background_half(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WREN_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 8)
    assert threads.threads_for(interactive=True) == 8
    assert threads.threads_for(interactive=False) == 4
    monkeypatch.setattr(threads, "cores", lambda: 1)
    assert threads.threads_for(interactive=False) == 1


def test_wren_threads_fixes_one_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WREN_THREADS", "3")
    assert threads.threads_for(interactive=True) == threads.threads_for(interactive=False) == 3
    monkeypatch.setenv("WREN_THREADS", "zero")  # not a number: the policy applies
    monkeypatch.setattr(threads, "cores", lambda: 2)
    assert threads.threads_for(interactive=True) == 2


def test_the_server_switches_torch_threads_per_job(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from wren.engine.scheduler import BATCH, INTERACTIVE
    from wren.lsp.server import WrenServer

    monkeypatch.delenv("WREN_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads, "_current", None)
    server = WrenServer()
    try:
        seen: dict[str, int] = {}
        fut, _ = server.scheduler.submit(lambda c: torch.get_num_threads(), BATCH)
        seen["batch"] = fut.result(10)
        fut, _ = server.scheduler.submit(lambda c: torch.get_num_threads(), INTERACTIVE)
        seen["interactive"] = fut.result(10)
        assert seen == {"batch": 1, "interactive": 2}
    finally:
        server.scheduler.close()
