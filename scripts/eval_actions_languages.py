"""Explain, Fix and Generate outside Python: a smoke run per language on real code.

For each language (the same real sources as `scripts/eval_languages.py`: npm packages, Debian's
Go/Rust/C/C++ sources, the JDK's java.util), pick functions that have a comment right above them
and run Wren's own action pipeline (`wren.engine.actions`, as the editor commands run it):

- Explain the function: is an explanation shown, and does it pass Wren's own checks (not the
  "could not explain this reliably" answer)?
- Generate from the comment: the function is removed and the cursor put after its comment. Is
  code offered, does the file parse no worse with it (tree-sitter error nodes), and is it in the
  right language (code that Python's own parser accepts is counted as the wrong language)?
- Fix a typo: one later use of a name the function uses twice or more has two letters swapped,
  and Fix is asked with the compiler-style message "cannot find name 'x'" at that place. Is an
  edit offered, does it parse no worse, and does it give back the original function exactly?

    .venv/bin/python scripts/eval_actions_languages.py --per-language 5 [--markdown]

Writes artifacts/eval_actions_languages/<language>.jsonl (one record per function and action).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_common import load_backend, machine
from eval_languages import LANGUAGES, ROOT, source_files
from wren.context.syntax import count_errors, parse

OUT_DIR = ROOT / "artifacts" / "eval_actions_languages"
# Function-like definitions per language (classes and types are not generated from a comment).
FUNCTIONS: dict[str, frozenset[str]] = {
    "typescript": frozenset({"function_declaration", "method_definition"}),
    "javascript": frozenset({"function_declaration", "method_definition"}),
    "go": frozenset({"function_declaration", "method_declaration"}),
    "rust": frozenset({"function_item"}),
    "java": frozenset({"method_declaration", "constructor_declaration"}),
    "c": frozenset({"function_definition"}),
    "cpp": frozenset({"function_definition"}),
}
MIN_LINES, MAX_LINES = 3, 20
MIN_COMMENT_WORDS = 4
FILES_PER_LANGUAGE = 400  # files scanned for candidates (sources are sorted, then shuffled)


@dataclass(frozen=True)
class Function:
    label: str
    text: str  # the whole file
    start: int  # the function's offsets in `text`
    end: int
    comment_start: int  # the comment right above it
    comment_end: int
    name: str


def _errors(language: str, text: str) -> int:
    tree = parse(language, text)
    return count_errors(tree) if tree is not None else 10**6


def _is_python(code: str) -> bool:
    if not code.strip():
        return False
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _name_of(node: Any) -> str:
    named = node.child_by_field_name("name")
    if named is None:
        decl = node.child_by_field_name("declarator")
        while decl is not None and decl.child_by_field_name("declarator") is not None:
            decl = decl.child_by_field_name("declarator")
        named = decl
    return named.text.decode("utf-8", "replace") if named is not None and named.text else ""


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in node.children:
        yield from _walk(child)


def functions(language: str, n: int, seed: int) -> list[Function]:
    """`n` commented functions of `language` from its real sources, seeded."""
    files = list(source_files(language))
    random.Random(seed).shuffle(files)
    found: list[Function] = []
    for source in files[:FILES_PER_LANGUAGE]:
        text = source.text
        if not text.isascii():  # byte and character offsets agree below
            continue
        tree = parse(language, text)
        if tree is None:
            continue
        for node in _walk(tree.root_node):
            if node.type not in FUNCTIONS[language] or node.has_error:
                continue
            lines = node.end_point.row - node.start_point.row + 1
            if node.parent is not None and node.parent.type == "template_declaration":
                node = node.parent  # C++: the comment is above `template <...>`
            prev = node.prev_named_sibling
            if not (MIN_LINES <= lines <= MAX_LINES) or prev is None or "comment" not in prev.type:
                continue
            if prev.end_point.row != node.start_point.row - 1:
                continue
            words = prev.text.decode("utf-8", "replace").split() if prev.text else []
            if len(words) < MIN_COMMENT_WORDS:
                continue
            found.append(
                Function(
                    source.label,
                    text,
                    node.start_byte,
                    node.end_byte,
                    prev.start_byte,
                    prev.end_byte,
                    _name_of(node),
                )
            )
            break  # one function per file: spread over files
        if len(found) >= n:
            break
    return found


def typo_of(fn: Function, language: str) -> tuple[str, int, str] | None:
    """(broken file text, offset of the broken use, the misspelt name), or None."""
    tree = function_node(fn, language)
    if tree is None:
        return None
    uses: dict[str, list[int]] = {}
    for node in _walk(tree):
        if node.type == "identifier" and node.text:
            uses.setdefault(node.text.decode(), []).append(node.start_byte)
    for name, offsets in sorted(uses.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if len(offsets) < 2 or len(name) < 4 or name == fn.name:
            continue
        typo = name[0] + name[2] + name[1] + name[3:]
        if typo == name or typo in fn.text:
            continue
        at = offsets[-1]
        broken = fn.text[:at] + typo + fn.text[at + len(name) :]
        return broken, at, typo
    return None


def function_node(fn: Function, language: str) -> Any:
    tree = parse(language, fn.text)
    if tree is None:
        return None
    node = tree.root_node.descendant_for_byte_range(fn.start, fn.end)
    while node is not None and (node.start_byte, node.end_byte) != (fn.start, fn.end):
        node = node.parent
    return node


def run_explain(model: Any, language: str, fn: Function) -> dict[str, Any]:
    from wren.engine.actions.explain import ExplainRequest, explain
    from wren.types import CancelToken

    t0 = time.perf_counter()
    out = explain(model, ExplainRequest(fn.text, language, fn.start, fn.end), CancelToken())
    return {
        "shown": bool(out.ok and out.markdown.strip()),
        "checked_ok": bool(out.ok and out.reliable),
        "removed": len(out.removed),
        "seconds": round(time.perf_counter() - t0, 1),
        "markdown": out.markdown,
    }


def run_generate(model: Any, language: str, fn: Function, options: Any) -> dict[str, Any]:
    from wren.engine.actions.generate import GenerateRequest, generate
    from wren.types import CancelToken

    # The function removed; the cursor at the end of its comment.
    end = fn.end
    if fn.text[end : end + 1] == "\n":
        end += 1
    text = fn.text[: fn.comment_end] + "\n" + fn.text[end:]
    t0 = time.perf_counter()
    out = generate(model, GenerateRequest(text, language, fn.comment_end), options, CancelToken())
    row: dict[str, Any] = {
        "offered": out.edit is not None,
        "verified": out.verified,
        "reason": out.reason,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out.edit is not None:
        code = out.edit.new_text
        row["parses_no_worse"] = _errors(language, out.edit.apply(text)) <= _errors(language, text)
        row["python_instead"] = _is_python(code)
        row["code"] = code
    return row


def run_fix(model: Any, language: str, fn: Function, options: Any) -> dict[str, Any] | None:
    from wren.engine.actions.fix import FixRequest, fix
    from wren.types import CancelToken

    broken = typo_of(fn, language)
    if broken is None:
        return None
    text, at, typo = broken
    request = FixRequest(text, language, at, at, problems=(f"cannot find name '{typo}'",))
    t0 = time.perf_counter()
    out = fix(model, request, options, CancelToken())
    row: dict[str, Any] = {
        "typo": typo,
        "offered": out.edit is not None,
        "verified": out.verified,
        "reason": out.reason,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out.edit is not None:
        fixed = out.edit.apply(text)
        row["parses_no_worse"] = _errors(language, fixed) <= _errors(language, text)
        row["python_instead"] = _is_python(out.edit.new_text)
        row["restored"] = fixed == fn.text
        row["code"] = out.edit.new_text
    return row


def _pct(rows: list[dict[str, Any]], key: str) -> str:
    return f"{sum(bool(r.get(key)) for r in rows)}/{len(rows)}" if rows else "–"


def table(by_language: dict[str, list[dict[str, Any]]]) -> str:
    head = (
        "| language | functions | Explain shown | Explain passes checks | Generate offered "
        "| parses no worse | Python instead | Fix offered | parses no worse | restores original |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for language, rows in by_language.items():
        ex = [r["explain"] for r in rows]
        gen = [r["generate"] for r in rows]
        gen_off = [g for g in gen if g["offered"]]
        fixes = [r["fix"] for r in rows if r.get("fix")]
        fix_off = [f for f in fixes if f["offered"]]
        lines.append(
            f"| {language} | {len(rows)} | {_pct(ex, 'shown')} | {_pct(ex, 'checked_ok')} "
            f"| {_pct(gen, 'offered')} | {_pct(gen_off, 'parses_no_worse')} "
            f"| {_pct(gen_off, 'python_instead')} | {_pct(fixes, 'offered')} "
            f"| {_pct(fix_off, 'parses_no_worse')} | {_pct(fix_off, 'restored')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--languages", nargs="+", choices=LANGUAGES, default=list(LANGUAGES))
    ap.add_argument("--per-language", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default=str(OUT_DIR))
    ap.add_argument("--summary", nargs="+", metavar="JSONL", help="print the table and exit")
    args = ap.parse_args(argv)

    if args.summary:
        by_language: dict[str, list[dict[str, Any]]] = {}
        for path in args.summary:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                by_language.setdefault(rec["language"], []).append(rec)
        print(table(by_language))
        return 0

    from wren.engine.actions.llm import ActionModel
    from wren.engine.actions.loop import VerifyOptions

    backend = load_backend()
    options = VerifyOptions(run_code=False)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}; model {getattr(backend, 'name', '?')}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {}
    for language in args.languages:
        fns = functions(language, args.per_language, args.seed)
        path = out_dir / f"{language}-n{args.per_language}-seed{args.seed}.jsonl"
        rows: list[dict[str, Any]] = []
        with path.open("w", encoding="utf-8") as out:
            for fn in fns:
                model = ActionModel.for_backend(backend)
                rec: dict[str, Any] = {"language": language, "file": fn.label, "name": fn.name}
                rec["explain"] = run_explain(model, language, fn)
                rec["generate"] = run_generate(model, language, fn, options)
                rec["fix"] = run_fix(model, language, fn, options)
                out.write(json.dumps(rec) + "\n")
                out.flush()
                rows.append(rec)
                print(f"{language} {fn.name}: done", flush=True)
        results[language] = rows
        print(f"{language}: {len(rows)} functions -> {path}", flush=True)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
