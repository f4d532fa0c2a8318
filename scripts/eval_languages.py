#!/usr/bin/env python
"""Line completion in every language Wren parses besides Python, on real code nobody here wrote.

Sources (all offline, none written for Wren; the run prints which files it found):
  typescript  `.ts` sources (not `.d.ts`) of npm packages in client-vscode/node_modules
              (@azure/msal-*, ajv, cheerio, ...: `npm ci` in client-vscode puts them there)
  javascript  `.js` files under `lib/` of npm packages in client-vscode/node_modules
              (eslint, undici, ...), minified files skipped
  go          /usr/share/gocode/src (Debian golang-*-dev packages, e.g.
              `apt-get install golang-github-google-go-cmp-dev golang-github-pkg-errors-dev`)
  rust        /usr/share/cargo/registry (Debian librust-*-dev packages, e.g.
              `apt-get install librust-regex-syntax-dev librust-itertools-dev`)
  java        java.base/java/util of the JDK's sources, read from the zip in place (Debian
              `apt-get install openjdk-17-source`)
  c           /usr/share/doc/*/examples/*.c (example programs Debian -dev packages ship:
              zlib1g-dev, nettle-dev, ...)
  cpp         /usr/include/c++/*/bits (libstdc++'s implementation headers, Debian libstdc++-dev)

Tasks: in each file, lines of code (not comments, strings, or lines of only brackets), each
masked one of two ways, drawn per line with a fixed seed: "start" (the cursor after the
line's indentation, the whole line masked) or "mid" (the cursor after a token boundary inside
the line, the rest of the line masked). As in `eval_infill.py`'s cross-file suite, the masked
text is removed and the rest of the file is the suffix. Lines are drawn in a shuffled order
(fixed seed) until `--per-language` pass the filters, then run in file order.

Each task drives Wren's own `CompletionEngine.complete` (`eval_infill.run_task`: trigger,
prompt, healing, post-processing; the rerank stage runs on top of the same greedy pass) and
records the raw model output from the same prompt (its first line) beside what the engine
shows. The "engine" columns are what ships (`wren.completion.rerank` is off by default, so the
cleaned greedy line); "+ rerank" is the same requests with the rerank stage. Scores: exact
match and edit similarity of each, the share shown, and the share shown but wrong. The stage
ablations are
`eval_infill`'s: `--context`, `--no-rerank`, `--no-healing`, `--patch-indentation` at run
time, and `--analyze JSONL...` recomputes the clean-up rules and the trigger offline.

Symbol context outside Python is the tags index (context/tags.py). With `--context` each
task's package is its workspace (Java: java/util extracted from src.zip to a temporary folder),
indexed before the first task. `--context-only symbols` turns symbol context on for every
language whatever the default table (config.SYMBOL_CONTEXT_DEFAULTS) says, and
`--symbol-tasks-only` keeps only the tasks where the index has a definition to show (the others
get the same prompt either way), so the comparison costs only those:
  nice -n 10 .venv/bin/python scripts/eval_languages.py --per-language 20 --symbol-tasks-only
  nice -n 10 .venv/bin/python scripts/eval_languages.py --per-language 20 --symbol-tasks-only \
      --context --context-only symbols --budget-ms 1000

Examples
  .venv/bin/python scripts/eval_languages.py --per-language 5
  nice -n 10 .venv/bin/python scripts/eval_languages.py --per-language 100 --write-benchmarks
  .venv/bin/python scripts/eval_languages.py --summary artifacts/eval_languages/*.jsonl
  .venv/bin/python scripts/eval_languages.py --analyze artifacts/eval_languages/*.jsonl
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(SCRIPTS))

import eval_common  # noqa: E402
import eval_infill  # noqa: E402
from eval_infill import Task, _records, add_run_options  # noqa: E402
from wren.config import CompletionSettings, ContextSettings  # noqa: E402
from wren.context.syntax import literal_at  # noqa: E402
from wren.context.tags import tag_snippets  # noqa: E402
from wren.engine.actions.regions import comment_lines  # noqa: E402

log = logging.getLogger("eval_languages")

DEFAULT_OUT = ROOT / "artifacts" / "eval_languages"
SECTION = "## Languages"
LANGUAGES = ("typescript", "javascript", "go", "rust", "java", "c", "cpp")
NODE_MODULES = ROOT / "client-vscode" / "node_modules"
MAX_FILE_CHARS = 200_000
MAX_LINE_CHARS = 160  # a file with a longer line is minified or generated: skipped
MIN_MASKED = 4  # characters of the masked text (without spaces)
MAX_MASKED = 120


# -- sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    label: str  # where it came from, for the report
    uri: str
    path: str  # a file-system path ("" when read from an archive)
    text: str


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if len(text) > MAX_FILE_CHARS or any(len(line) > MAX_LINE_CHARS for line in text.split("\n")):
        return None
    return text


def _files(paths: list[Path]) -> Iterator[SourceFile]:
    for path in sorted(set(paths)):
        if "/test" in str(path) or ".spec." in path.name or ".test." in path.name:
            continue
        text = _read(path)
        if text is not None:
            yield SourceFile(str(path), path.as_uri(), str(path), text)


def _jdk_sources() -> Iterator[SourceFile]:
    # Debian's openjdk-N-source first, then any other JDK's sources.
    found = sorted(Path("/usr/lib/jvm").glob("openjdk-*/src.zip"))
    found += sorted(Path("/usr/lib/jvm").glob("*/lib/src.zip"))
    archives = [p for p in found if p.is_file()]
    if not archives:
        return
    archive = archives[0].resolve()
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            if not re.fullmatch(r"java\.base/java/util/[A-Za-z]+\.java", name):
                continue
            text = zf.read(name).decode("utf-8", errors="replace")
            if len(text) > MAX_FILE_CHARS:
                continue
            yield SourceFile(f"{archive}!{name}", f"file:///jdk-src/{name}", "", text)


def source_files(language: str) -> Iterator[SourceFile]:
    """The real files the `language` suite is drawn from (see the module docstring)."""
    if language == "typescript":
        found = [p for p in NODE_MODULES.rglob("*.ts") if not p.name.endswith(".d.ts")]
        yield from _files(found)
    elif language == "javascript":
        found = [p for p in NODE_MODULES.glob("**/lib/**/*.js") if ".min." not in p.name]
        yield from _files(found)
    elif language == "go":
        yield from _files(list(Path("/usr/share/gocode/src").rglob("*.go")))
    elif language == "rust":
        yield from _files(list(Path("/usr/share/cargo/registry").rglob("*.rs")))
    elif language == "java":
        yield from _jdk_sources()
    elif language == "c":
        yield from _files(list(Path("/usr/share/doc").glob("*/examples/*.c")))
    elif language == "cpp":
        found = [p for p in Path("/usr/include/c++").glob("*/bits/*") if p.suffix in (".h", ".tcc")]
        yield from _files(found)
    else:
        raise ValueError(f"unknown language {language!r}; choose from {', '.join(LANGUAGES)}")


# -- tasks ----------------------------------------------------------------------------------

_CODE = re.compile(r"[A-Za-z0-9_]")
_CUT_AFTER = set(" (.=,[{:<!&|+-*/")


def _candidate_rows(text: str) -> list[int]:
    """Rows worth masking, by cheap checks: some code, not only brackets, a sane length."""
    rows = []
    for row, line in enumerate(text.split("\n")):
        s = line.strip()
        if not MIN_MASKED <= len(s) <= MAX_MASKED or len(_CODE.findall(s)) < 3:
            continue
        if s.startswith(("//", "/*", "*", "#!")):
            continue  # the grammar decides the rest; these are comments in every language here
        rows.append(row)
    return rows


def _is_code_line(language: str, text: str, row: int, start: int) -> bool:
    """The grammar's view: the line is not a comment, nor inside a string or comment."""
    found = comment_lines(language, text, row, row)
    if found is None or row in found:
        return False
    at = literal_at(language, text, start + 1)
    return at is not None and at.string_delimiter is None and not at.block_comment


def language_tasks(language: str, n: int, seed: int) -> tuple[list[Task], int, list[str]]:
    """`n` tasks (fewer if the sources run out), the number of candidate lines, and the
    sources (labels of the files that have a task)."""
    files = list(source_files(language))
    candidates = [(i, row) for i, f in enumerate(files) for row in _candidate_rows(f.text)]
    rng = random.Random(f"{seed}:{language}")
    order = list(range(len(candidates)))
    rng.shuffle(order)
    picked: list[tuple[int, int, str, int]] = []  # file, row, kind, column
    for k in order:
        if len(picked) >= n:
            break
        i, row = candidates[k]
        text = files[i].text
        lines = text.split("\n")
        line_start = sum(len(line) + 1 for line in lines[:row])
        line = lines[row]
        indent = len(line) - len(line.lstrip())
        if not _is_code_line(language, text, row, line_start + indent):
            continue
        content = line.rstrip()
        cuts = [
            c
            for c in range(indent + 2, len(content) - 2)
            if content[c - 1] in _CUT_AFTER
            and not content[c].isspace()
            and len(content[c:].strip()) >= MIN_MASKED - 1
        ]
        if rng.random() < 0.5 and cuts:
            picked.append((i, row, "mid", rng.choice(cuts)))
        else:
            picked.append((i, row, "start", indent))
    tasks = []
    for i, row, kind, col in sorted(picked):
        f = files[i]
        lines = f.text.split("\n")
        line_start = sum(len(line) + 1 for line in lines[:row])
        start = line_start + col
        end = line_start + len(lines[row])
        tasks.append(
            Task(
                task_id=f"{language}/{f.label}:{row + 1}:{kind}@{col}",
                suite=language,
                uri=f.uri,
                path=f.path,
                text=f.text[:start] + f.text[end:],
                offset=start,
                expected=lines[row][col:].rstrip(),
                language_id=language,
            )
        )
    sources = sorted({files[i].label for i, *_ in picked})
    return tasks, len(candidates), sources


# -- running --------------------------------------------------------------------------------


def run_language(args: argparse.Namespace, language: str) -> Path | None:
    tasks, total, sources = language_tasks(language, args.per_language, args.seed)
    if not tasks:
        print(f"{language}: no source files found (see --help for where they come from)")
        return None
    roots = sorted({_root_of(s) for s in sources})
    print(
        f"{language}: {len(tasks)} tasks from {len(sources)} files under {', '.join(roots)} "
        f"({total} candidate lines)",
        file=sys.stderr,
    )
    args.suite = language
    if args.context or args.symbol_tasks_only:
        tasks = with_workspaces(tasks)
    if args.symbol_tasks_only:
        # The other tasks get the same prompt with and without symbol context.
        tasks = [t for t in tasks if tag_snippets(t.snapshot(), t.workspace, budget_s=5)]
        print(f"{language}: {len(tasks)} tasks with a definition to show", file=sys.stderr)
    return eval_infill.run_tasks(args, tasks, total)


JDK_EXTRACT = Path(tempfile.gettempdir()) / "wren-eval-jdk-src"


def _label_of(task: Task) -> str:
    return task.task_id.split("/", 1)[1].rsplit(":", 2)[0]


def with_workspaces(tasks: list[Task]) -> list[Task]:
    """For context runs: each task's package (the root `_root_of` names) is its workspace, as
    if the user had opened that folder, and its tags index (context/tags.py) is built before
    the first task; a completion never waits for it. Java's sources are read from src.zip:
    java/util is extracted to a temporary folder, which is then the workspace."""
    from wren.context import tags

    out = []
    for task in tasks:
        label = _label_of(task)
        if "!" in label:
            archive, name = label.split("!", 1)
            path = JDK_EXTRACT / name
            if not path.exists():
                with zipfile.ZipFile(archive) as zf:
                    for member in zf.namelist():
                        if re.fullmatch(r"java\.base/java/util/[A-Za-z]+\.java", member):
                            zf.extract(member, JDK_EXTRACT)
            task = replace(task, path=str(path), workspace=str(path.parent))
        else:
            task = replace(task, workspace=_root_of(label))
        out.append(task)
    for root in sorted({t.workspace for t in out}):
        index = tags.index_for(root, use_git=False)
        index.wait(900)
        print(f"  tags index of {root}: {index.files_indexed} files", file=sys.stderr)
    return out


def _symbols_everywhere(settings_for: Any) -> Any:
    """`--context-only symbols` measures the tags index whatever the default table says."""

    def wrapped(context: bool, rerank: bool, budget_ms: int) -> Any:
        settings = settings_for(context, rerank, budget_ms)
        symbols = ContextSettings(enabled=context, budgetMs=budget_ms, symbols={"*": True})
        return replace(settings, context=symbols)

    return wrapped


def _root_of(label: str) -> str:
    """The package a source file belongs to, for the report."""
    if "!" in label:
        return label.split("!")[0]
    for marker in ("/node_modules/", "/gocode/src/", "/cargo/registry/", "/doc/", "/c++/"):
        if marker in label:
            head, tail = label.split(marker, 1)
            parts = tail.split("/")
            depth = 2 if marker == "/node_modules/" and parts[0].startswith("@") else 1
            if marker == "/gocode/src/":
                depth = 3
            return head + marker + "/".join(parts[:depth])
    return str(Path(label).parent)


# -- the table ------------------------------------------------------------------------------


def _pct(values: list[bool]) -> str:
    return f"{100 * sum(values) / len(values):.1f}" if values else "-"


def language_table(paths: list[str]) -> str:
    """language x exact match / edit similarity / shown / shown-wrong, engine beside raw.

    "engine" is what ships: `wren.completion.rerank` is off by default, so the engine shows the
    cleaned greedy line (the records' `greedy`); the rerank stage, when the run had it on, is
    the `+ rerank` column (`completion`)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in _records(paths):
        groups.setdefault((rec["suite"], rec["config"]), []).append(rec)
    shipped = "completion" if CompletionSettings().rerank else "greedy"
    out = [
        "| language | config | tasks (start / mid) | engine EM % | raw EM % | engine ES | raw ES "
        "| shown % | shown, wrong % | engine EM start / mid % | + rerank EM % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {lang: i for i, lang in enumerate(LANGUAGES)}
    for (suite, config), recs in sorted(groups.items(), key=lambda kv: order.get(kv[0][0], 99)):
        starts = [r for r in recs if ":start@" in r["task_id"]]
        mids = [r for r in recs if ":mid@" in r["task_id"]]
        shown = [bool(r[shipped].strip()) for r in recs]
        wrong = [s and not r["em"][shipped] for s, r in zip(shown, recs, strict=True)]
        reranked = any(r.get("candidates") for r in recs)
        out.append(
            f"| {suite} | {config} | {len(recs)} ({len(starts)} / {len(mids)}) "
            f"| {_pct([r['em'][shipped] for r in recs])} "
            f"| {_pct([r['em']['raw'] for r in recs])} "
            f"| {statistics.mean(r['es'][shipped] for r in recs):.3f} "
            f"| {statistics.mean(r['es']['raw'] for r in recs):.3f} "
            f"| {_pct(shown)} | {_pct(wrong)} "
            f"| {_pct([r['em'][shipped] for r in starts])} / "
            f"{_pct([r['em'][shipped] for r in mids])} "
            f"| {_pct([r['em']['completion'] for r in recs]) if reranked else '-'} |"
        )
    return "\n".join(out)


def _tasks_of_records(paths: list[str]) -> Any:
    """For `eval_infill.analyze`: rebuild a language's tasks as the records' run drew them."""
    samples: dict[str, tuple[int, int]] = {}
    for rec in _records(paths):
        samples.setdefault(rec["suite"], (rec["sample"]["n"], rec["sample"]["seed"]))

    def tasks_of(suite: str) -> list[Task]:
        n, seed = samples[suite]
        return language_tasks(suite, n, seed)[0]

    return tasks_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--languages", nargs="+", choices=LANGUAGES, default=list(LANGUAGES))
    parser.add_argument("--per-language", type=int, default=100, help="masked lines each")
    add_run_options(parser)
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT))
    parser.add_argument("--name", default="")
    parser.add_argument("--summary", nargs="+", metavar="JSONL", help="print tables and exit")
    parser.add_argument(
        "--analyze", nargs="+", metavar="JSONL", help="offline clean-up/trigger ablation"
    )
    parser.add_argument("--list", action="store_true", help="print where tasks come from")
    parser.add_argument(
        "--symbol-tasks-only",
        action="store_true",
        help="only the tasks where the tags index has a definition for the prompt (the others "
        "get the same prompt with and without --context-only symbols)",
    )
    parser.add_argument(
        "--write-benchmarks", action="store_true", help=f"put the table under {SECTION!r}"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.context and args.context_only == "symbols":
        eval_infill.settings_for = _symbols_everywhere(eval_infill.settings_for)
    elif args.context and args.context_only == "neighbors":
        eval_infill._completion.tag_snippets = lambda *a, **k: []
    if args.analyze:
        print(eval_infill.analyze(args.analyze, "", tasks_of=_tasks_of_records(args.analyze)))
        return 0
    if args.summary:
        print(language_table(args.summary))
        return 0
    if args.list:
        for language in args.languages:
            tasks, total, sources = language_tasks(language, args.per_language, args.seed)
            roots = ", ".join(sorted({_root_of(s) for s in sources})) or "(no sources found)"
            print(f"{language}: {len(tasks)} tasks of {total} candidate lines; from {roots}")
        return 0
    load = os.getloadavg()
    outs: list[str] = []
    for language in args.languages:
        out = run_language(args, language)
        if out is not None:
            outs.append(str(out))
    table = language_table(outs)
    print(table)
    print()
    print(eval_infill.summarize(outs))
    if args.write_benchmarks:
        header = (
            f"Model: default (SmolLM2-135M), greedy. Machine: {eval_common.machine()}. "
            f"Date: {datetime.date.today().isoformat()}. Load average at the start: "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. Command: "
            f"`scripts/eval_languages.py {' '.join(sys.argv[1:])}`.\n\n"
        )
        eval_common.write_benchmarks("languages-table", header + table, section=SECTION)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
