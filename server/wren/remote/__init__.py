"""Generation on a shared OpenAI-compatible inference server (docs/team-server.md).

No torch, no pygls: this package talks HTTP (standard library only) and returns plain data.
"""

from wren.remote.backend import RemoteBackend
from wren.remote.endpoint import parse_endpoint

__all__ = ["RemoteBackend", "parse_endpoint"]
