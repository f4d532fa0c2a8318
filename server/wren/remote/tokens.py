"""Counting tokens for a remote model: a local tokenizer, the server's /tokenize, or characters.

Wren counts tokens to fit context into the prompt budget. Best is the model's own
`tokenizer.json` in a local folder (`wren.model.path` while an endpoint is set); next the
server's tokenize endpoint, memoised: `/tokenize` (llama.cpp's server, vLLM) or
`/extras/tokenize` (llama-cpp-python's server); last an estimate of 4 characters per token,
which over- or under-fills the prompt budget (logged once).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wren.errors import GenerationError
from wren.remote.endpoint import Endpoint
from wren.remote.http import request_json

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
MEMO_SIZE = 512
TOKENIZE_ROUTES = ("/tokenize", "/extras/tokenize")


class Tokens:
    """tokenize/detokenize/special tokens by the best means available."""

    def __init__(self, ep: Endpoint, key: str, model: str, folder: str = "") -> None:
        self.ep, self.key, self.model = ep, key, model
        self.local: Any = None
        self.mode = "chars"
        self._memo: OrderedDict[str, list[int]] = OrderedDict()
        self._special: list[str] = []
        self.route = ""  # the server's tokenize route, once one answered
        if folder and (Path(folder).expanduser() / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            self.local = Tokenizer.from_file(str(Path(folder).expanduser() / "tokenizer.json"))
            self._special = sorted(
                t.content for t in self.local.get_added_tokens_decoder().values() if t.special
            )
            self.mode = "local"
        elif self._find_route():
            self.mode = "server"
        else:
            log.warning(
                "no tokenizer for the remote model (no local tokenizer.json, no /tokenize on "
                "the server): token counts are estimated as characters/%d, so context may "
                "over- or under-fill the prompt budget",
                CHARS_PER_TOKEN,
            )

    def _find_route(self) -> bool:
        for route in TOKENIZE_ROUTES:
            self.route = route
            if self._server_tokenize("def f():") is not None:
                return True
        self.route = ""
        return False

    def _server_tokenize(self, text: str) -> list[int] | None:
        if self.route == "/extras/tokenize":  # llama-cpp-python: {"input": ...}
            payload: dict[str, Any] = {"model": self.model, "input": text}
        else:  # llama.cpp's server reads "content", vLLM "prompt"
            payload = {"model": self.model, "prompt": text, "content": text, "add_special": False}
        try:
            data = request_json(self.ep, "POST", self.route, payload, self.key, 10.0)
        except GenerationError:
            return None
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            return None
        # llama.cpp may answer pieces ({"id": .., "piece": ..}) instead of ids.
        return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]

    def tokenize(self, text: str) -> list[int]:
        if self.mode == "local":
            return list(self.local.encode(text, add_special_tokens=False).ids)
        if self.mode == "server":
            ids = self._memo.get(text)
            if ids is None:
                ids = self._server_tokenize(text)
                if ids is None:  # the server went away: estimate rather than fail a count
                    return self._estimate(text)
                self._memo[text] = ids
                while len(self._memo) > MEMO_SIZE:
                    self._memo.popitem(last=False)
            else:
                self._memo.move_to_end(text)
            return list(ids)
        return self._estimate(text)

    def count_if_cheap(self, text: str) -> int:
        """The exact token count when it costs no request (local tokenizer, memo), else 0."""
        if self.mode == "local":
            return len(self.tokenize(text))
        ids = self._memo.get(text) if self.mode == "server" else None
        return len(ids) if ids is not None else 0

    @staticmethod
    def _estimate(text: str) -> list[int]:
        return [0] * math.ceil(len(text) / CHARS_PER_TOKEN)

    def detokenize(self, ids: Sequence[int]) -> str:
        if self.mode == "local":
            return str(self.local.decode(list(ids), skip_special_tokens=False))
        raise NotImplementedError("detokenize needs a local tokenizer for a remote model")

    def special_tokens(self) -> list[str]:
        return list(self._special)
