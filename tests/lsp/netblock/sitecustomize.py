"""Loaded into the server under test (via PYTHONPATH): outbound network is blocked and logged.

Any connect to a non-loopback address raises and is appended to $WREN_NETBLOCK_LOG, so a
test can assert that the server never tried to reach the network.
"""

import ipaddress
import os
import socket

_LOG = os.environ.get("WREN_NETBLOCK_LOG", "")
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else ""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        if _LOG:
            with open(_LOG, "a") as fh:
                fh.write(f"{address!r}\n")
        raise OSError(f"network access blocked in tests: {address!r}")


def _connect(self: socket.socket, address: object) -> None:
    _guard(self, address)
    return _original_connect(self, address)


def _connect_ex(self: socket.socket, address: object) -> int:
    _guard(self, address)
    return _original_connect_ex(self, address)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
