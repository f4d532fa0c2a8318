"""Fix, Generate and Explain pipelines driven by a scripted backend (pure logic, no model)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from wren.types import CancelToken, GenerationParams, GenerationResult


class ScriptedBackend:
    """Answers each `generate` call with the next scripted text, streamed in small pieces.

    Records every prompt. A scripted answer ends at the first of `params.stop` it contains.
    """

    name = "scripted"
    device = "cpu"

    def __init__(
        self,
        answers: Sequence[str],
        scores: Sequence[tuple[float, float]] = (),
    ) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []
        self.scores = list(scores)
        self.on_generate: Callable[[CancelToken], None] | None = None

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text[::4]]  # about one token per 4 characters

    def detokenize(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    def special_tokens(self) -> list[str]:
        return ["<|im_end|>"]

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages) + "<|assistant|>"

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        self.prompts.append(prompt)
        if self.on_generate is not None:
            self.on_generate(cancel)
        answer = self.answers.pop(0) if self.answers else ""
        stop_reason = "eos"
        for stop in params.stop:
            if stop in answer:
                answer = answer[: answer.index(stop) + len(stop)]
                stop_reason = "stop"
        text = ""
        for i in range(0, len(answer), 8):
            cancel.raise_if_cancelled()
            text = answer[: i + 8]
            if on_text is not None:
                on_text(text)
        tokens = len(self.tokenize(answer))
        if tokens > params.max_new_tokens:
            stop_reason = "max_tokens"
        return GenerationResult(
            text=answer,
            tokens=tokens,
            prompt_tokens=len(self.tokenize(prompt)),
            cached_tokens=0,
            prefill_s=0.0,
            decode_s=0.0,
            stop_reason=stop_reason,
        )

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        if self.scores:
            return list(self.scores.pop(0))
        return [0.0 for _ in continuations]


# -- tests ----------------------------------------------------------------------------------

import pytest  # noqa: E402

from wren.engine.actions.explain import ExplainRequest, explain  # noqa: E402
from wren.engine.actions.fix import FixRequest, fix, split_docstring  # noqa: E402
from wren.engine.actions.generate import GenerateRequest, generate  # noqa: E402
from wren.engine.actions.llm import ActionModel  # noqa: E402
from wren.engine.actions.loop import VerifyOptions  # noqa: E402
from wren.errors import GenerationCancelled  # noqa: E402

STATIC = VerifyOptions(max_retries=2)


def model_for(*answers: str, **kw: object) -> tuple[ActionModel, ScriptedBackend]:
    backend = ScriptedBackend(answers, **kw)  # type: ignore[arg-type]
    return ActionModel.for_backend(backend), backend


def compiles(text: str) -> bool:
    try:
        compile(text, "t.py", "exec")
    except SyntaxError:
        return False
    return True


# -- Fix ------------------------------------------------------------------------------------

BROKEN = "def add(a, b)\n    return a + b\n\n\nprint(add(1, 2))\n"


def test_fix_syntax_error_returns_a_verified_edit() -> None:
    model, backend = model_for("def add(a, b):\n    return a + b\n```")
    out = fix(model, FixRequest(BROKEN, "python", 0, 0), STATIC, CancelToken())
    assert out.verified and out.rounds == 1 and out.model_calls == 1
    assert out.edit is not None
    new = out.edit.apply(BROKEN)
    assert compiles(new)
    assert new.endswith("\n\n\nprint(add(1, 2))\n")  # the rest of the file is untouched
    assert "syntax error on line 1" in backend.prompts[0]  # Wren's own diagnosis is passed on
    assert backend.prompts[0].endswith("```python\n")  # the answer starts inside a fence


def test_fix_keeps_crlf() -> None:
    text = BROKEN.replace("\n", "\r\n")
    model, _ = model_for("def add(a, b):\n    return a + b\n```")
    out = fix(model, FixRequest(text, "python", 0, 0), STATIC, CancelToken())
    assert out.edit is not None
    assert "\n" not in out.edit.new_text.replace("\r\n", "")
    new = out.edit.apply(text)
    assert new.count("\n") == new.count("\r\n")
    assert compiles(new.replace("\r\n", "\n"))


def test_fix_keeps_the_files_indentation() -> None:
    text = "class A:\n\tdef m(self)\n\t\treturn 1\n\n\tdef n(self):\n\t\treturn 2\n"
    model, _ = model_for("def m(self):\n    if True:\n        return 1\n```")
    out = fix(model, FixRequest(text, "python", 12, 12), STATIC, CancelToken())
    assert out.edit is not None and out.verified, out.reason
    new = out.edit.apply(text)
    assert "\tdef m(self):\n\t\tif True:\n\t\t\treturn 1\n" in new
    assert new.endswith("\tdef n(self):\n\t\treturn 2\n")


def test_answer_without_code_is_repaired_then_given_up() -> None:
    model, backend = model_for("```", "```", "```")
    out = fix(model, FixRequest(BROKEN, "python", 0, 0), STATIC, CancelToken())
    assert out.edit is None and not out.verified
    assert "no code" in out.reason
    assert out.rounds == 3 and out.model_calls == 3 == len(backend.prompts)
    assert "no code" in backend.prompts[1]  # the failure was fed back


def test_repair_round_gets_the_error_and_fixes_it() -> None:
    model, backend = model_for(
        "def add(a, b):\n    return a +\n```",  # still broken
        "def add(a, b):\n    return a + b\n```",
    )
    out = fix(model, FixRequest(BROKEN, "python", 0, 0), STATIC, CancelToken())
    assert out.verified and out.rounds == 2
    assert "does not parse" in backend.prompts[1]
    assert [a.stage for a in out.attempts] == ["syntax", "ok"]


def test_repeated_answer_stops_the_loop_early() -> None:
    broken = "def add(a, b):\n    return a +\n```"
    model, backend = model_for(broken, broken, broken)
    out = fix(model, FixRequest(BROKEN, "python", 0, 0), STATIC, CancelToken())
    assert out.edit is None and len(backend.prompts) == 2
    assert out.attempts[-1].stage == "repeat"


def test_unparseable_fix_is_never_offered_but_undefined_names_are_offered_unverified() -> None:
    model, _ = model_for("def add(a, b):\n    return helper(a, b)\n```")
    out = fix(
        model, FixRequest(BROKEN, "python", 0, 0), VerifyOptions(max_retries=0), CancelToken()
    )
    assert out.edit is not None and not out.verified
    assert out.reason.startswith("not verified") and "`helper`" in out.reason


def test_max_retries_zero_is_single_shot() -> None:
    model, backend = model_for("def add(a, b)\n    return a\n```", "never used")
    out = fix(
        model, FixRequest(BROKEN, "python", 0, 0), VerifyOptions(max_retries=0), CancelToken()
    )
    assert out.edit is None and out.rounds == 1 and len(backend.prompts) == 1


def test_fix_with_run_code_feeds_failing_examples_back() -> None:
    text = (
        'def double(x):\n    """Twice x.\n\n    >>> double(3)\n    6\n    """\n    return x + 2\n'
    )
    model, backend = model_for(
        "def double(x):\n    return x + 2 + 0\n```",
        "def double(x):\n    return x * 2\n```",
    )
    options = VerifyOptions(run_code=True, max_retries=2, timeout_s=10)
    out = fix(model, FixRequest(text, "python", 0, len(text)), options, CancelToken())
    assert out.verified, out.reason
    assert "double(3) returned 5, expected 6" in backend.prompts[1]
    new = out.edit.apply(text) if out.edit else ""
    assert ">>> double(3)" in new and "return x * 2" in new  # docstring kept, body replaced
    assert "run" in out.checks


def test_docstring_is_described_not_copied() -> None:
    code = 'def f(a):\n    """Return a plus one."""\n    return a\n'
    doc = split_docstring(code)
    assert doc is not None and doc.docstring == "Return a plus one."
    assert '"""' not in doc.without_docstring
    assert doc.splice("def f(a):\n    return a + 1\n") == (
        'def f(a):\n    """Return a plus one."""\n    return a + 1'
    )
    assert doc.splice("return a + 1\n") is not None  # a bare body is accepted
    assert doc.splice("def g(a):\n    return a\n") is None
    assert split_docstring("def f():\n    return 1\n") is None  # no docstring


@pytest.mark.parametrize(
    ("text", "start", "end", "expected"),
    [
        ("", 0, 0, "empty"),
        ("x = 1\n\n   \n\ny = 2\n", 6, 11, "whitespace"),
        ("x = [" + "1, " * 3000 + "]\n", 0, 10, "5000 characters"),
        ("\x00\x01binary" * 20, 0, 3, "binary"),
    ],
    ids=["empty", "whitespace", "minified", "binary"],
)
def test_fix_bad_input(text: str, start: int, end: int, expected: str) -> None:
    model, backend = model_for("x")
    out = fix(model, FixRequest(text, "python", start, end), STATIC, CancelToken())
    assert out.edit is None and expected in out.reason
    assert backend.prompts == []  # the model was not even asked


def test_cancel_raises_and_proposes_nothing() -> None:
    model, backend = model_for("def add(a, b):\n    return a + b\n```")
    cancel = CancelToken()
    backend.on_generate = lambda c: c.cancel("cancelled by the editor")
    with pytest.raises(GenerationCancelled):
        fix(model, FixRequest(BROKEN, "python", 0, 0), STATIC, cancel)


# -- Generate -------------------------------------------------------------------------------


def test_generate_below_a_comment() -> None:
    text = "import math\n\n# area of a circle\n\nx = 1\n"
    model, backend = model_for(
        "# area of a circle\ndef area(r):\n    return math.pi * r * r\n\nprint(area(1))\n```"
    )
    out = generate(
        model, GenerateRequest(text, "python", text.index("# area") + 3), STATIC, CancelToken()
    )
    assert out.verified, out.reason
    assert out.edit is not None and out.edit.start == out.edit.end == text.index("\nx") - 1 + 1
    new = out.edit.apply(text)
    assert new == (
        "import math\n\n# area of a circle\ndef area(r):\n    return math.pi * r * r\n\nx = 1\n"
    )
    assert "area of a circle" in backend.prompts[0]


def test_generate_in_an_indented_block_with_crlf() -> None:
    text = "def f(items):\r\n    # sum the items\r\n"
    model, _ = model_for("total = 0\nfor i in items:\n    total += i\nreturn total\n```")
    out = generate(model, GenerateRequest(text, "python", len(text)), STATIC, CancelToken())
    assert out.edit is not None, out.reason
    assert out.edit.new_text == (
        "    total = 0\r\n    for i in items:\r\n        total += i\r\n    return total\r\n"
    )
    assert compiles(out.edit.apply(text).replace("\r\n", "\n"))


def test_generate_body_from_docstring_replaces_the_stub() -> None:
    text = 'import math\n\n\ndef hyp(a, b):\n    """Hypotenuse."""\n    pass\n'
    model, backend = model_for(
        'def hyp(a, b):\n    """Hypotenuse."""\n    return math.sqrt(a * a + b * b)\n```'
    )
    out = generate(model, GenerateRequest(text, "python", text.index("Hyp")), STATIC, CancelToken())
    assert out.verified, out.reason
    new = out.edit.apply(text) if out.edit else ""
    assert new.endswith('"""Hypotenuse."""\n    return math.sqrt(a * a + b * b)\n')
    assert "pass" not in new
    assert "def hyp(a, b):" in backend.prompts[0]


def test_generate_brings_the_answers_imports_into_the_body() -> None:
    text = 'def now():\n    """The current UNIX time."""\n'
    model, _ = model_for("import time\n\ndef now():\n    return time.time()\n```")
    out = generate(model, GenerateRequest(text, "python", len(text)), STATIC, CancelToken())
    assert out.verified, out.reason
    assert out.edit is not None
    assert out.edit.new_text == "    import time\n    return time.time()\n"


def test_generate_stub_answer_is_rejected() -> None:
    text = 'def f():\n    """Do it."""\n'
    model, _ = model_for("def f():\n    pass\n```", "def f():\n    ...\n```", "x```")
    out = generate(model, GenerateRequest(text, "python", len(text)), STATIC, CancelToken())
    assert out.edit is None or not out.verified


def test_generate_with_plan_asks_twice() -> None:
    text = "# reverse a string\n"
    model, backend = model_for("1. Slice with step -1.", "def rev(s):\n    return s[::-1]\n```")
    out = generate(
        model, GenerateRequest(text, "python", len(text), plan=True), STATIC, CancelToken()
    )
    assert out.verified and out.plan == "1. Slice with step -1."
    assert out.model_calls == 2
    assert "Slice with step -1" in backend.prompts[1]


def test_generate_without_a_spec_explains_itself() -> None:
    model, backend = model_for("x")
    out = generate(model, GenerateRequest("x = 1\n", "python", 0), STATIC, CancelToken())
    assert out.edit is None and "comment" in out.reason and backend.prompts == []


def test_generate_for_a_base_model_uses_a_completion_prompt() -> None:
    text = 'def square(x):\n    """x squared."""\n'
    backend = ScriptedBackend(["    return x * x\n\n\ndef other():\n    pass\n"])
    model = ActionModel(backend=backend, chat=False)
    out = generate(model, GenerateRequest(text, "python", len(text)), STATIC, CancelToken())
    assert out.verified, out.reason
    assert backend.prompts[0] == text  # code-shaped, no chat template
    assert out.edit is not None and out.edit.new_text == "    return x * x\n"


# -- Explain --------------------------------------------------------------------------------

FUNC = "import os\n\n\ndef size(path):\n    st = os.stat(path)\n    return st.st_size\n"


def test_explain_streams_and_names_the_lines() -> None:
    model, backend = model_for("Line 5 reads the file's metadata and line 6 returns its size.")
    seen: list[str] = []
    out = explain(model, ExplainRequest(FUNC, "python", 60, 60, "a.py"), CancelToken(), seen.append)
    assert out.ok
    assert out.markdown.startswith("**Lines 4–6 of a.py**\n\n")
    assert "line 6" in out.markdown
    assert (out.first_line, out.last_line) == (4, 6)
    assert "5|     st = os.stat(path)" in backend.prompts[0]  # numbered code in the prompt
    assert seen and all(s.startswith("**Lines 4–6") for s in seen)


def test_explain_keeps_its_code_blocks_in_one_generation() -> None:
    # A fence is a stop for inline completion only (card `stop_inline`); the scripted backend
    # cuts an answer at any stop string it is given, so none may reach it here.
    answer = "It returns the size:\n```python\nreturn st.st_size\n```\nThat is all."
    model, _ = model_for(answer)
    request = ExplainRequest(FUNC, "python", 60, 60, "a.py")
    out = explain(model, request, CancelToken(), style="prose")
    assert "```python\nreturn st.st_size\n```" in out.markdown
    assert out.markdown.endswith("That is all.")
    assert out.model_calls == 1


def test_explain_cuts_long_code_with_a_note() -> None:
    text = "".join(f"value_{i} = compute({i})\n" for i in range(2000))
    model, _ = model_for("Many assignments.")
    out = explain(
        model,
        ExplainRequest(text, "python", 0, len(text), "big.py"),
        CancelToken(),
        budget_tokens=300,
    )
    assert out.ok and out.truncated
    assert "only lines 1–" in out.markdown and "of 1–2000" in out.markdown
    assert out.last_line < 2000


def test_explain_selection_and_bad_input() -> None:
    model, backend = model_for("Assigns.")
    out = explain(model, ExplainRequest("a = 1\nb = 2\n", "python", 6, 11, ""), CancelToken())
    assert out.ok and out.markdown.startswith("**Line 2**")
    for text, a, b, word in (
        ("", 0, 0, "empty"),
        ("a = 1\n\n\n", 6, 8, "whitespace"),
        ("x" * 6000, 0, 10, "5000"),
    ):
        bad = explain(model, ExplainRequest(text, "python", a, b), CancelToken())
        assert not bad.ok and word in bad.reason
    assert len(backend.prompts) == 1


def test_generate_does_not_repeat_imports_the_file_has() -> None:
    text = "import math\n\n# area of a circle\n"
    model, _ = model_for("import math\n\ndef area(r):\n    return math.pi * r * r\n```")
    out = generate(model, GenerateRequest(text, "python", len(text)), STATIC, CancelToken())
    assert out.edit is not None
    assert out.edit.new_text == "def area(r):\n    return math.pi * r * r\n"


def test_explain_drops_repeated_paragraphs() -> None:
    model, _ = model_for("It adds.\n\nIt is simple.\n\nIt adds.\n\nIt is  simple.")
    out = explain(model, ExplainRequest(FUNC, "python", 60, 60), CancelToken(), style="prose")
    assert out.markdown.endswith("It adds.\n\nIt is simple.")


def test_restate_repair_asks_again_without_the_failed_code() -> None:
    model, backend = model_for(
        "def add(a, b):\n    return a +\n```",
        "def add(a, b):\n    return a + b\n```",
    )
    options = VerifyOptions(max_retries=2, repair_style="restate")
    out = fix(model, FixRequest(BROKEN, "python", 0, 0), options, CancelToken())
    assert out.verified and out.rounds == 2
    second = backend.prompts[1]
    assert "Earlier attempts were wrong:\n- the result does not parse" in second
    assert "return a +\n" not in second  # the failed attempt is not shown again
    assert second.count("<|user|>") == 1  # one fresh request, not a longer conversation


TYPO = (
    "class Inventory:\n"
    "    def total(self) -> float:\n"
    '        """The value of everything."""\n'
    "        return sum(itme.price for item in self.items)\n"
)


def test_fix_names_an_undefined_name_itself_and_requires_it_gone() -> None:
    # First answer rewrites the line but keeps the typo; the second fixes it, without the
    # return annotation (which a small model often drops): that is spliced under the original.
    model, backend = model_for(
        "def total(self):\n    return sum(itme.price for item in self.items)\n```",
        "def total(self):\n    return sum(item.price for item in self.items)\n```",
    )
    out = fix(model, FixRequest(TYPO, "python", 60, 60), STATIC, CancelToken())
    assert '"itme" is not defined' in backend.prompts[0]  # no editor diagnostic was given
    assert out.verified and out.rounds == 2, out.reason
    assert '"itme" is still not defined' in backend.prompts[1]
    assert out.edit is not None
    new = out.edit.apply(TYPO)
    assert "return sum(item.price for item in self.items)" in new
    assert 'def total(self) -> float:\n        """The value of everything."""' in new


def test_fix_does_not_call_a_name_the_file_defines_undefined() -> None:
    text = "LIMIT = 3\n\n\ndef f(x):\n    return min(x, LIMIT) +\n"
    model, backend = model_for("def f(x):\n    return min(x, LIMIT)\n```")
    out = fix(model, FixRequest(text, "python", 30, 30), STATIC, CancelToken())
    assert out.verified, out.reason
    assert "not defined" not in backend.prompts[0]
