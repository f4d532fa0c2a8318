"""Repository context through the real server: a definition from another workspace file
reaches the prompt, and the completion changes with it."""

from __future__ import annotations

from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import inline, items_of, last_details, open_doc

pytestmark = pytest.mark.model

# The session fixture's settings; `workspace/didChangeConfiguration` replaces all settings.
SESSION_SETTINGS: dict[str, Any] = {"completion": {"timeBudgetMs": 20000}}

# `shipping_quote` lives in tests/lsp/workspace/shipping.py; its keyword-only parameters
# cannot be guessed from this file alone.
PREFIX = (
    "from shipping import shipping_quote\n"
    "\n"
    "\n"
    "def quote_for(parcel):\n"
    "    price = shipping_quote(parcel.weight_kg, destination_zone=parcel.zone)\n"
    "    return price\n"
    "\n"
    "\n"
    "def express_quote(parcel):\n"
    "    return shipping_quote("
)
TEXT = PREFIX + ")\n"  # the editor auto-closed the bracket
LINE, CHARACTER = PREFIX.count("\n"), len(PREFIX.rsplit("\n", 1)[1])


def configure(client: LanguageClient, context: dict[str, Any]) -> None:
    settings = {"wren": {**SESSION_SETTINGS, "context": context}}
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings))


async def complete_in_new_document(
    client: LanguageClient, name: str, text: str = TEXT
) -> dict[str, Any]:
    """Open `text` as a new document (same base name: the same prompt header) and complete
    at the call."""
    uri = open_doc(client, text, name=name)
    result = await inline(client, uri, LINE, CHARACTER)
    details = await last_details(client, uri)
    items = items_of(result)
    details["shown"] = str(items[0].insert_text) if items else ""
    return details


async def test_definition_from_another_file_reaches_the_prompt_and_changes_it(
    client: LanguageClient,
) -> None:
    try:
        # A generous lookup budget: jedi's first lookup on a loaded CI machine is slow.
        configure(client, {"enabled": True, "budgetMs": 5000})
        with_context = await complete_in_new_document(client, "with_context/orders.py")
        configure(client, {"enabled": False})
        # The completion cache is keyed by the text around the cursor, not by settings: this
        # document differs after the cursor only, which a prefix-only prompt never shows.
        without = await complete_in_new_document(
            client, "without_context/orders.py", PREFIX + ") \n"
        )
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams({"wren": SESSION_SETTINGS})
        )

    assert "symbol: shipping.py" in with_context["context"], with_context
    assert without["context"] == [], without
    assert with_context["decision"] == "complete", with_context
    # The signature is in the prompt: it is longer by at least the definition.
    assert with_context["prompt_tokens"] > without["prompt_tokens"] + 20
    # ... and the model wrote something else because of it.
    assert with_context["completion"] != without["completion"], (with_context, without)
    assert with_context["shown"].strip(), with_context
