"""A small OpenAI-compatible inference server running the real default model (for tests).

The second server of tests/remote (beside llama-cpp-python's, tests/remote/servers.py): the
real SmolLM2 weights through Wren's own in-process backend, with counters a third-party server
does not expose, behind the same HTTP API vLLM and llama.cpp's server speak: `GET /v1/models`,
`POST /tokenize`, `POST /v1/completions` and `POST /v1/chat/completions` with `stream: true`
(server-sent events, `[DONE]`, usage with `stream_options.include_usage`), greedy, OpenAI
stop-string semantics (the stop string is not sent), `continue_final_message` as vLLM has it.
`GET /stats` counts requests and clients that went away mid-stream (a disconnect cancels the
generation at its next token) and generated tokens.

    python tests/remote/openai_server.py [--port 0] [--name NAME]   # prints "PORT <n>" when ready
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wren.errors import GenerationCancelled
from wren.model.generation import TransformersBackend
from wren.model.loading import load_model
from wren.types import CancelToken, GenerationParams


class State:
    def __init__(self, backend: TransformersBackend, name: str) -> None:
        self.backend, self.name = backend, name
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "completed": 0, "disconnects": 0, "tokens": 0}

    def bump(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n


STATE: State


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    hits = [i for i in (text.find(s) for s in stops if s) if i != -1]
    return (text[: min(hits)], True) if hits else (text, False)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": STATE.name, "object": "model"}]})
        elif self.path == "/stats":
            with STATE.lock:
                self._json(200, dict(STATE.stats))
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        if self.path == "/tokenize":
            text = body.get("prompt", body.get("content", ""))
            ids = STATE.backend.tokenize(text)
            self._json(200, {"tokens": ids, "count": len(ids)})
            return
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if body.get("model") != STATE.name:
            self._json(
                404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
            )
            return
        chat = self.path.endswith("chat/completions")
        if chat:
            messages = list(body["messages"])
            opening = ""
            if body.get("continue_final_message") and messages[-1]["role"] == "assistant":
                opening = messages.pop()["content"]
            prompt = STATE.backend.apply_chat_template(messages) + opening
        else:
            prompt = body["prompt"]
        STATE.bump("requests")
        stops = [s for s in body.get("stop") or [] if s]
        params = GenerationParams(
            max_new_tokens=int(body.get("max_tokens", 16)), stop=tuple(stops), time_budget_s=600
        )
        self._stream(prompt, params, chat, bool(body.get("stream")))

    def _event(self, payload: Any) -> None:
        data = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        self.wfile.write(data + b"\n\n")
        self.wfile.flush()

    def _chunk(self, text: str, finish: str | None, chat: bool) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        kind = "chat.completion.chunk" if chat else "text_completion"
        return {"object": kind, "model": STATE.name, "choices": [choice]}

    def _stream(self, prompt: str, params: GenerationParams, chat: bool, stream: bool) -> None:
        cancel = CancelToken()
        sent = 0
        hold = max((len(s) for s in params.stop), default=1) - 1  # a stop may still be forming

        def on_text(text: str) -> None:
            nonlocal sent
            STATE.bump("tokens")  # one call per generated token
            if not stream or cancel.cancelled:
                return
            visible, hit = _cut_at_stop(text, list(params.stop))
            upto = len(visible) if hit else max(sent, len(visible) - hold)
            if upto > sent:
                try:
                    self._event(self._chunk(visible[sent:upto], None, chat))
                except OSError:
                    STATE.bump("disconnects")
                    cancel.cancel("client went away")
                    return
                sent = upto
            if hit:
                cancel.cancel("stop")

        if stream:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
        try:
            result = STATE.backend.generate(prompt, params, cancel, None, on_text)
            text, finish = result.text, {"max_tokens": "length"}.get(result.stop_reason, "stop")
            tokens = result.tokens
        except GenerationCancelled:
            if cancel.reason != "stop":
                return
            text, finish, tokens = "", "stop", 0
        STATE.bump("completed")
        usage = {"prompt_tokens": len(STATE.backend.tokenize(prompt)), "completion_tokens": tokens}
        visible, _ = _cut_at_stop(text, list(params.stop)) if text else ("", False)
        if not stream:
            choice = (
                {"message": {"role": "assistant", "content": visible}}
                if chat
                else {"text": visible}
            )
            self._json(
                200, {"choices": [{"index": 0, "finish_reason": finish, **choice}], "usage": usage}
            )
            return
        try:
            if len(visible) > sent:
                self._event(self._chunk(visible[sent:], None, chat))
            self._event(self._chunk("", finish, chat))
            self._event({"object": "usage", "model": STATE.name, "choices": [], "usage": usage})
            self._event(b"[DONE]")
        except OSError:
            STATE.bump("disconnects")


def main() -> None:
    global STATE
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    loaded = load_model("", "cpu", "none")
    STATE = State(TransformersBackend(loaded), args.name or loaded.name)
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    print(f"PORT {httpd.server_address[1]}", flush=True)
    print(f"MODEL {STATE.name}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
