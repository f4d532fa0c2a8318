"""The client's package.json `contributes.configuration` is the one settings schema: it must list
exactly the keys `wren.config` knows, with the same defaults and enum values."""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from wren.config import Settings, parse_settings, setting_keys

PACKAGE_JSON = Path(__file__).resolve().parents[2] / "client-vscode" / "package.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, dict[str, Any]]:
    manifest = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    return manifest["contributes"]["configuration"]["properties"]


def _python_fields(cls: type = Settings, prefix: str = "wren") -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (type, default) for every leaf setting."""
    out: dict[str, tuple[Any, Any]] = {}
    hints = get_type_hints(cls)
    instance = cls()
    for f in fields(cls):
        t = hints[f.name]
        if is_dataclass(t):
            out |= _python_fields(t, f"{prefix}.{f.name}")  # type: ignore[arg-type]
        else:
            out[f"{prefix}.{f.name}"] = (t, getattr(instance, f.name))
    return out


def test_same_keys(schema: dict[str, dict[str, Any]]) -> None:
    assert set(schema) == setting_keys()


def test_same_defaults(schema: dict[str, dict[str, Any]]) -> None:
    for key, (_, default) in _python_fields().items():
        assert schema[key]["default"] == default, key


def test_same_types_and_enums(schema: dict[str, dict[str, Any]]) -> None:
    json_type = {bool: "boolean", int: "integer", str: "string"}
    for key, (t, _) in _python_fields().items():
        prop = schema[key]
        if get_origin(t) is Literal:
            assert prop["type"] == "string", key
            assert prop["enum"] == list(get_args(t)), key
            assert len(prop.get("enumDescriptions", prop["enum"])) == len(prop["enum"]), key
        elif get_origin(t) is dict:
            assert prop["type"] == "object", key
            assert prop["additionalProperties"] == {"type": "boolean"}, key
        else:
            assert prop["type"] == json_type[t], key
            assert "enum" not in prop, key


def test_every_setting_is_described(schema: dict[str, dict[str, Any]]) -> None:
    for key, prop in schema.items():
        text = prop.get("markdownDescription") or prop.get("description")
        assert text and len(text) > 20, f"{key} needs a description"


def test_schema_defaults_parse_cleanly(schema: dict[str, dict[str, Any]]) -> None:
    """What the client sends with nothing configured is valid for the server, with no warnings."""
    flat = {key: prop["default"] for key, prop in schema.items()}
    settings, problems = parse_settings(flat)
    assert problems == []
    assert settings == Settings()


def test_restricted_settings_exist(schema: dict[str, dict[str, Any]]) -> None:
    manifest = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    untrusted = manifest["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    assert set(untrusted["restrictedConfigurations"]) == {
        "wren.model.path",
        "wren.model.adapter",
        "wren.model.endpoint",
        "wren.model.apiKeyEnv",
        "wren.model.allowInsecureEndpoint",
        "wren.server.pythonPath",
        "wren.verify.runCode",
    }
    assert set(untrusted["restrictedConfigurations"]) <= set(schema)
