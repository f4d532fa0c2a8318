import json
from pathlib import Path

from wren.config import (
    MAX_VERIFY_TIMEOUT_S,
    ContextSettings,
    Settings,
    parse_settings,
    setting_keys,
    setting_ranges,
)

PACKAGE_JSON = Path(__file__).resolve().parents[2] / "client-vscode" / "package.json"


def test_defaults_when_empty() -> None:
    settings, problems = parse_settings(None)
    assert settings == Settings() and problems == []


def test_nested_and_dotted_forms_agree() -> None:
    a, _ = parse_settings({"wren": {"model": {"device": "cpu"}, "completion": {"maxTokens": 20}}})
    b, _ = parse_settings({"model.device": "cpu", "wren.completion.maxTokens": 20})
    assert a == b
    assert a.model.device == "cpu" and a.completion.maxTokens == 20


def test_invalid_values_fall_back_to_defaults_with_a_message() -> None:
    settings, problems = parse_settings(
        {"model": {"device": "tpu"}, "completion": {"maxTokens": "lots"}, "bogus": 1}
    )
    assert settings.model.device == "auto"
    assert settings.completion.maxTokens == Settings().completion.maxTokens
    assert any("wren.model.device" in p and "'tpu'" in p for p in problems)
    assert any("wren.completion.maxTokens" in p for p in problems)
    assert any("wren.bogus" in p for p in problems)


def test_language_enable_map() -> None:
    settings, _ = parse_settings({"enable": {"*": True, "markdown": False}})
    assert settings.language_enabled("python")
    assert not settings.language_enabled("markdown")
    off, _ = parse_settings({"enable": {"*": False, "python": True}})
    assert off.language_enabled("python") and not off.language_enabled("go")


def test_setting_keys_are_dotted_leaves() -> None:
    keys = setting_keys()
    assert "wren.model.path" in keys and "wren.enable" in keys and "wren.model" not in keys


def test_each_invalid_key_falls_back_alone_and_the_rest_applies() -> None:
    settings, problems = parse_settings(
        {
            "completion": {"maxTokens": 0, "timeBudgetMs": 900, "rerank": 1},
            "model.device": "cpu",
            "trace": {"server": True},
        }
    )
    assert settings.completion.maxTokens == 64 and settings.completion.rerank is False
    assert settings.completion.timeBudgetMs == 900 and settings.model.device == "cpu"
    assert settings.trace.server == "off"
    assert len(problems) == 3
    assert any("wren.completion.maxTokens" in p and "using 64" in p for p in problems)
    assert any("wren.completion.rerank" in p and "using False" in p for p in problems)


def test_values_are_not_coerced() -> None:
    """cattrs alone would turn "40" into 40 and "no" into True."""
    settings, problems = parse_settings(
        {"context": {"budgetMs": "40", "enabled": "no"}, "enable": {"python": "yes"}}
    )
    assert settings.context == ContextSettings() and settings.enable == {"*": True}
    assert len(problems) == 3


def test_a_section_that_is_not_an_object_uses_its_defaults() -> None:
    settings, problems = parse_settings({"model": "big", "completion": {"maxTokens": 10}})
    assert settings.model == Settings().model and settings.completion.maxTokens == 10
    assert problems == ["Setting `wren.model` must be an object, got 'big'; using the defaults."]


def test_verify_timeout_is_capped() -> None:
    ok, problems = parse_settings({"verify.timeoutSeconds": MAX_VERIFY_TIMEOUT_S})
    assert ok.verify.timeoutSeconds == MAX_VERIFY_TIMEOUT_S and problems == []
    for bad in (MAX_VERIFY_TIMEOUT_S + 1, 3600, 0):
        settings, problems = parse_settings({"verify.timeoutSeconds": bad})
        assert settings.verify.timeoutSeconds == 5
        assert problems == [
            f"Setting `wren.verify.timeoutSeconds` has an invalid value {bad} "
            f"(must be an integer from 1 to {MAX_VERIFY_TIMEOUT_S}); using 5."
        ]


def test_ranges_match_the_client_schema() -> None:
    """package.json's minimum/maximum are the server's ranges, so the editor flags the same."""
    manifest = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    schema = manifest["contributes"]["configuration"]["properties"]
    ranges = setting_ranges()
    integer_keys = {key for key, prop in schema.items() if prop["type"] == "integer"}
    assert set(ranges) == integer_keys
    for key, bounds in ranges.items():
        assert schema[key].get("minimum") == bounds.minimum, key
        assert schema[key].get("maximum") == bounds.maximum, key
    assert ranges["wren.verify.timeoutSeconds"].maximum == MAX_VERIFY_TIMEOUT_S == 60
