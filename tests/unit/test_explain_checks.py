"""The checks Explain runs on the model's text (explain_checks.py): pure, no model."""

from __future__ import annotations

from wren.engine.actions.explain_checks import (
    UNRELIABLE_TEXT,
    CodeFacts,
    Known,
    check_explanation,
    complete_ending,
    missing_names,
    named_identifiers,
    near_duplicate,
    parse_fields,
    returns_problem,
    signature_of,
    takes_problem,
    unreliable_body,
)

CIRCLE_FILE = "import math\n\n\ndef circle_area(r):\n    return math.pi * r * r\n"
CIRCLE = "def circle_area(r):\n    return math.pi * r * r\n"
SAFECALL_FILE = '''from functools import update_wrapper


def _safecall(func):
    """Wraps a function so that it swallows exceptions."""

    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception:
            pass
        return None

    return update_wrapper(wrapper, func)
'''
SAFECALL = SAFECALL_FILE[SAFECALL_FILE.index("def _safecall") :]
GEN = (
    "def pairs(items, step=2):\n    for i in range(0, len(items), step):\n        yield items[i]\n"
)
LOG = "def log(msg):\n    print(msg)\n"


def circle() -> CodeFacts:
    return CodeFacts(CIRCLE, CIRCLE_FILE, "python", 4, "a.py")


def safecall() -> CodeFacts:
    return CodeFacts(SAFECALL, SAFECALL_FILE, "python", 4, "utils.py")


# -- grounding ----------------------------------------------------------------------------------


def test_names_in_backticks_and_code_shaped_tokens_are_found() -> None:
    sentence = (
        "It calls `math.pi * r^2` and os.path.join(a), reads some_value, makes Parser( ) and "
        "_The model_ says e.g. nothing."
    )
    names = named_identifiers(sentence)
    assert {"math.pi", "r", "os.path.join", "some_value"} <= set(names)
    assert "e.g" not in names and "_The" not in names and "model_" not in names


def test_a_name_the_file_does_not_have_is_missing() -> None:
    known = Known.of(SAFECALL, SAFECALL_FILE, "python", "utils.py")
    assert missing_names("It reads the `__cxa__` attribute of the `__cxa__` class.", known) == [
        "__cxa__"
    ]
    assert missing_names("It returns `update_wrapper(wrapper, func)`.", known) == []
    assert missing_names("`len`, `None` and `Exception` are builtins.", known) == []
    assert missing_names("See utils.py and `functools.update_wrapper`.", known) == []
    assert missing_names("It calls single_quote_unquote() first.", known) == [
        "single_quote_unquote"
    ]


def test_sentences_naming_missing_things_are_dropped_with_a_reason() -> None:
    raw = (
        "Wraps `func` so that exceptions are swallowed. The `__cxa__` attribute of the "
        "`__cxa__` class is set on line 3."
    )
    out = check_explanation(raw, safecall(), "prose")
    assert "__cxa__" not in out.body
    assert out.body == "Wraps `func` so that exceptions are swallowed."
    assert [r.reason for r in out.removed] == ["`__cxa__` does not appear in the code"]


# -- claims ---------------------------------------------------------------------------------------


def test_signature_from_python_code() -> None:
    sig = signature_of(SAFECALL, "python", 4)
    assert sig is not None and sig.name == "_safecall" and sig.kind == "function"
    assert [p.name for p in sig.params] == ["func"]
    assert sig.returns_value and not sig.is_generator  # the nested wrapper's returns don't count
    assert sig.return_exprs == ("update_wrapper(wrapper, func)",)
    gen = signature_of(GEN, "python")
    assert (
        gen is not None and gen.is_generator and [p.name for p in gen.params] == ["items", "step"]
    )
    method = signature_of("    def size(self, extra=0):\n        return 1 + extra\n", "python")
    assert method is not None and method.kind == "method" and method.param_names == {"extra"}
    assert signature_of("a = 1\nb = 2\n", "python") is None


def test_signature_from_other_languages_via_tree_sitter() -> None:
    js = signature_of("function add(a, b = 2) {\n  return a + b;\n}\n", "javascript")
    assert js is not None and js.name == "add" and js.param_names == {"a", "b"}
    assert js.returns_value
    go = signature_of("func log(msg string, n int) {\n\tfmt.Println(msg)\n}\n", "go")
    assert go is not None and go.param_names == {"msg", "n"} and not go.returns_value


def test_takes_must_list_the_real_parameters() -> None:
    sig = signature_of(CIRCLE, "python")
    assert sig is not None
    assert takes_problem("`r`, the radius.", sig) == ""
    assert "`math.pi` is not a parameter" in takes_problem("`math.pi`, the value of pi.", sig)
    assert takes_problem("nothing.", sig) != ""
    assert takes_problem("a number.", sig).startswith("it names none")
    two = signature_of("def indent(text, prefix):\n    return prefix + text\n", "python")
    assert two is not None and takes_problem("`text`, the text.", two) == "it leaves out `prefix`"


def test_returns_must_match_the_code() -> None:
    value, gen, nothing = (signature_of(c, "python") for c in (CIRCLE, GEN, LOG))
    assert value is not None and gen is not None and nothing is not None
    assert returns_problem("the area of the circle.", value) == ""
    assert returns_problem("nothing.", value) == "`circle_area` returns a value"
    assert returns_problem("a list of items.", gen) != ""
    assert returns_problem("a generator of every second item.", gen) == ""
    assert returns_problem("the printed message.", nothing) == "`log` returns nothing"
    assert returns_problem("nothing (`None`).", nothing) == ""


def test_structured_takes_and_returns_come_from_the_signature_when_wrong() -> None:
    raw = (
        "Summary: Calculates the area of a circle from its radius.\n"
        "Takes: `math.pi`, the value of pi.\n"
        "Returns: nothing.\n"
        "Notes: it uses `math.pi`."
    )
    out = check_explanation(raw, circle(), "structured")
    assert out.fields["Takes"] == "`r`."
    assert out.fields["Returns"] == "the value of `math.pi * r * r`."
    assert out.filled == ["Takes", "Returns"]
    assert {r.reason for r in out.removed} == {
        "`math.pi` is not a parameter of `circle_area`",
        "`circle_area` returns a value",
    }
    assert out.body.startswith("Calculates the area of a circle from its radius.\n\n- **Takes:**")
    for name in ("Takes", "Returns", "Notes"):
        assert f"- **{name}:**" in out.body


def test_missing_fields_are_filled_and_partial_takes_completed() -> None:
    facts = CodeFacts(GEN, GEN, "python")
    out = check_explanation("Summary: Yields every second item.\nTakes: `items`.", facts)
    assert out.fields["Takes"] == "`items`; also `step`, default `2`."
    assert out.fields["Returns"].startswith("a generator")
    assert out.reliable


def test_prose_claims_wrong_constructs_and_parameters_are_dropped() -> None:
    raw = (
        "Computes the area of a circle. It uses a lambda function as the return type. "
        "The function's parameters are `math.pi` and `r`. It is defined as "
        "`def circle_area(r, math)`. It calls itself recursively. Its docstring says so."
    )
    out = check_explanation(raw, circle(), "prose")
    assert out.body == "Computes the area of a circle."
    reasons = [r.reason for r in out.removed]
    assert reasons == [
        "the code has no `lambda`",
        "`math.pi` is not a parameter of `circle_area`",
        "the parameters of `circle_area` are `r`",
        "`circle_area` does not call itself",
        "the code has no docstring",
    ]
    documented = check_explanation("Its docstring says so.", safecall(), "prose")
    assert documented.body == "Its docstring says so."


def test_parse_fields_handles_continuations_and_a_second_form() -> None:
    raw = (
        "Summary: Adds a prefix.\nTakes:\n- `text`\n- `prefix`\nReturns: a string.\n"
        "Notes: fast.\nSummary: Adds a prefix again."
    )
    fields = parse_fields(raw)
    assert fields == {
        "Summary": "Adds a prefix.",
        "Takes": "- `text`\n- `prefix`",
        "Returns": "a string.",
        "Notes": "fast.",
    }


# -- repetition and endings ------------------------------------------------------------------------


def test_near_duplicates_not_only_exact_repeats() -> None:
    a = "The function returns a new function that can be used to handle exceptions."
    assert near_duplicate(
        a, "The function returns a new function which can be used to handle exceptions."
    )
    assert near_duplicate(a, a.upper())
    assert not near_duplicate(a, "It reads the file at `path` and counts its words.")
    assert not near_duplicate("It adds.", "It is simple.")


def test_repeated_paragraphs_and_sentences_never_survive() -> None:
    para = (
        "The function is a wrapper that swallows exceptions raised by `func`. "
        "It returns what `update_wrapper` returns."
    )
    raw = "\n\n".join([para, para.replace("raised by", "thrown by"), para])
    out = check_explanation(raw, safecall(), "prose")
    assert out.body == para
    assert [r.reason for r in out.removed] == ["repeats an earlier sentence"] * 4
    assert out.reliable  # repeats are noise, not wrong claims


def test_looping_clauses_inside_one_sentence_are_cut() -> None:
    raw = (
        "Summary: Filters names.\nTakes: `func`.\nNotes: it takes a list of names and a "
        "pattern, a list of names and a pattern, a list of names and a pattern, and a cache."
    )
    out = check_explanation(raw, safecall(), "structured")
    assert out.fields["Notes"] == "it takes a list of names and a pattern, and a cache."


def test_text_cut_by_the_token_limit_ends_on_a_whole_sentence() -> None:
    assert complete_ending("It adds. It subtracts and then the res") == "It adds."
    assert (
        complete_ending("It adds.\n- `a` the first\n- `b` the sec") == "It adds.\n- `a` the first"
    )
    assert complete_ending("Done.") == "Done."
    assert complete_ending("It adds. It shows:\n```python\nx = 1\n") == "It adds."
    raw = "Wraps `func` so it swallows errors. It then returns the wrapp"
    out = check_explanation(raw, safecall(), "prose", cut=True)
    assert out.body == "Wraps `func` so it swallows errors."
    assert out.removed[0].reason == "cut off by the token limit"


# -- too little left ---------------------------------------------------------------------------


def test_when_too_little_survives_say_so_plainly() -> None:
    raw = (
        "Summary: Reads the `__cxa__` attribute of the `__cxa__` class.\n"
        "Takes: `__cxa__`, the class.\nReturns: the `__cxa__` value.\n"
        "Notes: `__cxa__` is cached by `__cxa_cache__`."
    )
    out = check_explanation(raw, safecall(), "structured")
    assert not out.reliable
    shown = unreliable_body(out)
    assert UNRELIABLE_TEXT in shown and "__cxa__" not in shown
    assert "- **Takes:** `func`" in shown  # facts from the code are still shown


# -- the pipeline, with a scripted backend (deterministic) -------------------------------------

from tests.unit.test_actions_pipeline import ScriptedBackend  # noqa: E402
from wren.engine.actions.explain import ExplainRequest, explain  # noqa: E402
from wren.engine.actions.llm import ActionModel  # noqa: E402
from wren.types import CancelToken  # noqa: E402

CXA = (
    " Reads the `__cxa__` attribute of the `__cxa__` class.\nTakes: `__cxa__`, the class.\n"
    "Notes: `__cxa__` is cached."
)
GOOD = (
    " Wraps `func` so that it swallows exceptions.\nTakes: `func`, the function to wrap.\n"
    "Returns: the wrapper, made by `update_wrapper`.\nNotes: an exception becomes `None`."
)
AT_SAFECALL = SAFECALL_FILE.index("def _safecall") + 4


def scripted(*answers: str) -> tuple[ActionModel, ScriptedBackend]:
    backend = ScriptedBackend(answers)
    return ActionModel(backend=backend, chat=False), backend


def test_a_missing_name_goes_back_to_the_model_as_a_repair_reason() -> None:
    model, backend = scripted(CXA, GOOD)
    request = ExplainRequest(SAFECALL_FILE, "python", AT_SAFECALL, AT_SAFECALL, "utils.py")
    drafts: list[str] = []
    out = explain(model, request, CancelToken(), drafts.append)
    assert out.ok and out.reliable and out.rounds == 2 and out.model_calls == 2
    assert "`__cxa__` does not appear in the code" in backend.prompts[1]
    assert "__cxa__" not in out.markdown
    assert out.markdown.startswith("**Lines 4–14 of utils.py**\n\nWraps `func`")
    assert "- **Takes:** `func`, the function to wrap." in out.markdown
    assert any("__cxa__" in r["text"] for r in out.removed)
    assert drafts and drafts[0].startswith("**Lines 4–14 of utils.py**\n\nSummary:")  # unchecked
    assert out.raw.startswith("Summary: Reads the `__cxa__`")


def test_without_a_repair_round_the_reader_is_told_plainly() -> None:
    model, _ = scripted(CXA)
    request = ExplainRequest(SAFECALL_FILE, "python", AT_SAFECALL, AT_SAFECALL, "utils.py")
    out = explain(model, request, CancelToken(), repair_rounds=0)
    assert out.ok and not out.reliable and out.model_calls == 1
    assert UNRELIABLE_TEXT in out.markdown and "__cxa__" not in out.markdown
    assert "- **Returns:** the value of `update_wrapper(wrapper, func)`." in out.markdown


def test_a_repeated_paragraph_never_reaches_the_reader() -> None:
    para = "It wraps `func` so that exceptions are swallowed. The wrapper returns `None` then."
    again = para.replace("so that", "so")
    model, _ = scripted("\n\n".join([para, again, para]) + "\n\nIt keeps the na")
    request = ExplainRequest(SAFECALL_FILE, "python", AT_SAFECALL, AT_SAFECALL, "utils.py")
    out = explain(model, request, CancelToken(), style="prose")
    assert out.markdown == "**Lines 4–14 of utils.py**\n\n" + para


def test_copying_the_worked_example_and_dangling_intros_are_dropped() -> None:
    from wren.engine.actions.prompts import EXPLAIN_EXAMPLE_ANSWER

    facts = CodeFacts(CIRCLE, CIRCLE_FILE, "python", 4, "a.py", EXPLAIN_EXAMPLE_ANSWER)
    raw = (
        "Summary: Computes the area of a circle.\nTakes: `r`.\nReturns: the area.\n"
        "Notes: The whole file is read into memory at once (line 4). The formula is below:"
    )
    out = check_explanation(raw, facts, "structured")
    assert not out.fields.get("Notes") and "Notes" not in out.body
    assert [r.reason for r in out.removed] == [
        "copies the example in the prompt",
        "introduces text that is not there",
    ]
    method = signature_of("    def close(self):\n        self.closed = True\n", "python")
    assert method is not None and takes_problem("nothing besides `self`.", method) == ""


def test_the_pipeline_drops_a_copy_of_the_worked_example() -> None:
    """explain() hands the prompt's example to the check (the structured style's prompt has one)."""
    copied = (
        " Wraps `func` so that it swallows exceptions.\nTakes: `func`, the function to wrap.\n"
        "Returns: the wrapper, made by `update_wrapper`.\n"
        "Notes: the whole file is read into memory at once (line 4)."
    )
    model, _ = scripted(copied)
    request = ExplainRequest(SAFECALL_FILE, "python", AT_SAFECALL, AT_SAFECALL, "utils.py")
    out = explain(model, request, CancelToken())
    assert out.ok and out.reliable, out
    assert "read into memory" not in out.markdown, out.markdown
    assert {"text": "the whole file is read into memory at once (line 4).",
            "reason": "copies the example in the prompt"} in out.removed  # fmt: skip
