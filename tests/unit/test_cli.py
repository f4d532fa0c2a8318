"""The `wren` command line without a model: help, argument errors, bad files, `wren models`.

Every argument error must end the command with a message naming the problem and exit status
2 before any model is loaded; the real-model runs are in tests/lsp/test_cli_real.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from wren import config
from wren.cli import app
from wren.cli import prepare as cli_prepare
from wren.cli.common import DeviceChoice
from wren.errors import ModelLoadError

runner = CliRunner()
SERVER = Path(__file__).resolve().parents[2] / "server" / "wren"
SOURCE = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"


def plain(text: str) -> str:
    """Rich output without its panel borders and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "calc.py"
    path.write_text(SOURCE, encoding="utf-8")
    return path


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument errors must be found before the (slow) model load: make loading fail loudly."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model was loaded although the arguments were wrong")

    monkeypatch.setattr(cli_prepare, "load_model_or_exit", refuse)
    import wren.cli.complete as cli_complete

    monkeypatch.setattr(cli_complete, "load_model_or_exit", refuse)


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "complete", "explain", "fix", "generate", "models"):
        assert command in result.output


@pytest.mark.parametrize("command", ["complete", "explain", "fix", "generate"])
def test_missing_line_is_an_argument_error(command: str, source: Path) -> None:
    result = runner.invoke(app, [command, str(source)])
    assert result.exit_code == 2
    assert "Missing option '--line'" in plain(result.stderr)


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("command", ["complete", "explain", "fix", "generate"])
def test_line_outside_the_file(command: str, source: Path) -> None:
    result = runner.invoke(app, [command, str(source), "--line", "40"])
    assert result.exit_code == 2
    assert f"--line 40 is outside {source} (lines 0..6, 0-based)." in plain(result.stderr)


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("command", ["explain", "fix"])
def test_end_line_before_line(command: str, source: Path) -> None:
    result = runner.invoke(app, [command, str(source), "--line", "4", "--end-line", "1"])
    assert result.exit_code == 2
    assert "--end-line 1 must be between --line 4 and the last line" in plain(result.stderr)


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("command", ["complete", "explain", "fix", "generate"])
def test_missing_file(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    result = runner.invoke(app, [command, str(missing), "--line", "0"])
    assert result.exit_code == 2
    assert f"Cannot read {missing}: No such file or directory" in plain(result.stderr)


@pytest.mark.usefixtures("no_model_load")
def test_binary_file_and_folder(tmp_path: Path) -> None:
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00\x81 not text")
    result = runner.invoke(app, ["explain", str(binary), "--line", "0"])
    assert result.exit_code == 2
    assert "is not UTF-8 text (binary?)" in plain(result.stderr)
    result = runner.invoke(app, ["fix", str(tmp_path), "--line", "0"])
    assert result.exit_code == 2
    assert f"{tmp_path} is a folder, not a file." in plain(result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["complete", "--line", "0", "--device", "tpu"], "Invalid value for '--device'"),
        (["fix", "--line", "0", "--timeout", "61"], "Invalid value for '--timeout'"),
        (["generate", "--line", "0", "--timeout", "0"], "Invalid value for '--timeout'"),
        (["explain", "--line", "-2"], "Invalid value for '--line'"),
        (["complete", "--line", "1", "--max-tokens", "0"], "Invalid value for '--max-tokens'"),
        (["serve", "--port", "70000"], "Invalid value for '--port'"),
    ],
)
def test_out_of_range_options(args: list[str], message: str, source: Path) -> None:
    argv = args if args[0] == "serve" else [args[0], str(source), *args[1:]]
    result = runner.invoke(app, argv)
    assert result.exit_code == 2
    assert message in plain(result.stderr)


def test_model_load_failure_is_exit_1_with_the_reason(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise ModelLoadError("No model at /nowhere: the folder does not exist.")

    monkeypatch.setattr("wren.model.loading.load_model", fail)
    result = runner.invoke(app, ["explain", str(source), "--line", "0", "--model", "/nowhere"])
    assert result.exit_code == 1
    assert "No model at /nowhere: the folder does not exist." in plain(result.stderr)


def test_timeout_option_has_the_settings_cap() -> None:
    result = runner.invoke(app, ["fix", "x.py", "--line", "0", "--timeout", "60", "--help"])
    assert result.exit_code == 0
    assert f"1<=x<={config.MAX_VERIFY_TIMEOUT_S}" in result.output


def test_device_choices_are_the_settings_values() -> None:
    assert [d.value for d in DeviceChoice] == list(get_args(config.Device))


def test_models_lists_the_cards() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for family in ("smollm", "starcoder", "qwen2.5-coder"):
        assert family in result.output
    assert "Default model:" in result.output


def _cli_imports(path: Path) -> set[str]:
    """The wren.cli modules that `path` imports when it is loaded (function bodies excluded)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wren.cli"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("wren.cli")}
    return found


def test_cli_package_has_no_import_cycle() -> None:
    """The submodules import each other downwards only, never the package's `__init__`."""
    graph = {
        f"wren.cli.{path.stem}": _cli_imports(path)
        for path in (SERVER / "cli").glob("*.py")
        if path.name != "__init__.py"
    }
    assert all("wren.cli" not in deps for deps in graph.values()), graph
    done: set[str] = set()

    def visit(module: str, stack: tuple[str, ...]) -> None:
        assert module not in stack, f"import cycle: {' -> '.join((*stack, module))}"
        if module not in done:
            for dep in graph.get(module, ()):
                visit(dep, (*stack, module))
            done.add(module)

    for module in graph:
        visit(module, ())


def test_nothing_imports_the_cli() -> None:
    """cli is a composition root (ARCHITECTURE.md): only `python -m wren` may import it."""
    offenders = [
        str(path.relative_to(SERVER))
        for path in SERVER.rglob("*.py")
        if "cli" not in path.relative_to(SERVER).parts[:1]
        and path.name != "__main__.py"
        and re.search(r"^\s*(from|import) wren\.cli\b", path.read_text(), re.M)
    ]
    assert offenders == []
