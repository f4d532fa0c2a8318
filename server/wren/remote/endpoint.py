"""Which endpoints Wren may send code to, and the API key (from the environment, never settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from wren.errors import ModelLoadError

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "http" | "https"
    host: str
    port: int
    base_path: str  # "" or "/prefix" (without the trailing "/v1")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base_path}"


def parse_endpoint(url: str, allow_insecure: bool = False) -> Endpoint:
    """The endpoint for `wren.model.endpoint`, or a ModelLoadError saying why it is refused.

    Plain http is only allowed to this machine (the code would otherwise cross the network
    unencrypted) unless `wren.model.allowInsecureEndpoint` is true.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:
        raise ModelLoadError(f"The model endpoint {url!r} is not a valid URL ({err}).") from err
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise ModelLoadError(
            f"The model endpoint {url!r} must be an http:// or https:// URL with a host, "
            "such as http://localhost:8000."
        )
    if parts.username or parts.password:
        raise ModelLoadError(
            "The model endpoint must not contain a user name or password; put the API key in "
            "the environment variable named by wren.model.apiKeyEnv."
        )
    if scheme == "http" and host not in LOOPBACK_HOSTS and not allow_insecure:
        raise ModelLoadError(
            f"Wren refuses the endpoint {url!r}: plain http:// would send your code over the "
            "network unencrypted. Use https://, a localhost address, or set "
            "wren.model.allowInsecureEndpoint to true."
        )
    base = parts.path.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return Endpoint(scheme, host, port or (443 if scheme == "https" else 80), base)


def api_key(env_name: str) -> str:
    """The API key from the environment variable `env_name` ("" when unset)."""
    return os.environ.get(env_name, "").strip() if env_name else ""
