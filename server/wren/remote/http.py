"""A small HTTP client on the standard library: JSON requests and server-sent event streams.

Only connection failures (refused, reset before an answer, DNS) are retried, with backoff;
an HTTP error status is the server's answer and is reported, never retried. A stream can be
closed from another thread (`Stream.abort`), which ends a blocked read at once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

from wren.errors import GenerationCancelled, GenerationError
from wren.remote.endpoint import Endpoint

RETRY_DELAYS_S = (0.2, 0.5, 1.0)  # after the 1st, 2nd and 3rd failed connection


class ServerUnreachable(GenerationError):
    """No connection could be made (after the retries)."""


class ServerAnsweredError(GenerationError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _connection(ep: Endpoint, timeout: float) -> http.client.HTTPConnection:
    if ep.scheme == "https":
        return http.client.HTTPSConnection(
            ep.host, ep.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)


def _headers(key: str, body: bytes | None) -> dict[str, str]:
    headers = {"Accept": "application/json, text/event-stream", "User-Agent": "wren"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _error_text(resp: http.client.HTTPResponse) -> str:
    """The message inside an error answer (OpenAI style `{"error": {"message": ...}}`)."""
    try:
        raw = resp.read(4096).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.strip()[:300]
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return str(err.get("message") or err.get("detail") or err)[:300]
    return str(err)[:300]


def open_request(
    ep: Endpoint,
    method: str,
    path: str,
    payload: Any,
    key: str,
    timeout: float,
    cancel_check: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    on_connection: Callable[[http.client.HTTPConnection], None] = lambda _c: None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send a request and wait for the answer's headers; retries connection failures only.

    `timeout` bounds the connection and the wait for the first byte of the answer.
    `on_connection` sees each connection before it is used (so another thread can close it).
    """
    body = None if payload is None else json.dumps(payload).encode("utf-8")
    attempts = len(RETRY_DELAYS_S) + 1
    for attempt in range(attempts):
        if cancel_check():
            raise GenerationCancelled("cancelled")
        conn = _connection(ep, timeout)
        try:
            conn.connect()
            on_connection(conn)  # conn.sock: http.client lets go of it once the answer starts
            conn.request(method, ep.base_path + path, body=body, headers=_headers(key, body))
            resp = conn.getresponse()
        except (ConnectionRefusedError, ConnectionResetError, socket.gaierror) as err:
            conn.close()
            if cancel_check():
                raise GenerationCancelled("cancelled") from err
            if attempt + 1 >= attempts:
                raise ServerUnreachable(
                    f"Wren cannot reach the inference server at {ep.url} "
                    f"({type(err).__name__}: {err}); is it running?"
                ) from err
            sleep(RETRY_DELAYS_S[attempt])
            continue
        except TimeoutError as err:
            conn.close()
            if cancel_check():
                raise GenerationCancelled("cancelled") from err
            raise GenerationError(
                f"The inference server at {ep.url} did not answer within {timeout:g} s "
                "(overloaded or stuck?)."
            ) from err
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            if cancel_check():
                raise GenerationCancelled("cancelled") from err
            raise GenerationError(
                f"The connection to the inference server at {ep.url} failed: "
                f"{type(err).__name__}: {err}"
            ) from err
        if resp.status >= 400:
            detail = _error_text(resp)
            conn.close()
            raise ServerAnsweredError(
                f"The inference server at {ep.url} answered {path} with HTTP {resp.status}"
                + (f": {detail}" if detail else "."),
                resp.status,
            )
        return conn, resp
    raise AssertionError("unreachable")


def request_json(
    ep: Endpoint, method: str, path: str, payload: Any, key: str, timeout: float
) -> Any:
    conn, resp = open_request(ep, method, path, payload, key, timeout)
    try:
        raw = resp.read()
    except (OSError, http.client.HTTPException) as err:
        raise GenerationError(
            f"The inference server at {ep.url} dropped the connection while answering {path}."
        ) from err
    finally:
        conn.close()
    try:
        return json.loads(raw)
    except ValueError as err:
        raise GenerationError(
            f"The inference server at {ep.url} answered {path} with something that is not "
            f"JSON: {raw[:80]!r}"
        ) from err


class Stream:
    """The `data:` payloads of a server-sent event stream, one JSON object each."""

    def __init__(
        self,
        ep: Endpoint,
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse | None,
        sock: socket.socket | None = None,
    ):
        self.ep, self.conn, self.resp = ep, conn, resp
        self.sock = sock or conn.sock
        self.aborted = False
        self.done = False  # `data: [DONE]` arrived

    def abort(self) -> None:
        """Close the connection now (any thread): a blocked read ends, the server sees it."""
        self.aborted = True
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # The reading thread closes the response itself (`close`): closing it here would
        # pull its buffer out from under a read in progress.

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.resp is not None:
                self.resp.close()
            self.conn.close()

    def events(self) -> Iterator[dict[str, Any]]:
        """Each event's JSON; ends at `data: [DONE]` or when the server ends the stream."""
        assert self.resp is not None
        while True:
            try:
                line = self.resp.readline()
            except TimeoutError as err:
                raise GenerationError(
                    f"The inference server at {self.ep.url} stopped sending in the middle of "
                    f"an answer (nothing for {self.conn.timeout or 0:g} s; overloaded?)."
                ) from err
            except (OSError, ValueError, http.client.HTTPException) as err:
                if self.aborted:
                    return
                raise GenerationError(
                    f"The connection to the inference server at {self.ep.url} broke in the "
                    f"middle of an answer ({type(err).__name__})."
                ) from err
            if not line:
                return
            text = line.decode("utf-8", "replace").strip()
            if not text or text.startswith(":"):
                continue  # blank separator or a comment (keep-alive)
            if not text.startswith("data:"):
                if text.startswith(("event:", "id:", "retry:")):
                    continue
                raise GenerationError(
                    f"The inference server at {self.ep.url} sent a malformed stream "
                    f"(expected `data:` lines, got {text[:60]!r})."
                )
            data = text[len("data:") :].strip()
            if data == "[DONE]":
                self.done = True
                return
            try:
                event = json.loads(data)
            except ValueError as err:
                raise GenerationError(
                    f"The inference server at {self.ep.url} sent a malformed stream "
                    f"(an event that is not JSON: {data[:60]!r})."
                ) from err
            if not isinstance(event, dict):
                raise GenerationError(
                    f"The inference server at {self.ep.url} sent a malformed stream "
                    f"(an event that is not an object: {data[:60]!r})."
                )
            yield event
