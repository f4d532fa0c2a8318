"""The composition of the language server: the server object plus one module per feature."""

from __future__ import annotations

from wren.lsp import actions, debug, details, inline_completion, lifecycle, sync
from wren.lsp.server import WrenServer


def create_server() -> WrenServer:
    """A server with every feature registered (each feature module registers its handlers)."""
    server = WrenServer()
    for module in (lifecycle, sync, inline_completion, details, actions, debug):
        module.register(server)
    return server
