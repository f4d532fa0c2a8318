"""Temporary alias while the move to `wren.cards` lands everywhere; removed before release."""

from wren.cards import *  # noqa: F403
from wren.cards import ModelCard, cards_dir, load_cards, match_card  # noqa: F401
