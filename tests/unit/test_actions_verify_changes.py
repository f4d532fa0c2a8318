"""A label is a promise: no-op / cosmetic-only fixes and redefinitions are never "verified"."""

from __future__ import annotations

import pytest

from wren.engine.actions.change_checks import (
    bindings,
    code_tokens,
    redefinition_reason,
    unchanged_reason,
)
from wren.engine.actions.fix import FixRequest, fix, near_name
from wren.engine.actions.generate import GenerateRequest, generate
from wren.engine.actions.loop import VerifyOptions
from wren.engine.actions.verify import check_change
from wren.types import CancelToken

from .test_actions_pipeline import model_for

CHEAPEST = '''def cheapest(self) -> Item:
    """The item with the lowest price."""
    return max(self.items.values(), key=lambda item: item.price)
'''

# -- no-op and cosmetic-only changes --------------------------------------------------------


def test_deleting_docstring_and_return_annotation_is_not_a_change() -> None:
    new = "def cheapest(self):\n    return max(self.items.values(), key=lambda item: item.price)\n"
    reason = unchanged_reason("python", CHEAPEST, new)
    assert reason is not None
    assert "only deletes the docstring and the return annotation of `cheapest`" in reason


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (CHEAPEST, CHEAPEST.replace("    return", "    # the cheapest one\n    return")),
        (CHEAPEST, CHEAPEST.replace("key=lambda item", "key = lambda  item")),
        (CHEAPEST, CHEAPEST.replace(")\n", ")  # done\n", 1)),
        ('x = "a"\n', "x = 'a'\n"),
    ],
    ids=["comment-added", "spacing", "trailing-comment", "quotes"],
)
def test_whitespace_and_comments_are_not_a_change(old: str, new: str) -> None:
    reason = unchanged_reason("python", old, new)
    assert reason is not None and "same code" in reason


def test_deleting_only_comments_is_said_so() -> None:
    reason = unchanged_reason("python", "x = 1  # one\ny = 2\n", "x = 1\ny = 2\n")
    assert reason == "it only deletes comments and changes no code"


def test_deleting_decorators_and_annotations_is_listed() -> None:
    old = "@cache\ndef f(a: int, *rest: str) -> int:\n    return a\n"
    reason = unchanged_reason("python", old, "def f(a, *rest):\n    return a\n")
    assert reason is not None
    for part in ("the return annotation of `f`", "the annotation of `a`", "`@cache`"):
        assert part in reason
    assert "the annotation of `rest`" in reason


@pytest.mark.parametrize(
    "new",
    [
        CHEAPEST.replace("max(", "min("),  # the real fix
        "def cheapest(self):\n    return min(self.items.values(), key=lambda item: item.price)\n",
        CHEAPEST.replace("-> Item", "-> Item | None"),  # an annotation rewritten, not deleted
        CHEAPEST.replace('"""The item', '"""Return the item'),  # a docstring rewritten
        "@cache\n" + CHEAPEST,  # a decorator added
        CHEAPEST.replace("item.price", "-item.price"),
    ],
    ids=["min", "min-and-shrink", "annotation", "docstring", "decorator", "negated"],
)
def test_real_changes_pass(new: str) -> None:
    assert unchanged_reason("python", CHEAPEST, new) is None


def test_deleting_an_annotation_that_used_an_undefined_name_is_a_fix() -> None:
    old = "def f(a: Missing):\n    return a\n"
    new = "def f(a):\n    return a\n"
    assert unchanged_reason("python", old, new) is not None
    assert unchanged_reason("python", old, new, {"Missing"}) is None


def test_indentation_is_code_in_python() -> None:
    old = "for x in y:\n    a()\nb()\n"
    new = "for x in y:\n    a()\n    b()\n"
    assert unchanged_reason("python", old, new) is None


def test_other_languages_compare_tree_sitter_leaves() -> None:
    old = "function f(a) { return a; }\n"
    assert code_tokens("javascript", old) is not None
    spaced = "function f(a) {\n  // the same\n  return a;\n}\n"
    assert unchanged_reason("javascript", old, spaced) is not None
    assert unchanged_reason("javascript", old, "function f(a) { return a + 1; }\n") is None


# -- redefinitions ----------------------------------------------------------------------------

MEANS = "import statistics\n\n\ndef mean(xs):\n    return sum(xs) / len(xs)\n\n\n# the largest\n"


def test_a_second_def_of_an_existing_function_is_a_redefinition() -> None:
    new = MEANS + "def mean(xs):\n    return max(xs)\n"
    reason = redefinition_reason(MEANS, new, 8, 9)
    assert reason is not None
    assert reason.startswith("`mean` is already defined on line 4 (a function)")
    assert "choose a new name" in reason


@pytest.mark.parametrize(
    ("added", "clash"),
    [
        ("def largest(xs):\n    return max(xs)\n", False),
        ("mean = 3\n", True),  # a variable replaces the function
        ("statistics = 3\n", False),  # re-binding a name is ordinary code...
        ("class statistics:\n    pass\n", True),  # ...a class over an import is not
        ("def helper():\n    def mean():\n        pass\n", False),  # a local function
    ],
    ids=["new-name", "variable-over-def", "assign-over-import", "class-over-import", "local"],
)
def test_what_counts_as_a_clash(added: str, clash: bool) -> None:
    new = MEANS + added
    last = 8 + added.count("\n") - 1
    assert (redefinition_reason(MEANS, new, 8, last) is not None) is clash


def test_methods_clash_within_their_class_only() -> None:
    old = "class A:\n    def add(self):\n        pass\n\n    # add two\n"
    new = old + "    def add(self, a, b):\n        return a + b\n"
    reason = redefinition_reason(old, new, 5, 6)
    assert reason is not None and "in class `A` on line 2 (a method)" in reason
    other = "def add(a, b):\n    return a + b\n\n\nclass A:\n    # add two\n"
    assert redefinition_reason(other, other + "    def add(self):\n        pass\n", 6, 7) is None


def test_replacing_a_definition_is_not_a_redefinition() -> None:
    new = MEANS.replace("sum(xs) / len(xs)", "sum(xs) / max(1, len(xs))")
    assert redefinition_reason(MEANS, new, 3, 4) is None


def test_property_setters_and_overloads_are_allowed() -> None:
    old = "class A:\n    @property\n    def x(self):\n        return 1\n"
    new = old + "\n    @x.setter\n    def x(self, v):\n        pass\n"
    assert redefinition_reason(old, new, 5, 7) is None


def test_a_file_that_already_had_two_definitions_is_not_blamed() -> None:
    old = "def f():\n    return 1\n\n\ndef f():\n    return 2\n"
    new = old.replace("return 1", "return 3")
    assert redefinition_reason(old, new, 0, 1) is None
    assert bindings("def f(:\n") is None


def test_check_change_reports_the_redefinition_stage() -> None:
    new = MEANS + "def mean(xs):\n    return max(xs)\n"
    result = check_change("python", MEANS, new, 8, 9, "def mean(xs):\n    return max(xs)\n")
    assert not result.ok and result.stage == "redefines"
    assert "already defined" in result.reason


# -- through the pipeline (scripted backend) --------------------------------------------------

INVENTORY = (
    "class Item:\n"
    "    price: float\n"
    "\n\n"
    "class Inventory:\n"
    "    def cheapest(self) -> Item:\n"
    '        """The item with the lowest price."""\n'
    "        return max(self.items.values(), key=lambda item: item.price)\n"
)
SHRUNK = (
    "def cheapest(self):\n    return max(self.items.values(), key=lambda item: item.price)\n```"
)
FIXED = SHRUNK.replace("max(", "min(")
SAME_AS_SHOWN = (
    "def cheapest(self) -> Item:\n"
    "    return max(self.items.values(), key = lambda item: item.price)  # same\n```"
)
STATIC = VerifyOptions(max_retries=2)


def _fix_cheapest(*answers: str, options: VerifyOptions = STATIC):  # type: ignore[no-untyped-def]
    model, backend = model_for(*answers)
    start = INVENTORY.index("def cheapest")
    out = fix(model, FixRequest(INVENTORY, "python", start, start), options, CancelToken())
    return out, backend


def test_fix_that_only_deletes_the_docstring_is_never_offered() -> None:
    out, backend = _fix_cheapest(SHRUNK, SAME_AS_SHOWN, SHRUNK.replace("self)", "self) "))
    assert out.edit is None and not out.verified
    # The answer without the annotation goes under the original signature and docstring
    # (fix.DocumentedFunction.splice), so round 1 is recognised as the original code.
    assert out.reason.startswith("no real change: round 1 is the same code as the original")
    assert "round 2 is the same code as the original" in out.reason
    assert [a.stage for a in out.attempts][:2] == ["unchanged", "unchanged"]
    # the rejection was fed back to the model
    assert "is the same code as the original" in backend.prompts[1]


def test_fix_after_a_cosmetic_round_is_verified_and_says_it_changes_the_code() -> None:
    out, backend = _fix_cheapest(SHRUNK, FIXED)
    assert out.verified and out.edit is not None, out.reason
    assert "min(" in out.edit.apply(INVENTORY)
    assert "it changes the code" in out.reason
    assert [a.stage for a in out.attempts] == ["unchanged", "ok"]
    assert len(backend.prompts) == 2


def test_generate_that_redefines_a_function_is_repaired() -> None:
    text = MEANS
    model, backend = model_for(
        "def mean(xs):\n    return max(xs)\n```",
        "def largest(xs):\n    return max(xs)\n```",
    )
    request = GenerateRequest(text, "python", text.index("# the largest") + 3)
    out = generate(model, request, STATIC, CancelToken())
    assert out.verified and out.edit is not None, out.reason
    assert "def largest" in out.edit.apply(text)
    assert [a.stage for a in out.attempts] == ["redefines", "ok"]
    assert "`mean` is already defined on line 4" in backend.prompts[1]
    assert "redefines no existing one" in out.reason


def test_generate_redefinition_is_at_most_offered_unverified() -> None:
    text = MEANS
    model, _ = model_for("def mean(xs):\n    return max(xs)\n```")
    request = GenerateRequest(text, "python", text.index("# the largest") + 3)
    out = generate(model, request, VerifyOptions(max_retries=0), CancelToken())
    assert out.edit is not None and not out.verified
    assert out.reason.startswith("not verified: `mean` is already defined on line 4")


def test_the_label_says_what_ran() -> None:
    """'its examples ran' was said even when there were no examples, only the module ran."""
    text = "def add(a, b):\n    return a - b\n"
    options = VerifyOptions(run_code=True, max_retries=0, timeout_s=10)
    model, _ = model_for("def add(a, b):\n    return a + b\n```")
    out = fix(model, FixRequest(text, "python", 0, 0), options, CancelToken())
    assert out.verified, out.reason
    assert out.reason.endswith("it ran the module without errors")
    assert "example" not in out.reason
    documented = (
        'def add(a, b):\n    """Sum.\n\n    >>> add(1, 2)\n    3\n    """\n    return a - b\n'
    )
    model, _ = model_for("def add(a, b):\n    return a + b\n```")
    out = fix(model, FixRequest(documented, "python", 0, 0), options, CancelToken())
    assert out.verified and "it ran 1 example(s) without errors" in out.reason, out.reason


def test_a_layout_diagnostic_may_be_fixed_by_whitespace_alone() -> None:
    text = "def f(a, b):\n    return g(a,\n      b)\n\n\ndef g(a, b):\n    return a\n"
    answer = "def f(a, b):\n    return g(a, b)\n```"
    for problems, fixed in (((), False), (("E128 continuation line under-indented",), True)):
        model, _ = model_for(answer)
        request = FixRequest(text, "python", 0, 0, problems)
        out = fix(model, request, VerifyOptions(max_retries=0), CancelToken())
        assert out.verified is fixed, out.reason
        assert (out.edit is not None) is fixed


def test_an_undefined_name_gets_the_nearest_defined_spelling() -> None:
    """As Python's NameError does: `itme` -> "did you mean `item`?"; nothing close, no hint."""
    code = "def total(items):\n    for item in items:\n        s += itme.price\n"
    assert near_name("itme", code) == "item"
    assert near_name("quux", code) is None
    assert near_name("fr", "for x in y: pass\n") is None  # keywords are not suggested
