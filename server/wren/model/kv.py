"""Small KV-cache helpers shared by generation and reranking (no backend state)."""

from __future__ import annotations

from typing import Any

from wren.errors import GenerationCancelled
from wren.model.fast_decode import KVCache
from wren.types import CancelToken


def crop_to(past: Any, length: int) -> None:
    """Shrink a cache (lean or transformers) to its first `length` positions."""
    if isinstance(past, KVCache):
        past.crop(length)
        return
    remove = past.get_seq_length() - length
    if remove > 0:
        past.crop(-remove)


def checkpoint(cancel: CancelToken) -> None:
    """The cancel token's checkpoint (urgent jobs may run inside it), then cancelled or not
    once more: a nested job may have cancelled this one (`Scheduler.cancel_background`)."""
    cancel.raise_if_cancelled()
    if cancel.cancelled:
        raise GenerationCancelled(cancel.reason)
