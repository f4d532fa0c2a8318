"""A raw stdio JSON-RPC client for the server: every stdout byte is checked, every response counted.

pytest-lsp's client is the right tool for feature tests; protocol guarantees need to see the
transport itself: bytes on stdout that are not a `Content-Length` frame, a request answered
twice or never, the process's exit status. `RawServer` starts `python -m wren serve`, parses
stdout strictly as LSP frames (anything else is kept in `stray`), drains stderr (a server
writing verbose logs to a full pipe would block), and answers the server's own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import sys
import time
from collections import defaultdict
from typing import Any

from .conftest import HERE, server_env

FAULTS = HERE / "faults"
REQUEST_CANCELLED = -32800
_HEADER = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*): ([^\r\n]*)\r\n$")


class ResponseError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = int(error.get("code", 0))
        self.error = error


class RawServer:
    """One server process over stdio, seen at the transport level."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stray: list[bytes] = []  # stdout bytes that were not part of a valid frame
        self.frames = 0
        self.stdout_bytes = 0
        self.stderr = bytearray()
        self.responses: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.sent_ids: list[Any] = []
        self._waiters: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._tasks = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._drain_stderr()),
        ]

    @classmethod
    async def start(
        cls, *args: str, faults: bool = True, env: dict[str, str] | None = None
    ) -> RawServer:
        """Start `python -m wren serve ARGS`; with `faults`, the fault-injection sitecustomize."""
        full_env = server_env(**(env or {}))
        if faults:
            full_env["PYTHONPATH"] = os.pathsep.join([str(FAULTS), full_env["PYTHONPATH"]])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wren",
            "serve",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
            limit=64 * 1024 * 1024,
        )
        return cls(proc)

    # -- reading ------------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            headers: dict[str, str] = {}
            raw_headers = b""
            while True:
                line = await out.readline()
                self.stdout_bytes += len(line)
                if not line:
                    if raw_headers:
                        self.stray.append(raw_headers)
                    return
                if line == b"\r\n":
                    break
                raw_headers += line
                match = _HEADER.match(line)
                if match is None:
                    self.stray.append(line)
                    raw_headers = b""
                    headers = {}
                    continue
                headers[match.group(1).decode().lower()] = match.group(2).decode()
            if "content-length" not in headers:
                self.stray.append(raw_headers + b"\r\n")
                continue
            n = int(headers["content-length"])
            try:
                body = await out.readexactly(n)
            except asyncio.IncompleteReadError as err:
                self.stray.append(raw_headers + err.partial)
                return
            self.stdout_bytes += n
            try:
                message = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.stray.append(raw_headers + b"\r\n" + body)
                continue
            if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                self.stray.append(body)
                continue
            self.frames += 1
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message and "id" in message:
            self.server_requests.append(message)
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
        elif "method" in message:
            self.notifications.append(message)
        else:
            msg_id = message.get("id")
            self.responses[msg_id].append(message)
            waiter = self._waiters.pop(msg_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    async def _drain_stderr(self) -> None:
        err = self.proc.stderr
        assert err is not None
        while chunk := await err.read(1 << 16):
            self.stderr += chunk
            if len(self.stderr) > 32 << 20:  # keep the last part of a very chatty log
                del self.stderr[: len(self.stderr) - (16 << 20)]

    # -- writing ------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        body = json.dumps(message).encode()
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(
        self, method: str, params: Any = None, msg_id: Any = None
    ) -> tuple[Any, asyncio.Future[dict[str, Any]]]:
        """Send a request; the future gets the whole response message."""
        msg_id = next(self._ids) if msg_id is None else msg_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[msg_id] = fut
        self.sent_ids.append(msg_id)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return msg_id, fut

    async def call(self, method: str, params: Any = None, timeout: float = 120) -> Any:
        _, fut = self.request(method, params)
        response = await asyncio.wait_for(fut, timeout)
        if "error" in response:
            raise ResponseError(response["error"])
        return response.get("result")

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def cancel(self, msg_id: Any) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    async def drain(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        await stdin.drain()

    # -- LSP conveniences ---------------------------------------------------------------------

    async def initialize(
        self,
        settings: dict[str, Any] | None = None,
        encodings: list[str] | None = None,
        trusted: bool = True,
    ) -> dict[str, Any]:
        caps: dict[str, Any] = {"window": {"workDoneProgress": True}}
        if encodings:
            caps["general"] = {"positionEncodings": encodings}
        result = await self.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": (HERE / "workspace").as_uri(),
                "capabilities": caps,
                "initializationOptions": {"settings": settings or {}, "workspaceTrusted": trusted},
            },
        )
        self.notify("initialized", {})
        return dict(result)

    async def status(self) -> dict[str, Any]:
        return dict(await self.call("workspace/executeCommand", {"command": "wren.server.status"}))

    async def wait_ready(self, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if st["state"] in ("ready", "error"):
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"model not ready: {st}")
            await asyncio.sleep(0.2)

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": language,
                    "version": version,
                    "text": text,
                }
            },
        )

    def inline_request(
        self, uri: str, line: int, character: int, msg_id: Any = None
    ) -> tuple[Any, asyncio.Future[dict[str, Any]]]:
        return self.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2},
            },
            msg_id,
        )

    async def last_completion(self, uri: str) -> dict[str, Any] | None:
        return await self.call("wren/lastCompletion", {"textDocument": {"uri": uri}})

    # -- ending -------------------------------------------------------------------------------

    async def wait_exit(self, timeout: float) -> int:
        """The exit status, after stdout and stderr were read to the end."""
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks), 10)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()

    def pending_ids(self) -> list[Any]:
        return [i for i in self.sent_ids if not self.responses.get(i)]

    def answered_twice(self) -> dict[Any, int]:
        return {i: len(r) for i, r in self.responses.items() if len(r) > 1}

    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


def file_uri(name: str) -> str:
    return (HERE / "workspace" / name).as_uri()
