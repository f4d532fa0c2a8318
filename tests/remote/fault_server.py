"""A fault-injecting fake OpenAI-compatible server (stdlib), one fault per URL prefix.

`http://127.0.0.1:<port>/<fault>` is an endpoint whose every answer has that fault:

  ok         a normal stream ("    return a + b\\n"), `[DONE]`
  kill       two events, then the connection is closed with no finish and no `[DONE]`
  reset      two events, then the connection is reset (RST)
  error500   HTTP 500 with an OpenAI-style error body
  error404   HTTP 404 "model does not exist" for generation requests
  slow       waits `slow_s` before answering at all (headers included)
  malformed  a 200 event stream whose event is not JSON
  wrong      /v1/models lists another model
  stall      one event, then silence for `slow_s`
  hang       one event, then keep-alive comments until the client goes away (counted)
  interrupt  two events, then `[DONE]` with no finish reason (llama-cpp-python's server does
             this to a running answer when another request arrives)
  extras     a normal stream without usage; tokenizes at `/extras/tokenize` (llama-cpp-python's
             route, `{"input": ...}`: one id per character) instead of `/tokenize`
  newturn    a chat answer that opens its own code fence, as a server that ignores
             `continue_final_message` gives (llama-cpp-python's)
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-coder-1b"


class FaultServer:
    def __init__(self, slow_s: float = 5.0) -> None:
        self.slow_s = slow_s
        self.requests: dict[str, int] = {}
        self.disconnects: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(_Handler):
            server_state = outer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, fault: str) -> str:
        return f"http://127.0.0.1:{self.port}/{fault}"

    def count(self, table: dict[str, int], fault: str) -> None:
        with self.lock:
            table[fault] = table.get(fault, 0) + 1

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _event(piece: str, finish: str | None = None) -> bytes:
    chunk = {"model": MODEL, "choices": [{"index": 0, "text": piece, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _chat_event(piece: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": piece}, "finish_reason": finish}
    return b"data: " + json.dumps({"model": MODEL, "choices": [choice]}).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FaultServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _split(self) -> tuple[str, str]:
        _, fault, rest = self.path.split("/", 2)
        return fault, "/" + rest

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        fault, path = self._split()
        if fault == "slow":
            time.sleep(self.server_state.slow_s)
        if path == "/v1/models":
            name = "other-model-7b" if fault == "wrong" else MODEL
            self._json(200, {"object": "list", "data": [{"id": name}]})
        else:
            self._json(404, {"error": {"message": "no such route"}})

    def do_POST(self) -> None:
        fault, path = self._split()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if path == "/extras/tokenize" and fault == "extras":
            text = json.loads(body or b"{}").get("input", "")
            self._json(200, {"tokens": [ord(c) for c in text]})
            return
        if path in ("/tokenize", "/extras/tokenize"):
            self._json(404, {"error": {"message": "no tokenizer here"}})
            return
        state = self.server_state
        state.count(state.requests, fault)
        if fault == "error404":
            self._json(404, {"error": {"message": "The model does not exist."}})
            return
        if fault == "error500":
            self._json(500, {"error": {"message": "CUDA out of memory", "type": "server_error"}})
            return
        if fault == "slow":
            time.sleep(state.slow_s)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        out = self.wfile
        try:
            if fault == "malformed":
                out.write(b"data: {this is not json\n\n")
            elif fault in ("kill", "reset"):
                out.write(_event("    return") + _event(" a"))
                out.flush()
                time.sleep(0.1)
                if fault == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.connection.close()
                return
            elif fault == "stall":
                out.write(_event("    return"))
                out.flush()
                time.sleep(state.slow_s)
            elif fault == "interrupt":
                out.write(_event("    return") + _event(" a") + b"data: [DONE]\n\n")
            elif fault == "newturn":
                for piece in ("```", "python", "\n", "x = 1", "\n"):
                    out.write(_chat_event(piece))
                out.write(_chat_event("", "stop") + b"data: [DONE]\n\n")
            elif fault == "hang":
                out.write(_event("    return"))
                out.flush()
                while True:
                    time.sleep(0.05)
                    out.write(b": keep-alive\n\n")
                    out.flush()
            else:
                for piece in ("    return", " a", " +", " b", "\n"):
                    out.write(_event(piece))
                out.write(_event("", "stop") + b"data: [DONE]\n\n")
            out.flush()
        except OSError:
            state.count(state.disconnects, fault)
