from wren.config import Settings, parse_settings, setting_keys


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
