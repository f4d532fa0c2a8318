"""Explain / Fix / Generate code actions and commands (see engine/actions)."""

from __future__ import annotations

from wren.lsp.server import WrenServer


def register(server: WrenServer) -> None:
    """Registered by the actions feature (issue: Explain, Fix and Generate)."""
