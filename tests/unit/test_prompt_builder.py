"""Prompt window: fits the budget, starts on a stable line while the user types."""

from wren.cards import ModelCard
from wren.engine.prompt.builder import START_QUANTUM, _stable_window_start, build_completion_prompt
from wren.types import Snapshot

CARD = ModelCard(family="t", file_header="<filename>{path}\n")


def count(text: str) -> int:
    return len(text) // 3 + 1


def test_short_prefix_is_whole() -> None:
    assert _stable_window_start("a\nb\n", 100) == 0


def test_start_is_a_quantized_line_start() -> None:
    prefix = "".join(f"line {i}\n" for i in range(1000))
    start = _stable_window_start(prefix, 2000)
    assert prefix[start - 1] == "\n"
    assert prefix.count("\n", 0, start) % START_QUANTUM == 0
    assert len(prefix) - start <= 2000


def test_start_stays_put_while_typing() -> None:
    prefix = "".join(f"value_{i} = {i}\n" for i in range(2000))
    starts = {_stable_window_start(prefix + "x" * k, 3000) for k in range(0, 40)}
    assert len(starts) == 1


def test_one_enormous_line_is_cut_by_characters() -> None:
    prefix = "x," * 3_000_000
    start = _stable_window_start(prefix, 4500)
    assert len(prefix) - start == 4500


def test_prompt_respects_budget_and_has_header() -> None:
    text = "".join(f"total_{i} = compute({i})\n" for i in range(3000))
    snap = Snapshot(uri="file:///w/mod.py", text=text, offset=len(text), path="/w/mod.py")
    prompt = build_completion_prompt(snap, CARD, count, 500)
    assert prompt.text.startswith("<filename>mod.py\n")
    assert prompt.tokens <= 500
    assert prompt.text.endswith(text[-200:])
