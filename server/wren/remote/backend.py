"""`RemoteBackend`: the engine's `Backend` over an OpenAI-compatible inference server.

Only token generation moves to the server. Wren still builds the prompt (its own layout and
the card's fill-in-the-middle template, sent raw to `/v1/completions`), and trigger, clean-up,
verification and "why no completion" details stay in the language server. Chat cards send
their messages to `/v1/chat/completions` instead (the server applies the chat template).

Generation streams (`stream: true`). A watcher closes the connection as soon as the request is
cancelled or its time budget is spent, so a superseded request stops costing the server at
once. What a remote backend cannot do (KV-cache slots, prefill ahead of a request, branch
and score candidates for reranking) it does not offer: the engine checks for those.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from wren.cards import ModelCard, load_cards, match_card
from wren.errors import GenerationCancelled, GenerationError, ModelLoadError
from wren.remote.endpoint import Endpoint, api_key, parse_endpoint
from wren.remote.http import ServerAnsweredError, Stream, open_request, request_json
from wren.remote.tokens import Tokens
from wren.types import CancelToken, GenerationParams, GenerationResult

log = logging.getLogger(__name__)

# A chat prompt travels from `apply_chat_template` to `generate` as the messages themselves,
# between these markers; text after the closing marker opens the assistant's answer.
CHAT_OPEN = "\x00wren-chat\x00"
CHAT_CLOSE = "\x00end-chat\x00"

FIRST_BYTE_TIMEOUT_S = 30.0  # longest wait for the server's first answer to a request
WATCH_INTERVAL_S = 0.02


class RemoteModelSettings(Protocol):
    """The `wren.model.*` settings the remote backend reads (config.ModelSettings has them)."""

    @property
    def path(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def servedModel(self) -> str: ...
    @property
    def endpointCard(self) -> str: ...
    @property
    def apiKeyEnv(self) -> str: ...
    @property
    def allowInsecureEndpoint(self) -> bool: ...


def served_models(ep: Endpoint, key: str, timeout: float = 10.0) -> list[str]:
    """The model names `/v1/models` lists."""
    data = request_json(ep, "GET", "/v1/models", None, key, timeout)
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise GenerationError(
            f"The server at {ep.url} answered /v1/models without a model list; is it an "
            "OpenAI-compatible server?"
        )
    return [str(e.get("id")) for e in entries if isinstance(e, dict) and e.get("id")]


def choose_card(setting: str, served: str, special: Sequence[str]) -> ModelCard:
    """The card named by `wren.model.endpointCard`, or ("auto") the one matching the name."""
    if setting and setting != "auto":
        for card in load_cards():
            if card.family == setting:
                return card
        families = ", ".join(sorted(c.family for c in load_cards()))
        raise ModelLoadError(
            f"wren.model.endpointCard {setting!r} is not a known model card ({families}, or auto)."
        )
    return match_card(served, special)


def drop_repeated_opening(text: str, opening: str) -> str:
    """The answer without a repeat of the assistant text it was asked to continue.

    Wren opens a chat answer itself (a code fence) and asks the server to continue it
    (`continue_final_message`). A server that ignores that field (llama-cpp-python's) closes
    the opened message and starts a new answer, which usually opens the same fence again:
    that repeat is not part of the continuation. While the answer could still become the
    repeat, nothing is shown yet.
    """
    head = opening.strip()
    if not head:
        return text
    body = text.lstrip()
    if head.startswith(body):
        return ""  # empty so far, or still forming the repeat
    if body.startswith(head):
        rest = body[len(head) :]
        return rest[1:] if rest.startswith("\n") else rest
    return text


class RemoteBackend:
    """Generation on an OpenAI-compatible server (vLLM, TGI, llama.cpp's server, Ollama)."""

    def __init__(
        self,
        ep: Endpoint,
        served_model: str,
        card: ModelCard,
        tokens: Tokens,
        key: str = "",
        first_byte_timeout_s: float = FIRST_BYTE_TIMEOUT_S,
    ) -> None:
        self.ep = ep
        self.name = served_model
        self.device = f"remote {ep.url}"
        self.card = card
        self.tokens = tokens
        self._key = key
        self.first_byte_timeout_s = first_byte_timeout_s

    @classmethod
    def connect(cls, settings: RemoteModelSettings) -> RemoteBackend:
        """Check the endpoint and the served model; a ModelLoadError says what is wrong."""
        ep = parse_endpoint(settings.endpoint, settings.allowInsecureEndpoint)
        key = api_key(settings.apiKeyEnv)
        try:
            names = served_models(ep, key)
        except GenerationError as err:
            raise ModelLoadError(str(err)) from err
        served = settings.servedModel
        if not served:
            if len(names) != 1:
                raise ModelLoadError(
                    f"The server at {ep.url} serves {names or 'no models'}; set "
                    "wren.model.servedModel to the one Wren should use."
                )
            served = names[0]
        elif served not in names:
            raise ModelLoadError(
                f"The server at {ep.url} serves {names or 'no models'}, not {served!r} "
                "(wren.model.servedModel)."
            )
        tokens = Tokens(ep, key, served, settings.path)
        card = choose_card(settings.endpointCard, served, tokens.special_tokens())
        log.info(
            "remote model %s at %s: card %s, tokens %s", served, ep.url, card.family, tokens.mode
        )
        return cls(ep, served, card, tokens, key)

    # -- tokens ---------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return self.tokens.tokenize(text)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokens.detokenize(ids)

    def special_tokens(self) -> list[str]:
        fim = [t for t in self.card.fim_template.replace("{prefix}", "\n").split("\n") if t]
        fim = [p for t in fim for p in t.replace("{suffix}", "\n").split("\n") if p]
        return sorted(set(self.tokens.special_tokens()) | set(self.card.stop) | set(fim))

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The messages themselves: the server applies its own chat template."""
        return CHAT_OPEN + json.dumps(messages) + CHAT_CLOSE

    # -- generation -----------------------------------------------------------------------

    def _request(self, prompt: str, params: GenerationParams) -> tuple[str, dict[str, Any], str]:
        """The route, the JSON body, and the text the answer must continue (chat)."""
        payload: dict[str, Any] = {
            "model": self.name,
            "max_tokens": params.max_new_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        if prompt.startswith(CHAT_OPEN) and CHAT_CLOSE in prompt:
            head, _, opening = prompt[len(CHAT_OPEN) :].partition(CHAT_CLOSE)
            messages = json.loads(head)
            if opening:  # the answer starts with this text: the server continues it
                messages.append({"role": "assistant", "content": opening})
                payload["continue_final_message"] = True
                payload["add_generation_prompt"] = False
            payload["messages"] = messages
            return "/v1/chat/completions", payload, opening
        payload["prompt"] = prompt
        return "/v1/completions", payload, ""

    def generate(
        self,
        prompt: str,
        params: GenerationParams,
        cancel: CancelToken,
        cache_slot: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GenerationResult:
        path, payload, opening = self._request(prompt, params)
        t0 = time.perf_counter()
        deadline = t0 + params.time_budget_s
        conns: list[tuple[http.client.HTTPConnection, socket.socket | None]] = []
        stream: Stream | None = None
        done = threading.Event()
        why: list[str] = []  # why the watcher closed the connection: "cancel" | "time"

        def watch() -> None:
            while not done.wait(WATCH_INTERVAL_S):
                if cancel.cancelled or time.perf_counter() > deadline:
                    why.append("cancel" if cancel.cancelled else "time")
                    if stream is not None:
                        stream.abort()
                    elif conns:
                        Stream(self.ep, conns[-1][0], None, conns[-1][1]).abort()
                    return

        watcher = threading.Thread(target=watch, name="wren-remote-watch", daemon=True)
        watcher.start()
        received, text, tokens, usage, finish = "", "", 0, {}, ""
        first_at: float | None = None
        stop_reason = ""
        try:
            try:
                conn, resp = open_request(
                    self.ep,
                    "POST",
                    path,
                    payload,
                    self._key,
                    self.first_byte_timeout_s,
                    cancel_check=lambda: bool(why) or cancel.cancelled,
                    on_connection=lambda c: conns.append((c, c.sock)),
                )
            except ServerAnsweredError as err:
                if err.status == 404:
                    self._explain_missing_model(err)
                raise
            except GenerationCancelled:
                if why == ["time"]:
                    raise self._slow_error(params) from None
                raise GenerationCancelled(cancel.reason) from None
            stream = Stream(self.ep, conn, resp, conns[-1][1])
            if why:  # the watcher fired while the request was being sent
                stream.abort()
            try:
                for event in stream.events():
                    piece, fin = self._piece(event)
                    if isinstance(event.get("usage"), dict):
                        usage = event["usage"]
                    if piece:
                        if first_at is None:
                            first_at = time.perf_counter()
                        received += piece
                        tokens += 1
                        text = drop_repeated_opening(received, opening)
                        if on_text is not None and text:
                            on_text(text)
                    if fin:
                        finish = fin
                    if any(s in text for s in params.stop):
                        stop_reason = "stop"
                    elif params.ends_line(text):
                        stop_reason = "newline"
                    if stop_reason:
                        break
                    cancel.raise_if_cancelled()
            finally:
                if stop_reason or why:
                    stream.abort()  # tell the server at once: it stops generating
                stream.close()
            if why == ["cancel"] or cancel.cancelled:
                raise GenerationCancelled(cancel.reason)
            if not (stop_reason or why or finish or stream.done):
                raise GenerationError(
                    f"The inference server at {self.ep.url} closed the connection before the "
                    "answer was complete (did it stop or crash?)."
                )
            if not (stop_reason or why or finish):
                # `[DONE]` with no finish reason: the server cut the answer short.
                # llama-cpp-python's server does this to a running answer whenever another
                # request arrives, unless it runs with `--interrupt_requests false`.
                raise GenerationError(
                    f"The inference server at {self.ep.url} ended the answer early without a "
                    "finish reason: another request interrupted it (llama-cpp-python's server "
                    "needs --interrupt_requests false to be shared)."
                )
            if why == ["time"]:
                if not text:
                    raise self._slow_error(params)
                stop_reason = "time"
        finally:
            done.set()
        if not stop_reason:
            stop_reason = {"length": "max_tokens"}.get(finish, "eos")
        t2 = time.perf_counter()
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        if not prompt_tokens and path == "/v1/completions":
            # No usage in the stream (llama-cpp-python): the exact count when it is free.
            prompt_tokens = self.tokens.count_if_cheap(prompt)
        details = usage.get("prompt_tokens_details")
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        return GenerationResult(
            text=text,
            tokens=int(usage.get("completion_tokens") or tokens),
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            prefill_s=(first_at or t2) - t0,
            decode_s=t2 - (first_at or t2),
            stop_reason=stop_reason,
        )

    def _slow_error(self, params: GenerationParams) -> GenerationError:
        return GenerationError(
            f"The inference server at {self.ep.url} sent nothing within the time budget "
            f"({params.time_budget_s:g} s); it is overloaded or too slow for this model."
        )

    def _piece(self, event: dict[str, Any]) -> tuple[str, str]:
        """The text and finish reason in one stream event (completions or chat)."""
        if "error" in event:
            err = event["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise GenerationError(f"The inference server at {self.ep.url} failed: {msg}")
        choices = event.get("choices")
        if not isinstance(choices, list):
            raise GenerationError(
                f"The inference server at {self.ep.url} sent a malformed stream (an event "
                "without `choices`)."
            )
        if not choices:
            return "", ""  # the usage-only last event
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta")
        piece = delta.get("content") if isinstance(delta, dict) else choice.get("text")
        return (piece if isinstance(piece, str) else ""), str(choice.get("finish_reason") or "")

    def _explain_missing_model(self, err: ServerAnsweredError) -> None:
        """A 404 after a successful start: say when the server now serves another model."""
        try:
            names = served_models(self.ep, self._key, 5.0)
        except GenerationError:
            return
        if self.name not in names:
            raise GenerationError(
                f"The server at {self.ep.url} now serves {names or 'no models'}, not "
                f"{self.name!r}; reload Wren or set wren.model.servedModel."
            ) from err

    def score_continuations(
        self, prompt: str, continuations: Sequence[str], cancel: CancelToken
    ) -> list[float]:
        raise NotImplementedError(
            "scoring continuations needs log-probabilities the remote backend does not fetch"
        )
