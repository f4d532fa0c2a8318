"""`python -m wren` is the `wren` command line.

Before anything else is imported: `python -m` puts the current directory first on `sys.path`
(and an empty `PYTHONPATH` entry does too), so a workspace folder used as the working directory
could shadow any module Wren or its dependencies import (`typer.py`, `rich/`, `logging.py`, ...)
and run its code as soon as the server starts, even in Restricted Mode. We drop those entries
here and say so on stderr.

This is defence in depth only. It runs after `wren/__init__.py`, `runpy` and whatever Python
imported at startup, so it cannot stop a planted `wren/` package or `runpy.py`: the real guard
is the client, which starts the server with `python -P` (safe path) from a neutral working
directory (client-vscode/src/pure/launch.ts). Only `sys` and `os` may be used above the
clean-up: both are loaded at interpreter startup, before the current directory is on the path.
"""

import os
import sys


def _drop_cwd_from_sys_path() -> list[str]:
    """Removes '' and the current directory from `sys.path`; returns what was removed."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:  # the working directory was deleted
        cwd = None
    removed = []
    for entry in list(sys.path):
        if entry == "" or (cwd is not None and os.path.realpath(entry) == cwd):
            sys.path.remove(entry)
            removed.append(entry or "''")
    return removed


_removed = _drop_cwd_from_sys_path()
if _removed and sys.argv[1:2] == ["serve"]:
    # Only for the server, which an editor starts: `python -m wren complete ...` typed in one's
    # own project is dropped from the path too, silently. The client's log parser reads the
    # level from the start of the line.
    sys.stderr.write(
        "WARNING wren: ignoring the working directory on the import path "
        f"({', '.join(_removed)}); start the server with `python -P -m wren` "
        "from a directory you trust.\n"
    )

from wren.cli import app  # noqa: E402  (after the clean-up, on purpose)

if __name__ == "__main__":
    app()
