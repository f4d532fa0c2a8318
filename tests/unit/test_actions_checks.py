"""Verification rules (static checks of a candidate change)."""

from __future__ import annotations

from wren.engine.actions.verify import (
    check_change,
    new_undefined_names,
    syntax_error_in,
    undefined_names,
)

# -- static checks --------------------------------------------------------------------------


def test_syntax_error_in_changed_rows_is_reported() -> None:
    text = "def f(x)\n    return x\n"
    err = syntax_error_in("python", text, 0, 1)
    assert err is not None and err.startswith("line 1")


def test_preexisting_error_elsewhere_is_not_the_changes_fault() -> None:
    old = "def f(:\n    pass\n\nx = 1\n"
    new = "def f(:\n    pass\n\nx = 2\n"
    assert syntax_error_in("python", new, 3, 3, old) is None


def test_a_change_that_breaks_a_clean_file_is_reported_wherever_the_error_is() -> None:
    old = "x = [1,\n     2]\ny = 3\n"
    new = "x = [1,\n     2\ny = 3\n"
    assert syntax_error_in("python", new, 1, 1, old) is not None


def test_other_languages_use_tree_sitter() -> None:
    assert syntax_error_in("javascript", "function f() { return 1; }\n", 0, 0) is None
    assert syntax_error_in("javascript", "function f() { return (1; }\n", 0, 0) is not None
    assert syntax_error_in("plaintext", "anything (", 0, 0) is None  # no grammar: no opinion


def test_undefined_names() -> None:
    code = (
        "import os\nfrom x import y\n\nCONST = 1\n\n"
        "def f(a, *args, **kw):\n    global G\n    G = 2\n    b = [i for i in a]\n"
        "    return os.path, y, CONST, b, len, missing, __name__\n\n"
        "class C:\n    attr = CONST\n    other = nowhere\n    def m(self):\n        return G, C\n"
    )
    assert undefined_names(code) == {"missing", "nowhere"}


def test_star_import_or_broken_code_disables_the_name_check() -> None:
    assert undefined_names("from os.path import *\nprint(join)\n") is None
    assert undefined_names("def f(:\n") is None


def test_only_new_undefined_names_count() -> None:
    old = "def f(items):\n    return totl\n"
    assert new_undefined_names(old, "def f(items):\n    return total\n") == ["total"]
    assert new_undefined_names(old, "def f(items):\n    return totl + 1\n") == []
    # a name mentioned only in a comment of the old code is still new
    old_comment = "# use numpy here\ndef f():\n    pass\n"
    assert new_undefined_names(old_comment, "# use numpy here\ndef f():\n    numpy.x\n") == [
        "numpy"
    ]


def test_check_change_rules() -> None:
    old = "def f(a):\n    return a\n"
    ok = check_change("python", old, "def f(a):\n    return a + 1\n", 0, 1, "return a + 1")
    assert ok.ok and ok.checks == ("syntax", "names")
    same = check_change("python", old, old, 0, 1, "def f(a):\n    return a\n")
    assert not same.ok and "same as the original" in same.reason
    bad = check_change("python", old, "def f(a):\n    return a +\n", 0, 1, "x")
    assert not bad.ok and "does not parse" in bad.reason
    names = check_change("python", old, "def f(a):\n    return helper(a)\n", 0, 1, "x")
    assert not names.ok and "`helper`" in names.reason
    empty = check_change("python", old, old + "\n", 0, 1, "   ")
    assert not empty.ok and "empty" in empty.reason


# The sandbox that runs candidate code: tests/unit/test_sandbox.py
