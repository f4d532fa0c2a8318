"""Repository context through the real server: a definition from another workspace file
reaches the prompt, and the completion changes with it."""

from __future__ import annotations

import asyncio
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


# TypeScript: `reorderThreshold` lives in tests/lsp/workspace/inventory.ts; the tags index
# (context/tags.py) finds it. Symbol context for TypeScript is switched on here whatever the
# default table says.
TS_PREFIX = (
    'import { reorderThreshold } from "./inventory";\n'
    "\n"
    "export function needsReorder(onHand: number, dailyDemand: number): boolean {\n"
    "  return onHand < reorderThreshold(dailyDemand, 5, 20);\n"
    "}\n"
    "\n"
    "export function reorderPoint(dailyDemand: number, leadTimeDays: number): number {\n"
    "  return reorderThreshold("
)
TS_TEXT = TS_PREFIX + ");\n}\n"
TS_LINE, TS_CHARACTER = TS_PREFIX.count("\n"), len(TS_PREFIX.rsplit("\n", 1)[1])


async def complete_ts_until(
    client: LanguageClient, name: str, text: str, wanted: str, attempts: int = 6
) -> tuple[dict[str, Any], int]:
    """Complete in fresh TypeScript documents until `wanted` is in the prompt's context (the
    index is built, or updated, in the background: a request before that gets none).
    Returns the last details and the attempts it took."""
    details: dict[str, Any] = {}
    for attempt in range(1, attempts + 1):
        uri = open_doc(client, text, language="typescript", name=f"{name}_{attempt}.ts")
        await inline(client, uri, TS_LINE, TS_CHARACTER)
        details = await last_details(client, uri)
        if wanted in details["context"]:
            return details, attempt
        await asyncio.sleep(1.0)
    return details, attempts


async def test_a_typescript_definition_from_another_file_reaches_the_prompt(
    client: LanguageClient,
) -> None:
    try:
        configure(client, {"enabled": True, "budgetMs": 5000, "symbols": {"typescript": True}})
        with_context, _ = await complete_ts_until(
            client, "ts_with_context/orders", TS_TEXT, "symbol: inventory.ts"
        )
        configure(client, {"enabled": True, "budgetMs": 5000, "symbols": {"typescript": False}})
        uri = open_doc(client, TS_TEXT + " \n", language="typescript", name="ts_off/orders.ts")
        await inline(client, uri, TS_LINE, TS_CHARACTER)
        symbols_off = await last_details(client, uri)
        configure(client, {"enabled": False})
        uri = open_doc(client, TS_TEXT + "  \n", language="typescript", name="ts_none/orders.ts")
        await inline(client, uri, TS_LINE, TS_CHARACTER)
        without = await last_details(client, uri)
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams({"wren": SESSION_SETTINGS})
        )

    assert "symbol: inventory.ts" in with_context["context"], with_context
    assert not any(c.startswith("symbol:") for c in symbols_off["context"]), symbols_off
    assert without["context"] == [], without
    assert with_context["decision"] == "complete", with_context
    # The signature is in the prompt: it is longer by at least the definition.
    assert with_context["prompt_tokens"] > without["prompt_tokens"] + 20, (with_context, without)


async def test_a_typescript_definition_the_editor_just_wrote_reaches_the_prompt(
    client: LanguageClient,
) -> None:
    """A file that exists only in the editor (opened, then edited) is in the index too."""
    rules = "export function bulkDiscount(units: number, tier: string): number {\n  return 0;\n}\n"
    text = (
        'import { bulkDiscount } from "./pricing_rules";\n'
        "\n"
        "export function orderTotal(units: number): number {\n"
        '  return units * 2 - bulkDiscount(units, "gold");\n'
        "}\n"
        "\n"
        "export function quote(units: number, dailyDemand: number): number {\n"
        "  return reorderThreshold("
    )
    try:
        configure(client, {"enabled": True, "budgetMs": 5000, "symbols": {"typescript": True}})
        rules_uri = open_doc(client, "", language="typescript", name="pricing_rules.ts")
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=rules_uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=rules)],
            )
        )
        details, _ = await complete_ts_until(
            client, "ts_editor/quote", text + ");\n}\n", "symbol: pricing_rules.ts"
        )
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=rules_uri))
        )
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams({"wren": SESSION_SETTINGS})
        )
    assert "symbol: pricing_rules.ts" in details["context"], details
    assert "symbol: inventory.ts" in details["context"], details
