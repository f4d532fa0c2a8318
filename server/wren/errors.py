"""One small error hierarchy. Every message is written for the person at the keyboard."""


class WrenError(Exception):
    """Base class: `str(err)` is a sentence a user can act on."""


class ModelLoadError(WrenError):
    """The model could not be found, is unsafe, or is corrupt."""


class UnsafeCheckpointError(ModelLoadError):
    """A pickle-based checkpoint (.bin/.pt/.pth/.ckpt) was offered; Wren never unpickles."""


class GenerationError(WrenError):
    """The model failed while generating (out of memory, internal error)."""


class GenerationCancelled(WrenError):
    """The request was cancelled or superseded by a newer one."""


class ModelNotReady(WrenError):
    """The model is still loading (or failed to load)."""


class DocumentError(WrenError):
    """An unknown document, or a position outside it."""


class ActionError(WrenError):
    """Explain/Fix/Generate could not produce a usable result."""
