"""The words Wren says to the model for Explain, Fix and Generate (and their repair rounds).

Kept short on purpose: small instruct models follow one clear request better than a page of
rules. Code is shown in fenced blocks; explanations see numbered lines so they can point at
"line 12".
"""

from __future__ import annotations

from wren.engine.actions.extract import fence_tag
from wren.engine.actions.llm import Messages

LANGUAGE_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "javascriptreact": "JavaScript (JSX)",
    "typescript": "TypeScript",
    "typescriptreact": "TypeScript (TSX)",
    "go": "Go",
    "rust": "Rust",
    "java": "Java",
    "c": "C",
    "cpp": "C++",
}


def language_name(language_id: str) -> str:
    return LANGUAGE_NAMES.get(language_id, language_id or "code")


def number_lines(code: str, first_line: int) -> str:
    """`code` with 1-based line numbers in front ("12| x = 1"), numbers right-aligned."""
    lines = code.split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]
    width = len(str(first_line + len(lines)))
    return "\n".join(f"{n:>{width}}| {line}" for n, line in enumerate(lines, start=first_line))


def fenced(code: str, language_id: str) -> str:
    return f"```{fence_tag(language_id)}\n{code.rstrip()}\n```"


# -- Explain --------------------------------------------------------------------------------

EXPLAIN_SYSTEM = (
    "You explain code to a programmer. Be concise and concrete. Refer to the code by its "
    'line numbers, for example "line 12" or "lines 3-5".'
)
EXPLAIN_STRUCTURED_SYSTEM = (
    "You explain code to a programmer. Be brief and concrete. Use only names that appear in "
    "the code."
)
EXPLAIN_STRUCTURED_ASK = (
    "Explain this {language} code{where} (lines {first}-{last}) in four short lines: "
    "Summary, Takes, Returns, Notes. Use only names that appear in the code."
)
# One worked example: a small model copies a filled-in form far more reliably than it follows a
# description of one (it echoes "Summary: <one sentence>" back otherwise).
EXPLAIN_EXAMPLE_CODE = """def word_counts(path, lower=True):
    counts = {}
    with open(path) as fh:
        for word in fh.read().split():
            key = word.lower() if lower else word
            counts[key] = counts.get(key, 0) + 1
    return counts"""
EXPLAIN_EXAMPLE_ANSWER = (
    "Summary: Counts how often each word occurs in the file at `path` (line 1).\n"
    "Takes: `path`, the file to read; `lower`, whether to ignore case (default True).\n"
    "Returns: a dict mapping each word to its count (`counts`, line 7).\n"
    "Notes: the whole file is read into memory at once (line 4)."
)
EXPLAIN_PREFILL = "Summary:"  # the answer starts with the form
EXPLAIN_STRUCTURED_STOPS = ("\n\n",)  # the form is four lines; a blank line ends it


def explain_messages(
    numbered_code: str,
    language_id: str,
    filename: str,
    first: int,
    last: int,
    style: str = "prose",
    avoid: tuple[str, ...] = (),
) -> Messages:
    """The request for an explanation. `style` "structured": the four-line form, with a worked
    example (the caller opens the answer with `EXPLAIN_PREFILL`); "prose": free markdown.
    `avoid`: what a checked earlier answer got wrong (a repair round)."""
    where = f" from {filename}" if filename else ""
    warning = ""
    if avoid:
        listed = "\n".join(f"- {a}" for a in avoid[:5])
        warning = f"\n\nAn earlier answer was wrong:\n{listed}\nDo not repeat these mistakes."
    if style == "structured":
        lang = language_name(language_id)
        example_ask = EXPLAIN_STRUCTURED_ASK.format(language="Python", where="", first=1, last=7)
        ask = EXPLAIN_STRUCTURED_ASK.format(language=lang, where=where, first=first, last=last)
        return [
            {"role": "system", "content": EXPLAIN_STRUCTURED_SYSTEM},
            {
                "role": "user",
                "content": example_ask
                + "\n\n"
                + fenced(number_lines(EXPLAIN_EXAMPLE_CODE, 1), "python"),
            },
            {"role": "assistant", "content": EXPLAIN_EXAMPLE_ANSWER},
            {
                "role": "user",
                "content": ask + warning + "\n\n" + fenced(numbered_code, language_id),
            },
        ]
    user = (
        f"Explain what this {language_name(language_id)} code{where} (lines {first}-{last}) "
        "does. Start with a one-sentence summary, then explain the important steps, citing "
        "line numbers. Use only names that appear in the code."
        + warning
        + "\n\n"
        + fenced(numbered_code, language_id)
    )
    return [{"role": "system", "content": EXPLAIN_SYSTEM}, {"role": "user", "content": user}]


# -- Fix ------------------------------------------------------------------------------------

CODE_SYSTEM = "You are an expert {language} programmer. You answer with code only."


def _system(language_id: str) -> dict[str, str]:
    return {"role": "system", "content": CODE_SYSTEM.format(language=language_name(language_id))}


def fix_messages(
    code: str, language_id: str, problems: list[str], description: str = ""
) -> Messages:
    if problems:
        listed = "\n".join(f"- {p}" for p in problems[:5])
        ask = f"Fix this {language_name(language_id)} code. The problem:\n{listed}\n\n"
    else:
        ask = f"Find and fix the bug in this {language_name(language_id)} code.\n\n"
    if description.strip():
        ask += f"What the function should do:\n{description.strip()}\n\n"
    user = (
        ask
        + fenced(code, language_id)
        + "\n\nReply with the whole corrected code in one code block."
    )
    return [_system(language_id), {"role": "user", "content": user}]


# -- Generate -------------------------------------------------------------------------------


def generate_from_function_messages(
    header_code: str, language_id: str, context: str = "", plan: str = ""
) -> Messages:
    """Write the body of a function given its signature and docstring."""
    user = f"Complete the following {language_name(language_id)} function.\n"
    if plan:
        user += f"Follow this plan:\n{plan}\n"
    code = (context.rstrip() + "\n\n" if context.strip() else "") + header_code
    user += fenced(code, language_id)
    return [{"role": "user", "content": user}]


def generate_from_comment_messages(
    request: str, language_id: str, context: str = "", plan: str = ""
) -> Messages:
    """Write code for a request written in a comment."""
    user = f"Write {language_name(language_id)} code that does this: {request.strip()}\n"
    if context.strip():
        user += (
            "\nThe code goes right after this part of the file:\n"
            + fenced(context, language_id)
            + "\n"
        )
    if plan:
        user += f"\nFollow this plan:\n{plan}\n"
    user += "\nReply with only the code, in one code block."
    return [_system(language_id), {"role": "user", "content": user}]


def plan_messages(task: str, language_id: str) -> Messages:
    """The analyst step: a few numbered steps, no code."""
    user = (
        f"In at most 4 short numbered steps, describe how to implement this in "
        f"{language_name(language_id)}. Do not write code.\n\n{task.strip()}"
    )
    return [{"role": "user", "content": user}]


# -- Repair ---------------------------------------------------------------------------------


def repair_messages(
    previous: Messages, attempt_code: str | None, problem: str, language_id: str
) -> Messages:
    """The conversation so far, the failed attempt, and what went wrong with it."""
    messages = list(previous)
    if attempt_code is not None:
        messages.append({"role": "assistant", "content": fenced(attempt_code, language_id)})
        user = (
            f"That code is wrong: {problem.rstrip('.')}.\nWrite the corrected code, "
            "the whole of it, in one code block."
        )
    else:
        user = f"{problem.rstrip('.')}. Reply with the code in one code block."
    messages.append({"role": "user", "content": user})
    return messages


def restate_messages(original: Messages, failures: list[str]) -> Messages:
    """The original request again, with what was wrong with the earlier attempts.

    Without the failed code in view, a greedy small model does not copy its last answer.
    """
    messages = [dict(m) for m in original]
    listed = "\n".join(f"- {f.strip().rstrip('.')}" for f in failures[-3:])
    messages[-1]["content"] = (
        messages[-1]["content"].rstrip()
        + f"\n\nEarlier attempts were wrong:\n{listed}\n"
        + "Write a correct implementation, different from those attempts."
    )
    return messages
