"""Typed settings. The client's package.json `contributes.configuration` mirrors these keys.

Settings arrive as a nested dict (`{"model": {"path": ...}, ...}`) or with dotted keys
(`{"model.path": ...}`), with or without a leading `wren` section. Invalid values are
reported once and replaced by their defaults; unknown keys are ignored (and reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal, get_args, get_type_hints

Device = Literal["auto", "cpu", "cuda", "mps"]
Quantize = Literal["none", "int8"]


@dataclass(frozen=True)
class ServerSettings:
    pythonPath: str = ""  # read by the client only


@dataclass(frozen=True)
class ModelSettings:
    path: str = ""  # "" = the embedded default model
    device: Device = "auto"
    quantize: Quantize = "none"


@dataclass(frozen=True)
class CompletionSettings:
    maxTokens: int = 64
    multiline: bool = True
    timeBudgetMs: int = 2000
    debounceMs: int = 120  # client debounce; the server adapts its own on top
    contextTokens: int = 1500
    # Rerank a few candidate lines by how likely the code after the cursor is after each
    # (prefix-only models; see engine/rerank.py). Off: it costs latency (BENCHMARKS.md).
    rerank: bool = False


@dataclass(frozen=True)
class ContextSettings:
    enabled: bool = True
    budgetMs: int = 40


@dataclass(frozen=True)
class VerifySettings:
    runCode: bool = False
    maxRounds: int = 2
    timeoutSeconds: int = 5


@dataclass(frozen=True)
class TraceSettings:
    server: Literal["off", "messages", "verbose"] = "off"


@dataclass(frozen=True)
class Settings:
    enable: dict[str, bool] = field(default_factory=lambda: {"*": True})
    server: ServerSettings = field(default_factory=ServerSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    trace: TraceSettings = field(default_factory=TraceSettings)

    def language_enabled(self, language_id: str) -> bool:
        """Per-language switch: the language's own entry wins over "*"."""
        if language_id in self.enable:
            return bool(self.enable[language_id])
        return bool(self.enable.get("*", True))


def setting_keys(cls: type = Settings, prefix: str = "wren") -> set[str]:
    """All dotted keys (`wren.model.path`, ...) — the client's schema must list exactly these."""
    keys: set[str] = set()
    hints = get_type_hints(cls)
    for f in fields(cls):
        t = hints[f.name]
        if is_dataclass(t):
            keys |= setting_keys(t, f"{prefix}.{f.name}")  # type: ignore[arg-type]
        else:
            keys.add(f"{prefix}.{f.name}")
    return keys


def _nest(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn dotted keys into nested dicts and drop a leading `wren` section."""
    if "wren" in raw and isinstance(raw["wren"], dict):
        raw = raw["wren"]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        parts = key.split(".")
        if parts[0] == "wren" and len(parts) > 1:
            parts = parts[1:]
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
                node[parts[-1]].update(value)
            else:
                node[parts[-1]] = value
    return out


def _check_value(value: Any, t: Any) -> bool:
    if t is bool:
        return isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if t is str:
        return isinstance(value, str)
    origin_args = get_args(t)
    if getattr(t, "__origin__", None) is Literal:
        return value in origin_args
    if getattr(t, "__origin__", None) is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
        )
    return False


def _build(cls: type, raw: dict[str, Any], prefix: str, problems: list[str]) -> Any:
    hints = get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    names = {f.name for f in fields(cls)}
    for key in raw:
        if key not in names:
            problems.append(f"Unknown setting `{prefix}.{key}` was ignored.")
    for f in fields(cls):
        t = hints[f.name]
        if f.name not in raw:
            continue
        value = raw[f.name]
        if is_dataclass(t):
            if isinstance(value, dict):
                kwargs[f.name] = _build(t, value, f"{prefix}.{f.name}", problems)  # type: ignore[arg-type]
            else:
                problems.append(f"Setting `{prefix}.{f.name}` must be an object; using defaults.")
        elif _check_value(value, t):
            kwargs[f.name] = value
        else:
            default = f.default_factory() if callable(f.default_factory) else f.default
            problems.append(
                f"Setting `{prefix}.{f.name}` has an invalid value {value!r}; using {default!r}."
            )
    return cls(**kwargs)


def parse_settings(raw: dict[str, Any] | None) -> tuple[Settings, list[str]]:
    """Validate raw settings: returns the settings and one message per problem found."""
    problems: list[str] = []
    if not raw:
        return Settings(), problems
    if not isinstance(raw, dict):
        return Settings(), [
            f"Settings must be an object, got {type(raw).__name__}; using defaults."
        ]
    settings = _build(Settings, _nest(raw), "wren", problems)
    return settings, problems
