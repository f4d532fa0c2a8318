"""Temporary alias while the move to `wren.types` lands everywhere; removed before release."""

from wren.types import *  # noqa: F403
from wren.types import Backend, CancelToken, ContextSnippet, GenerationParams  # noqa: F401
from wren.types import GenerationResult, Mode, Snapshot, StageTimer, TriggerDecision  # noqa: F401
