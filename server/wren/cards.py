"""Model cards (models/*.toml): FIM template, stop tokens, chat use, context window.

A card is matched by the model's name, else by the tokenizer's special tokens. When no card
matches, FIM support is detected from the tokenizer: a model without FIM tokens gets
prefix-only completion. This module does not import torch.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

# Generic FIM token triples seen across families, tried when no card matches.
_GENERIC_FIM = (
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    ("<fim-prefix>", "<fim-suffix>", "<fim-middle>"),
)


@dataclass(frozen=True)
class ModelCard:
    family: str
    fim: bool = False
    fim_template: str = ""
    chat: bool = False
    context_window: int = 2048
    file_header: str = ""
    context_style: str = "comment"
    # `stop` ends every generation (end of text/turn, file separators); `stop_inline` ends
    # inline completions only — a code fence ends a completion but not an explanation.
    stop: tuple[str, ...] = ()
    stop_inline: tuple[str, ...] = ()
    match_names: tuple[str, ...] = ()
    match_tokens: tuple[str, ...] = field(default=())

    def fim_prompt(self, prefix: str, suffix: str) -> str:
        return self.fim_template.replace("{prefix}", prefix).replace("{suffix}", suffix)


def cards_dir() -> Path:
    """`WREN_MODELS_DIR`, else the cards shipped inside the package (`wren/model_cards/`, package
    data, so a wheel install has them; the repository's `models/` is a link to that folder)."""
    env = os.environ.get("WREN_MODELS_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("wren").joinpath("model_cards")))


@cache
def load_cards(folder: Path | None = None) -> tuple[ModelCard, ...]:
    folder = folder or cards_dir()
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        # Matching still works without cards (FIM detected from the tokenizer), but worse: say so.
        logging.getLogger(__name__).warning("No model cards (*.toml) found in %s", folder)
    cards = []
    for path in paths:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        cards.append(
            ModelCard(
                family=raw["family"],
                fim=bool(raw.get("fim", False)),
                fim_template=raw.get("fim_template", ""),
                chat=bool(raw.get("chat", False)),
                context_window=int(raw.get("context_window", 2048)),
                file_header=raw.get("file_header", ""),
                context_style=raw.get("context_style", "comment"),
                stop=tuple(raw.get("stop", ())),
                stop_inline=tuple(raw.get("stop_inline", ())),
                match_names=tuple(raw.get("match_names", ())),
                match_tokens=tuple(raw.get("match_tokens", ())),
            )
        )
    return tuple(cards)


def match_card(
    name: str, special_tokens: Iterable[str], has_chat_template: bool = False
) -> ModelCard:
    """The card for a model: by name, then by special tokens, then detected from the tokenizer."""
    tokens = set(special_tokens)
    lname = name.lower()
    cards = load_cards()
    for card in cards:
        if any(n in lname for n in card.match_names):
            return card
    # Most specific token signature first (CodeGemma's tokens are a superset of Qwen's FIM set).
    for card in sorted(cards, key=lambda c: -len(c.match_tokens)):
        if card.match_tokens and all(t in tokens for t in card.match_tokens):
            return card
    for pre, suf, mid in _GENERIC_FIM:
        if {pre, suf, mid} <= tokens:
            return ModelCard(
                family="generic-fim",
                fim=True,
                fim_template=f"{pre}{{prefix}}{suf}{{suffix}}{mid}",
                chat=has_chat_template,
                context_window=4096,
                stop=(pre, suf, mid),
            )
    return ModelCard(family="generic", fim=False, chat=has_chat_template, context_window=2048)
