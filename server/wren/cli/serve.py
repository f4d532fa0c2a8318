"""`wren serve`: the language server on stdio (or TCP for debugging)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, BinaryIO

import typer

from wren.cli.common import setup_logging


def protect_stdout() -> tuple[BinaryIO, BinaryIO]:
    """Reserve the real stdout for LSP frames; anything else printing to fd 1 goes to stderr.

    Model libraries print warnings and progress bars, some from C code; after this, fd 1 is
    stderr and only the returned binary stream writes to the client.
    """
    # Buffered on purpose: a raw (unbuffered) read(n) returns after one pipe read (64 KiB),
    # which truncates large messages; the buffered reader reads all n bytes. pygls flushes
    # the writer after every frame.
    protocol_out = os.fdopen(os.dup(1), "wb")
    protocol_in = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_in, protocol_out


def serve_cmd(
    tcp: Annotated[bool, typer.Option(help="Listen on TCP instead of stdio (debugging).")] = False,
    host: Annotated[str, typer.Option(help="TCP host (with --tcp).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (with --tcp).", min=1, max=65535)] = 2087,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the language server (stdio by default)."""
    setup_logging(verbose)
    os.environ.setdefault("TQDM_DISABLE", "1")
    # Before importing the server: imports may print, and stdout must carry only LSP frames.
    stdin, stdout = (None, None) if tcp else protect_stdout()
    from wren.lsp.app import create_server

    server = create_server()
    if tcp:
        server.start_tcp(host, port)
        return
    server.start_io(stdin, stdout)
    # The client closed stdin (or went away): end now, see `exit_process`.
    from wren.lsp.lifecycle import exit_process

    exit_process(server)
