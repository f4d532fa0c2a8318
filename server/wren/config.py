"""Typed settings, structured with cattrs. The client's package.json mirrors these keys.

Settings arrive as a nested dict (`{"model": {"path": ...}, ...}`) or with dotted keys
(`{"model.path": ...}`), with or without a leading `wren` section. A value of the wrong type
or out of its range is reported (naming the key and the default used) and replaced by its
default; unknown keys are reported and ignored; everything else still applies.
"""

# No `from __future__ import annotations`: cattrs must see the `Annotated` ranges on the
# fields, and dataclass annotations stay real types that way.

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

Device = Literal["auto", "cpu", "cuda", "mps"]
Quantize = Literal["none", "int8"]

# Longest a fix/generate check may run code (seconds): each round waits this long at most.
MAX_VERIFY_TIMEOUT_S = 60


@dataclass(frozen=True)
class Range:
    """Bounds of an integer setting (package.json's `minimum`/`maximum` say the same)."""

    minimum: int = 0
    maximum: int | None = None

    def describe(self) -> str:
        if self.maximum is None:
            return f"an integer ≥ {self.minimum}"
        return f"an integer from {self.minimum} to {self.maximum}"


Count = Annotated[int, Range(0)]
Positive = Annotated[int, Range(1)]


@dataclass(frozen=True)
class ServerSettings:
    pythonPath: str = ""  # read by the client only


@dataclass(frozen=True)
class ModelSettings:
    path: str = ""  # "" = the embedded default model
    device: Device = "auto"
    quantize: Quantize = "none"
    # A `wren tune` adapter: "auto" (this workspace's, when enabled and trained for this model),
    # "off", or a path to an adapter folder (never in Restricted Mode).
    adapter: str = "auto"
    # A shared OpenAI-compatible inference server (wren/remote/): "" = run the model in-process.
    # Only http://localhost (127.0.0.1, [::1]) or https:// unless allowInsecureEndpoint.
    endpoint: str = ""
    servedModel: str = ""  # the model name the server serves ("" = the only one it lists)
    endpointCard: str = "auto"  # a card family (models/*.toml), or "auto": from the name
    apiKeyEnv: str = "WREN_API_KEY"  # the environment variable holding the API key
    allowInsecureEndpoint: bool = False


@dataclass(frozen=True)
class CompletionSettings:
    maxTokens: Positive = 64
    multiline: bool = True
    timeBudgetMs: Count = 2000
    debounceMs: Count = 120  # client debounce; the server adapts its own on top
    contextTokens: Count = 1500
    # Rerank a few candidate lines by how likely the code after the cursor is after each
    # (prefix-only models; see engine/rerank.py). Off: it costs latency (BENCHMARKS.md).
    rerank: bool = False


# Symbol context per language id by default: on only where it measured a gain
# (`scripts/eval_languages.py --symbol-tasks-only [--context --context-only symbols]`). Outside
# Python none has yet: TypeScript, 4 paired tasks on a loaded machine, no change in exact match.
SYMBOL_CONTEXT_DEFAULTS: dict[str, bool] = {"*": False, "python": True}


@dataclass(frozen=True)
class ContextSettings:
    enabled: bool = True
    budgetMs: Count = 40
    # Definitions of the names near the cursor from other files (jedi for Python, the tags
    # index for the rest), per language id.
    symbols: dict[str, bool] = field(default_factory=lambda: dict(SYMBOL_CONTEXT_DEFAULTS))

    def symbols_on(self, language_id: str) -> bool:
        """The user's entry for the language, else the user's "*", else the default table's."""
        for table in (self.symbols, SYMBOL_CONTEXT_DEFAULTS):
            for key in (language_id, "*"):
                if key in table:
                    return bool(table[key])
        return False


@dataclass(frozen=True)
class VerifySettings:
    runCode: bool = False
    maxRounds: Count = 2
    timeoutSeconds: Annotated[int, Range(1, MAX_VERIFY_TIMEOUT_S)] = 5


@dataclass(frozen=True)
class ExplainSettings:
    # "structured": Summary / Takes / Returns / Notes, checked against the code (a small model
    # fills the form more reliably than it writes prose); "prose": free markdown, also checked.
    style: Literal["structured", "prose"] = "structured"


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
    explain: ExplainSettings = field(default_factory=ExplainSettings)
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


def setting_ranges(cls: type = Settings, prefix: str = "wren") -> dict[str, Range]:
    """Dotted key -> bounds, for every integer setting."""
    out: dict[str, Range] = {}
    hints = get_type_hints(cls, include_extras=True)
    for f in fields(cls):
        t = hints[f.name]
        if is_dataclass(t):
            out |= setting_ranges(t, f"{prefix}.{f.name}")  # type: ignore[arg-type]
        elif (bounds := _range_of(t)) is not None:
            out[f"{prefix}.{f.name}"] = bounds
    return out


# -- structuring ----------------------------------------------------------------------------


class InvalidSetting(ValueError):
    """A value that doesn't fit its setting; the message says what would."""


def _range_of(t: Any) -> Range | None:
    if get_origin(t) is Annotated:
        return next((a for a in get_args(t)[1:] if isinstance(a, Range)), None)
    return None


def _expected(t: Any) -> str:
    """What a setting of type `t` accepts, in words."""
    if (bounds := _range_of(t)) is not None:
        return bounds.describe()
    if get_origin(t) is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(t))
    if get_origin(t) is dict:
        return "an object of true/false values"
    return {bool: "true or false", int: "an integer ≥ 0", str: "a string"}.get(t, str(t))


def _strict(kind: type, words: str) -> Any:
    """A hook that takes values of exactly `kind` (cattrs would otherwise coerce "5" -> 5)."""

    def structure(value: Any, _: Any) -> Any:
        # bool is an int subclass: True is not a number of tokens.
        if type(value) is not kind:
            raise InvalidSetting(f"must be {words}")
        return value

    return structure


def _structure_ranged(value: Any, t: Any) -> int:
    bounds = _range_of(t)
    assert bounds is not None
    if type(value) is not int:
        raise InvalidSetting(f"must be {bounds.describe()}")
    if value < bounds.minimum or (bounds.maximum is not None and value > bounds.maximum):
        raise InvalidSetting(f"must be {bounds.describe()}")
    return value


def _structure_literal(value: Any, t: Any) -> Any:
    # `type(...) is` keeps True from matching 1 and 1 from matching 1.0.
    if not any(value == v and type(value) is type(v) for v in get_args(t)):
        raise InvalidSetting(f"must be {_expected(t)}")
    return value


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook_func(lambda t: _range_of(t) is not None, _structure_ranged)
    converter.register_structure_hook_func(lambda t: get_origin(t) is Literal, _structure_literal)
    return converter


_converter = _make_converter()

# -- parsing --------------------------------------------------------------------------------


def _nest(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn dotted keys into nested dicts and drop a leading `wren` section."""
    if "wren" in raw and isinstance(raw["wren"], dict):
        raw = raw["wren"]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        parts = str(key).split(".")
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


@dataclass(frozen=True)
class _Failure:
    path: tuple[str, ...]  # the failing key, "wren" excluded
    error: BaseException


def _failures(err: BaseException, path: tuple[str, ...] = ()) -> list[_Failure]:
    """The leaves of cattrs' error tree, each with the path of the setting that caused it."""
    if isinstance(err, ForbiddenExtraKeysError):
        return [_Failure((*path, name), err) for name in sorted(err.extra_fields)]
    if not isinstance(err, ClassValidationError):
        return [_Failure(path, err)]
    with_names, without = err.group_exceptions()
    out = [f for e, note in with_names for f in _failures(e, (*path, str(note.name)))]
    return out + [f for e in without for f in _failures(e, path)]


def _default_at(path: tuple[str, ...]) -> Any:
    node: Any = Settings()
    for name in path:
        node = getattr(node, name, None)
    return node


def _drop(nested: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = nested
    for name in path[:-1]:
        node = node.get(name) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _message(failure: _Failure, value: Any) -> str:
    key = ".".join(("wren", *failure.path))
    if isinstance(failure.error, ForbiddenExtraKeysError):
        return f"Unknown setting `{key}` was ignored."
    default = _default_at(failure.path)
    if is_dataclass(default):
        return f"Setting `{key}` must be an object, got {value!r}; using the defaults."
    if isinstance(failure.error, InvalidSetting):
        why = str(failure.error)
    else:  # a cattrs error (say, a list where an object was expected)
        why = f"must be {_expected(_type_at(failure.path))}"
    return f"Setting `{key}` has an invalid value {value!r} ({why}); using {default!r}."


def _type_at(path: tuple[str, ...]) -> Any:
    t: Any = Settings
    for name in path:
        t = get_type_hints(t, include_extras=True).get(name) if is_dataclass(t) else None
    return t


def _value_at(nested: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = nested
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return node


def parse_settings(raw: Any) -> tuple[Settings, list[str]]:
    """Structure raw settings: the settings, and one message per problem found.

    Each invalid or unknown key is dropped (so its default applies) and structuring is tried
    again; every try drops at least one key, so this ends.
    """
    if not raw:
        return Settings(), []
    if not isinstance(raw, dict):
        return Settings(), [
            f"Settings must be an object, got {type(raw).__name__}; using defaults."
        ]
    nested = _nest(raw)
    problems: list[str] = []
    while True:
        try:
            return _converter.structure(nested, Settings), problems
        except ClassValidationError as err:
            failures = _failures(err)
        if not failures or any(not f.path for f in failures):  # nothing to drop: give up
            problems.append(f"Settings could not be read ({failures}); using defaults.")
            return Settings(), problems
        for failure in failures:
            problems.append(_message(failure, _value_at(nested, failure.path)))
            _drop(nested, failure.path)
