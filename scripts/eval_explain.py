"""Explain on real code not written here: is what the model says grounded in the code?

The suite: functions and methods of 5-40 lines picked deterministically from standard-library
modules and packages installed in the venv (click, jedi, attr when present), interleaved by
module and size so that `--limit N` takes a varied first N. For each one and each style
(structured form, free prose) the shipped Explain pipeline runs once, as the server runs it
(`engine.actions.explain.explain` with its defaults: check, and one repair round when the check
judges the text unreliable), and two texts are scored: the model's first answer before any check
("before") and the markdown Explain returns ("after"):

- grounded: share of the identifiers it names (backticks, snake_case, dotted.names, name( )
  that exist in the file, the builtins or the keywords;
- near-duplicates: share of sentences that repeat an earlier one (Jaccard/difflib >= 0.8);
- params/return correct: share of functions whose stated parameters and return match the code
  (structured: the Takes/Returns fields, a missing field counts as wrong; prose: no sentence
  makes a wrong claim);
- repaired: share that needed the repair round; unreliable: share still unreliable after it
  (Explain then says plainly that the model could not explain this);
- filled: share whose Takes/Returns the check took from the signature (structured);
- length (words) and time: first generation, the check, and the repair generation.

    .venv/bin/python scripts/eval_explain.py --limit 100 --max-tokens 160
"""

from __future__ import annotations

import argparse
import ast
import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
SECTION = "## Explain: grounded and structured"

STDLIB_MODULES = (
    "textwrap", "shlex", "json.decoder", "csv", "fnmatch", "posixpath", "heapq", "bisect",
    "difflib", "string", "glob", "base64", "calendar", "configparser",
)  # fmt: skip
PACKAGE_MODULES = ("click.utils", "click.formatting", "jedi.api.helpers", "attr._make")
MIN_LINES, MAX_LINES = 5, 40
PER_MODULE = 8


@dataclass(frozen=True)
class Item:
    module: str
    path: str
    name: str
    first: int  # 1-based, decorators included
    last: int


def module_path(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def functions_in(module: str, path: Path) -> list[Item]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[Item] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        last = node.end_lineno or node.lineno
        if MIN_LINES <= last - first + 1 <= MAX_LINES:
            out.append(Item(module, str(path), node.name, first, last))
    out.sort(key=lambda i: i.first)
    # Evenly spaced over the file, so a module gives small and large ones.
    if len(out) > PER_MODULE:
        step = len(out) / PER_MODULE
        out = [out[int(k * step)] for k in range(PER_MODULE)]
    return out


def build_suite() -> list[Item]:
    """Functions interleaved by module (round-robin), stable across runs."""
    per_module: list[list[Item]] = []
    for module in STDLIB_MODULES + PACKAGE_MODULES:
        path = module_path(module)
        if path is not None:
            per_module.append(functions_in(module, path))
    suite: list[Item] = []
    for k in range(PER_MODULE):
        suite += [items[k] for items in per_module if k < len(items)]
    return suite


# -- scoring -----------------------------------------------------------------------------------


def strip_header(markdown: str) -> str:
    lines = markdown.split("\n")
    if lines and lines[0].startswith("**Line"):
        lines = lines[1:]
    text = "\n".join(lines).strip()
    return re.sub(r"\n\n> Note: the code is long.*$", "", text, flags=re.S)


def sentences_of(text: str) -> list[str]:
    from wren.engine.actions.explain_checks import split_sentences

    out: list[str] = []
    for line in text.split("\n"):
        line = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", line).strip()
        if line and not line.startswith("```"):
            out += split_sentences(line)
    return out


def score(text: str, facts: Any, style: str) -> dict[str, Any]:
    """Grounded names, near-duplicates and claims of one explanation text."""
    from wren.engine.actions.explain_checks import (
        near_duplicate,
        parse_fields,
        prose_claim_problem,
        returns_problem,
        takes_problem,
    )

    known = facts.known()
    sig = facts.signature()
    sents = sentences_of(text)
    named = [n for s in sents for n in _named(s)]
    grounded = sum(1 for n in named if known.has(n))
    dups = sum(1 for i, s in enumerate(sents) if any(near_duplicate(s, t) for t in sents[:i]))
    params_ok = returns_ok = True
    if sig is not None and style == "structured":
        fields = parse_fields(text)
        params_ok = bool(fields.get("Takes")) and not takes_problem(fields["Takes"], sig)
        returns_ok = bool(fields.get("Returns")) and not returns_problem(fields["Returns"], sig)
    elif sig is not None:
        # The plain "could not explain this" text lists the code's own Takes/Returns as fields:
        # those are checked as fields, not as prose sentences about parameters.
        is_field = re.compile(r"\W*(Takes|Returns):")
        problems = [prose_claim_problem(s, sig) for s in sents if not is_field.match(s)]
        fields = parse_fields(text) if re.search(r"^- \*\*Takes:\*\*", text, re.M) else {}
        takes, returns = fields.get("Takes", ""), fields.get("Returns", "")
        params_ok = not any("parameter" in p for p in problems)
        params_ok = params_ok and not (takes and takes_problem(takes, sig))
        returns_ok = not any(p and "parameter" not in p for p in problems)
        returns_ok = returns_ok and not (returns and returns_problem(returns, sig))
    return {
        "named": len(named),
        "grounded": grounded,
        "sentences": len(sents),
        "near_dups": dups,
        "params_ok": params_ok,
        "returns_ok": returns_ok,
        "has_signature": sig is not None,
        "false_return": claims_missing_return(sents, sig),
        "words": len(text.split()),
        "ends_whole": bool(re.search(r"[.!?`)*_]$", text.strip())) if text.strip() else True,
    }


# Independent of the check (which, in prose, only catches "returns nothing" said of a function
# that returns a value): a sentence about the function saying it returns something, when the code
# returns no value and is not a generator.
_SAYS_IT_RETURNS = re.compile(
    r"\b(it|function|method)\s+(then\s+|also\s+|simply\s+)?returns\s+(?!nothing|`?none\b|no\b)",
    re.IGNORECASE,
)


def claims_missing_return(sentences: list[str], sig: Any) -> bool:
    if sig is None or sig.kind == "class" or not sig.returns_known:
        return False
    if sig.returns_value or sig.is_generator:
        return False
    return any(_SAYS_IT_RETURNS.search(s) for s in sentences if not re.match(r"\W*Returns\b", s))


def _named(sentence: str) -> list[str]:
    from wren.engine.actions.explain_checks import named_identifiers

    return named_identifiers(sentence)


def summarize(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    scored = [r[key] for r in rows]
    named = sum(s["named"] for s in scored)
    sents = sum(s["sentences"] for s in scored)
    with_sig = [s for s in scored if s["has_signature"]]
    return {
        "grounded": sum(s["grounded"] for s in scored) / named if named else 1.0,
        "near_dups": sum(s["near_dups"] for s in scored) / sents if sents else 0.0,
        "claims_ok": (
            sum(1 for s in with_sig if s["params_ok"] and s["returns_ok"]) / len(with_sig)
            if with_sig
            else 1.0
        ),
        "params_ok": sum(1 for s in with_sig if s["params_ok"]) / max(1, len(with_sig)),
        "returns_ok": sum(1 for s in with_sig if s["returns_ok"]) / max(1, len(with_sig)),
        "ends_whole": sum(1 for s in scored if s["ends_whole"]) / max(1, len(scored)),
        "false_return": sum(1 for s in scored if s["false_return"]) / max(1, len(scored)),
        "words": sum(s["words"] for s in scored) / max(1, len(scored)),
    }


# -- running -----------------------------------------------------------------------------------


def load() -> tuple[Any, Any]:
    from eval_common import load_backend
    from wren.engine.actions.llm import ActionModel

    backend = load_backend()
    return backend, ActionModel.for_backend(backend)


def run_one(model: Any, item: Item, style: str) -> dict[str, Any]:
    """The shipped pipeline on one function (its default repair round included)."""
    from wren.engine.actions.explain import ExplainRequest, explain
    from wren.engine.actions.explain_checks import CodeFacts
    from wren.engine.actions.prompts import EXPLAIN_EXAMPLE_ANSWER
    from wren.types import CancelToken

    text = Path(item.path).read_text(encoding="utf-8")
    lines = text.split("\n")
    start = sum(len(line) + 1 for line in lines[: item.first - 1])
    end = start + sum(len(line) + 1 for line in lines[item.first - 1 : item.last])
    name = Path(item.path).name
    request = ExplainRequest(text, "python", start, min(end, len(text)), name)
    calls = len(model.log)
    t0 = time.perf_counter()
    out = explain(model, request, CancelToken(), style=style)
    seconds = time.perf_counter() - t0
    generations = [float(c["seconds"]) for c in model.log[calls:]]
    code = "\n".join(lines[out.first_line - 1 : out.last_line]) + "\n"
    example = EXPLAIN_EXAMPLE_ANSWER if style == "structured" else ""
    facts = CodeFacts(code, text, "python", out.first_line, name, example)
    return {
        "function": f"{item.module}:{item.name}",
        "lines": item.last - item.first + 1,
        "style": style,
        "ok": out.ok,
        "reliable": out.reliable,
        "removed": len(out.removed),
        "rounds": out.rounds,
        "filled": list(out.filled),
        "first_generate_s": round(generations[0] if generations else out.generate_s, 3),
        "repair_generate_s": round(sum(generations[1:]), 3),
        "generate_s": round(out.generate_s, 3),
        "check_s": round(out.check_s, 4),
        "seconds": round(seconds, 2),
        "before": score(out.raw, facts, style),
        "after": score(strip_header(out.markdown), facts, style),
        "raw": out.raw,
        "markdown": out.markdown,
    }


def rescore_saved(path: str) -> dict[str, list[dict[str, Any]]]:
    """Score a saved run's texts again (the scoring only: the model's first answer and the
    markdown Explain returned are kept as they are; nothing is generated or checked again)."""
    from wren.engine.actions.explain_checks import CodeFacts

    saved = json.loads(Path(path).read_text(encoding="utf-8"))
    suite = {f"{i.module}:{i.name}": i for i in build_suite()}
    for style, rows in saved["results"].items():
        for row in rows:
            item = suite[row["function"]]
            text = Path(item.path).read_text(encoding="utf-8")
            lines = text.split("\n")
            shown = re.match(r"\*\*Lines? (\d+)(?:–(\d+))?", row["markdown"])
            first, last = (
                (int(shown[1]), int(shown[2] or shown[1])) if shown else (item.first, item.last)
            )
            code = "\n".join(lines[first - 1 : last]) + "\n"
            facts = CodeFacts(code, text, "python", first, Path(item.path).name)
            row["before"] = score(row["raw"], facts, style)
            row["after"] = score(strip_header(row["markdown"]), facts, style)
    saved["run"]["rescored"] = "scores recomputed from the saved texts by " + " ".join(sys.argv)
    Path(path).write_text(json.dumps(saved, indent=1), encoding="utf-8")
    return saved


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    head = (
        "| style | text | grounded names | near-duplicate sentences | params+return right "
        "(params / return) | says it returns a value the code lacks | ends on a whole sentence | "
        "words | repaired | unreliable | Takes/Returns filled from the code |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for style, items in results.items():
        n = max(1, len(items))
        repaired = sum(1 for r in items if r["rounds"] > 1) / n
        unreliable = sum(1 for r in items if not r["reliable"]) / n
        filled = sum(1 for r in items if r["filled"]) / n
        for key, label in (("before", "raw model text"), ("after", "checked (shown)")):
            s = summarize(items, key)
            tail = (
                f"{repaired:.0%} | {unreliable:.0%} | "
                + (f"{filled:.0%} |" if style == "structured" else "– |")
                if key == "after"
                else "– | – | – |"
            )
            rows.append(
                f"| {style} | {label} | {s['grounded']:.1%} | {s['near_dups']:.1%} | "
                f"{s['claims_ok']:.0%} ({s['params_ok']:.0%} / {s['returns_ok']:.0%}) | "
                f"{s['false_return']:.0%} | {s['ends_whole']:.0%} | {s['words']:.0f} | " + tail
            )
    return head + "\n".join(rows) + "\n"


def timing(results: dict[str, list[dict[str, Any]]]) -> str:
    """The verify step's extra time against the first generation: the check alone, and the
    check plus the repair round's generation (which only some functions need)."""
    out = []
    for style, items in results.items():
        n = max(1, len(items))
        first = sum(r["first_generate_s"] for r in items)
        check = sum(r["check_s"] for r in items)
        repair = sum(r["repair_generate_s"] for r in items)
        worst = max(
            (r["check_s"] / r["first_generate_s"] for r in items if r["first_generate_s"]),
            default=0,
        )
        out.append(
            f"- {style}: mean first generation {first / n:.1f} s, mean check "
            f"{1000 * check / n:.1f} ms, mean repair generation {repair / n:.1f} s; "
            f"check / first generation = {check / first:.2%} in total (worst single {worst:.2%}); "
            f"check + repair round / first generation = {(check + repair) / first:.1%}"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="functions from the suite (0 = all)")
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=160,
        help="prose answer budget (the server's is 300); the structured form always gets the "
        "server's own budget (200, it stops at the end of the form)",
    )
    ap.add_argument("--styles", default="structured,prose")
    ap.add_argument("--list", action="store_true", help="print the suite and exit")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "eval_explain.json"))
    ap.add_argument("--write-benchmarks", action="store_true")
    ap.add_argument("--score", default="", help="score a saved run's texts again (no model run)")
    args = ap.parse_args()
    if args.score:
        saved = rescore_saved(args.score)
        print(json.dumps(saved["run"], indent=1))
        print(table(saved["results"]) + "\n" + timing(saved["results"]))
        return 0
    suite = build_suite()
    if args.limit:
        suite = suite[: args.limit]
    if args.list:
        for item in suite:
            print(f"{item.module}:{item.name} lines {item.first}-{item.last}")
        return 0
    load_before = uptime()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    backend, model = load()
    shipped_budget = model.max_text_tokens
    results: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for style in args.styles.split(","):
        model.max_text_tokens = args.max_tokens if style == "prose" else shipped_budget
        results[style] = []
        for n, item in enumerate(suite, 1):
            row = run_one(model, item, style)
            results[style].append(row)
            partial = {"run": {"partial": True}, "results": results}
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(partial, indent=1), encoding="utf-8")
            print(
                f"[{style} {n}/{len(suite)}] {row['function']} ({row['lines']} lines) "
                f"gen {row['generate_s']:.1f}s check {1000 * row['check_s']:.1f}ms "
                f"removed {row['removed']} rounds {row['rounds']}"
                f"{'' if row['reliable'] else ' UNRELIABLE'}",
                file=sys.stderr,
            )
    wall = time.perf_counter() - t0
    from eval_common import machine

    description = {
        "model": getattr(backend, "name", "?"),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "command": "scripts/eval_explain.py " + " ".join(sys.argv[1:]),
        "functions": len(suite),
        "modules": sorted({i.module for i in suite}),
        "commit": commit,
        "load_before": load_before,
        "load_after": uptime(),
        "wall_s": round(wall, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"run": description, "results": results}, indent=1), encoding="utf-8"
    )
    text = table(results) + "\n" + timing(results)
    print(json.dumps(description, indent=1))
    print(text)
    if args.write_benchmarks:
        write_section(description, text)
    return 0


def write_section(description: dict[str, Any], text: str) -> None:
    """Replace the section's contents with this run (the section goes at the end if missing)."""
    path = ROOT / "BENCHMARKS.md"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    section = (
        f"{SECTION}\n\n{SECTION_INTRO}\n\n"
        f"### {description['date']}: {description['functions']} functions, "
        f"model {description['model']}\n\n"
        f"- machine: {description['machine']}\n"
        f"- command: `{description['command']}`\n"
        f"- load (uptime) before: `{description['load_before']}`; after: "
        f"`{description['load_after']}`; wall {description['wall_s']} s for all styles\n"
        f"- modules: {', '.join(description['modules'])}\n\n" + text + "\n"
    )
    if SECTION in current:
        start = current.index(SECTION)
        end = current.find("\n## ", start + len(SECTION))
        current = current[:start] + section + (current[end:] if end >= 0 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + section
    path.write_text(current, encoding="utf-8")


SECTION_INTRO = (
    "What `scripts/eval_explain.py` measures: the shipped Explain pipeline\n"
    "(`engine.actions.explain.explain` with the server's defaults: generate, check with\n"
    "`explain_checks.py`, one repair round when the check judges the text unreliable) on real\n"
    "functions (5-40 lines, standard library and installed packages, none written here), once per\n"
    'style. "Raw model text" is the model\'s first answer before any check; "checked (shown)" is\n'
    "the markdown Explain returns. Timing is the verify step's share of the first generation."
)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
