"""write -> verify -> repair: the loop Fix and Generate share.

Each round asks the model for code, turns it into an edit of the document (indentation, line
endings), checks that a rewrite changes the code at all (not only whitespace, comments,
docstrings, annotations or decorators), checks the edited document statically (parses, no new
undefined names, no second definition of an existing name) and, when allowed, runs it
(examples, a given test) in the sandbox. A failure is told to the model in the next round, up
to `max_retries` times. The first verified edit wins; when none verifies, the last edit that
parses and changes something is offered, marked unverified, with the reason; an edit that does
not parse, or changes nothing the code does, is never offered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from wren.engine.actions.change_checks import UNCHANGED_HINT, unchanged_reason
from wren.engine.actions.examples import Example, check_script
from wren.engine.actions.llm import ActionModel, CodeAnswer, Messages, ask_for_code
from wren.engine.actions.outcome import Attempt, EditOutcome, ProposedEdit
from wren.engine.actions.prompts import repair_messages, restate_messages
from wren.engine.actions.sandbox import run_python
from wren.engine.actions.verify import CheckResult, check_change, undefined_names
from wren.types import CancelToken

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyOptions:
    """How hard to check. `run_code` is only ever true for a trusted workspace."""

    run_code: bool = False
    timeout_s: float = 5.0
    max_retries: int = 2
    memory_mb: int = 1024
    test_code: str = ""  # extra statements to run after the module (a given test)
    extra_paths: tuple[str, ...] = ()  # sys.path entries for the run (the file's folder)
    # How a failure goes back to the model: "conversation" shows the failed code and the
    # error as the next chat turn; "restate" asks again with the errors listed, no code.
    # Restate is the default: with greedy decoding a small model shown its own failed code
    # mostly writes it again (BENCHMARKS.md, "Generate and Fix").
    repair_style: str = "restate"


@dataclass(frozen=True)
class Candidate:
    edit: ProposedEdit
    new_document: str
    first_row: int
    last_row: int
    code: str  # the model's code as shown back to it in a repair round
    # A rewrite (Fix): the code it replaces and the new code, both dedented; checked for a
    # real change. None for new code (Generate).
    replaces: str | None = None
    replacement: str = ""


Builder = Callable[[str], "Candidate | str"]
Runner = Callable[[Candidate, CancelToken], CheckResult]


def run_examples(
    candidate: Candidate,
    examples: list[Example],
    options: VerifyOptions,
    cancel: CancelToken,
) -> CheckResult:
    """Run the edited document as a module, then its examples and the given test."""
    script = check_script(candidate.new_document.replace("\r\n", "\n"), examples, options.test_code)
    result = run_python(
        script,
        timeout_s=options.timeout_s,
        memory_mb=options.memory_mb,
        cancel=cancel,  # stops the run; its checkpoint lets completions run meanwhile
        extra_paths=options.extra_paths,
        run_name="__wren_check__",
    )
    cancel.raise_if_cancelled()
    what = f"{len(examples)} example(s)" if examples else "the module"
    if options.test_code.strip():
        what += " and the given test"
    if result.ok:
        return CheckResult(True, f"ran {what}", ("run",))
    return CheckResult(False, f"running {what} failed: {result.reason}", ("run",))


def write_verify_repair(
    model: ActionModel,
    messages: Messages,
    language_id: str,
    old_text: str,
    build: Builder,
    options: VerifyOptions,
    cancel: CancelToken,
    title: str,
    runner: Runner | None = None,
    first_answer: Callable[[], CodeAnswer] | None = None,
) -> EditOutcome:
    calls_before = model.calls
    attempts: list[Attempt] = []
    offer: tuple[Candidate, str] | None = None  # parses, but failed a later check
    checks_run: set[str] = set()
    conversation = messages
    failed_codes: set[str] = set()  # candidates that failed a check
    failed_answers: set[str] = set()  # raw answers (a repeat of one means no progress)
    failures: list[str] = []
    undefined_before: set[str] | None = None  # names the old document already left undefined

    def next_round(conversation: Messages, code: str | None, problem: str) -> Messages:
        if options.repair_style == "restate":
            failures.append(problem)
            return restate_messages(messages, failures)
        return repair_messages(conversation, code, problem, language_id)

    last_reason = "the model produced no usable code"
    for round_no in range(1, options.max_retries + 2):
        cancel.raise_if_cancelled()
        t0 = time.perf_counter()
        if round_no == 1 and first_answer is not None:
            answer = first_answer()
        else:
            answer = ask_for_code(model, conversation, language_id, cancel)
        code = answer.extracted.code

        def record(
            passed: bool,
            stage: str,
            reason: str,
            edit: ProposedEdit | None = None,
            code: str | None = code,
            t0: float = t0,
            round_no: int = round_no,
        ) -> None:
            seconds = time.perf_counter() - t0
            attempts.append(Attempt(round_no, code, passed, reason, stage, seconds, edit))

        if code is None:
            last_reason = answer.extracted.reason
            record(False, "answer", last_reason)
            conversation = next_round(conversation, None, "Your answer had no code")
            continue
        if code in failed_answers:
            record(False, "repeat", "the model repeated an earlier answer")
            break
        failed_answers.add(code)
        built = build(code)
        if isinstance(built, str):
            last_reason = built
            record(False, "layout", built)
            if not answer.extracted.complete:
                built += (
                    "; the answer was too long and was cut off: write only the code, "
                    "without repeating the docstring"
                )
            conversation = next_round(conversation, code, built)
            continue
        if built.code in failed_codes:
            # Greedy decoding answered the feedback with code it already wrote: another round
            # would repeat itself too.
            record(False, "repeat", "the model repeated an earlier attempt", built.edit)
            break
        failed_codes.add(built.code)
        if built.replaces is not None:
            if undefined_before is None:
                undefined_before = (
                    (undefined_names(old_text) or set()) if language_id == "python" else set()
                )
            same = unchanged_reason(
                language_id, built.replaces, built.replacement, undefined_before
            )
            checks_run.add("change")
            if same is not None:
                last_reason = same
                record(False, "unchanged", same, built.edit)
                log.info("%s: round %d rejected, %s", title, round_no, same)
                conversation = next_round(conversation, built.code, f"{same}; {UNCHANGED_HINT}")
                continue
        static = check_change(
            language_id, old_text, built.new_document, built.first_row, built.last_row, built.code
        )
        checks_run.update(static.checks)
        if not static.ok:
            stage = static.stage or "names"
            last_reason = static.reason
            record(False, stage, static.reason, built.edit)
            log.info("%s: round %d rejected (%s), %s", title, round_no, stage, static.reason)
            if stage in ("names", "redefines"):
                offer = (built, static.reason)
            feedback = f"{static.reason}; {static.hint}" if static.hint else static.reason
            conversation = next_round(conversation, built.code, feedback)
            continue
        ran_what = ""
        if runner is not None:
            ran = runner(built, cancel)
            checks_run.update(ran.checks)
            if not ran.ok:
                last_reason = ran.reason
                record(False, "run", ran.reason, built.edit)
                log.info("%s: round %d rejected (run), %s", title, round_no, ran.reason)
                offer = (built, ran.reason)
                conversation = next_round(conversation, built.code, ran.reason)
                continue
            ran_what = ran.reason  # "ran 2 example(s)", "ran the module": say which
        record(True, "ok", "", built.edit)
        parsed = "syntax" in checks_run  # no grammar for the language: nothing was checked
        return EditOutcome(
            edit=built.edit,
            verified=parsed,
            reason=_checked_sentence(checks_run, ran_what)
            if parsed
            else "not verified: Wren cannot parse this language to check the change",
            rounds=round_no,
            title=title,
            model_calls=model.calls - calls_before,
            checks=tuple(sorted(checks_run)),
            attempts=attempts,
        )
    rounds = len(attempts)
    if offer is not None:
        candidate, reason = offer
        return EditOutcome(
            edit=candidate.edit,
            verified=False,
            reason=f"not verified: {reason}",
            rounds=rounds,
            title=title,
            model_calls=model.calls - calls_before,
            checks=tuple(sorted(checks_run)),
            attempts=attempts,
        )
    unchanged = [a for a in attempts if a.stage in ("unchanged", "content")]
    if unchanged:
        # Say so plainly: no round produced a change worth offering.
        said = [f"round {a.round} {_without_subject(a.reason)}" for a in unchanged]
        last_reason = "no real change: " + "; ".join(said)
    return EditOutcome(
        edit=None,
        verified=False,
        reason=last_reason,
        rounds=rounds,
        title=title,
        model_calls=model.calls - calls_before,
        checks=tuple(sorted(checks_run)),
        attempts=attempts,
    )


def _without_subject(reason: str) -> str:
    """ "it only deletes x" -> "only deletes x"; "the proposed code is ..." -> "... is ..." """
    if reason.startswith("it "):
        return reason[3:]
    if reason.startswith("the proposed code "):
        return reason[len("the proposed code ") :]
    return reason


def _checked_sentence(checks: set[str], ran_what: str = "") -> str:
    parts = []
    if "syntax" in checks:
        parts.append("it parses")
    if "change" in checks:
        parts.append("it changes the code")
    if "names" in checks:
        parts.append("it adds no undefined names and redefines no existing one")
    if ran_what:
        parts.append(f"it {ran_what} without errors")
    if not parts:
        return "no checks are available for this language"
    return "checked: " + ", ".join(parts)
