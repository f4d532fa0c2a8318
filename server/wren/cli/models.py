"""`wren models`: the model cards, the default model and the converted-model cache."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def models_cmd() -> None:
    """Which models are known (cards), installed (the default) and cached (converted)."""
    from wren.cards import load_cards
    from wren.model.loading import cache_root, cached_models, default_model_file

    console = Console()
    default = default_model_file()
    console.print(f"Default model: {default if default else '[red]not installed[/]'}")
    table = Table(title="Model cards (models/*.toml)")
    for col in ("family", "FIM", "chat", "context"):
        table.add_column(col)
    for card in load_cards():
        table.add_row(card.family, str(card.fim), str(card.chat), str(card.context_window))
    console.print(table)
    table = Table(title=f"Converted cache ({cache_root()})")
    for col in ("name", "size MB", "source"):
        table.add_column(col)
    for entry in cached_models():
        table.add_row(entry["name"], entry["size_mb"], entry["source"])
    console.print(table)
