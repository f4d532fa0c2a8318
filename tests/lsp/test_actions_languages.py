"""Generate outside Python through the real server and model: what is offered parses no worse."""

from __future__ import annotations

import pytest
from pytest_lsp import LanguageClient

from wren.context.syntax import count_errors, parse

from .conftest import open_doc
from .test_actions import apply_edit, command, edit_doc

pytestmark = pytest.mark.model

CART = """class Cart {
  items: { name: string; quantity: number }[] = [];

  count(): number {
    return this.items.reduce((sum, item) => sum + item.quantity, 0);
  }

  // return the names of the items whose quantity is zero
}
"""


def _errors(language: str, text: str) -> int:
    tree = parse(language, text)
    assert tree is not None
    return count_errors(tree)


async def test_generate_in_typescript_offers_only_code_that_parses_no_worse(
    client: LanguageClient,
) -> None:
    uri = open_doc(client, CART, language="typescript", name="cart.ts")
    comment = "  // return the names of the items whose quantity is zero"
    line = CART.split("\n").index(comment)
    result = await command(
        client,
        "wren.server.generate",
        {"uri": uri, "position": {"line": line, "character": len(comment)}},
    )
    assert "Put the cursor" not in result["reason"], result  # the comment was found
    if result["edit"] is None:
        # Nothing verified: the refusal says why in words (not a stack trace).
        assert result["reason"] and "Traceback" not in result["reason"], result
        return
    new = apply_edit(CART, edit_doc(result))
    assert new.startswith(CART[: CART.index("  // return")])
    assert _errors("typescript", new) <= _errors("typescript", CART), new
    if result["verified"]:
        assert "it parses" in result["reason"], result
