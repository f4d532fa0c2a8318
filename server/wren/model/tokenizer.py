"""The serving tokenizer without transformers: the `tokenizers` library behind a small class.

Importing transformers costs ~2 s of a cold start (and ~60 MB resident) only to build the
tokenizer, whose work is done by the Rust `tokenizers.Tokenizer` inside it anyway. So when
`load_model` has transformers' tokenizer of a cached GGUF conversion in hand (first start,
setup, or a rebuild), it writes that tokenizer's Rust state (`tokenizer.json`) and what Wren
reads from the Python wrapper (special tokens and their ids, the chat template) beside the
packed-decoder cache; a lean start then builds a `LeanTokenizer` from them.

`LeanTokenizer` provides exactly what the serving path uses: `tok(text,
add_special_tokens=..., return_offsets_mapping=...)`, `decode`, `get_vocab`,
`convert_ids_to_tokens`, the special tokens and ids, and `apply_chat_template` rendered with
jinja2 the way transformers renders it. tests/unit/test_tokenizer_lean.py checks it against
transformers' tokenizer (ids, offsets, decoded text, chat rendering). A tokenizer whose Python
wrapper changes the text itself (transformers' `clean_up_tokenization_spaces` on a non-BPE
model, a non-`tokenizers` backend) is not cached: such a model keeps transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from wren.model.cache_dir import cache_root

log = logging.getLogger(__name__)

CACHE_VERSION = "1"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "wren-tokenizer.json"
_ID_ATTRS = ("bos", "eos", "unk", "pad")


def tokenizer_cache_dir(model_key: str) -> Path:
    """Where the lean tokenizer of the model `model_key` (its converted folder's name) goes:
    beside the packed decoder, keyed by the `tokenizers` version that wrote it."""
    import tokenizers

    key = hashlib.sha256(
        json.dumps([model_key, CACHE_VERSION, tokenizers.__version__]).encode()
    ).hexdigest()[:24]
    return cache_root() / "packed" / f"{key}.tokenizer"


class LeanTokenizer:
    """What Wren uses of a transformers tokenizer, on a `tokenizers.Tokenizer` directly."""

    def __init__(self, backend: Any, meta: dict[str, Any]) -> None:
        self._tok = backend
        self._tok.no_truncation()
        self._tok.no_padding()
        self._tok.encode_special_tokens = bool(meta.get("split_special_tokens", False))
        self.chat_template: str | None = meta.get("chat_template")
        self.special_tokens_map: dict[str, Any] = dict(meta.get("special_tokens_map") or {})
        self.all_special_tokens: list[str] = list(meta.get("all_special_tokens") or [])
        for attr in _ID_ATTRS:
            token_id = meta.get(f"{attr}_token_id")
            setattr(self, f"{attr}_token_id", None if token_id is None else int(token_id))
            setattr(self, f"{attr}_token", self.special_tokens_map.get(f"{attr}_token"))
        self.all_special_ids = [self._tok.token_to_id(t) for t in self.all_special_tokens]
        self._template: Any = None

    # The transformers attributes Wren reads, typed for mypy (set in __init__).
    bos_token_id: int | None
    eos_token_id: int | None
    unk_token_id: int | None
    pad_token_id: int | None

    @property
    def added_tokens_decoder(self) -> dict[int, str]:
        """Added tokens by id (transformers maps to `AddedToken`s, whose str is the content)."""
        return {int(i): str(t.content) for i, t in self._tok.get_added_tokens_decoder().items()}

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=False))

    def __len__(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def __call__(
        self,
        text: str,
        add_special_tokens: bool = True,
        return_offsets_mapping: bool = False,
    ) -> dict[str, list[Any]]:
        """One text -> {"input_ids", "attention_mask"[, "offset_mapping"]} as plain lists.

        Offsets are character offsets into `text`, as transformers returns them. The text must
        be encodable (see tokenizable.py)."""
        if not isinstance(text, str):
            raise TypeError(f"LeanTokenizer encodes one str, not {type(text).__name__}")
        enc = self._tok.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, list[Any]] = {
            "input_ids": list(enc.ids),
            "attention_mask": list(enc.attention_mask),
        }
        if return_offsets_mapping:
            out["offset_mapping"] = [tuple(o) for o in enc.offsets]
        return out

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self(text, add_special_tokens=add_special_tokens)["input_ids"]

    def decode(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str:
        ids = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        return str(self._tok.decode(ids, skip_special_tokens=skip_special_tokens))

    def get_vocab(self) -> dict[str, int]:
        return dict(self._tok.get_vocab(with_added_tokens=True))

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> Any:
        if isinstance(ids, int):
            return self._tok.id_to_token(ids)
        return [self._tok.id_to_token(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> Any:
        if isinstance(tokens, str):
            return self._tok.token_to_id(tokens)
        return [self._tok.token_to_id(t) for t in tokens]

    def apply_chat_template(
        self,
        messages: Sequence[dict[str, Any]],
        tokenize: bool = True,
        add_generation_prompt: bool = False,
    ) -> Any:
        """The conversation rendered by the model's chat template (ids when `tokenize`, which
        like transformers adds no special tokens beyond what the template writes)."""
        if self.chat_template is None:
            raise ValueError("this model has no chat template")
        if self._template is None:
            self._template = compile_chat_template(self.chat_template)
        chat = [_plain(m) for m in messages]
        text = str(
            self._template.render(
                messages=chat,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **_plain(self.special_tokens_map),
            )
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _plain(value: Any) -> Any:
    """Only plain JSON data reaches a template (it runs sandboxed; so does transformers')."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def compile_chat_template(source: str) -> Any:
    """A chat template compiled as transformers compiles one: a sandboxed environment with
    trim_blocks/lstrip_blocks and loop controls, `tojson` without HTML escaping,
    `raise_exception`, `strftime_now`, and `{% generation %}` blocks rendered as their body."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationBlock(jinja2.ext.Extension):
        tags = {"generation"}  # noqa: RUF012  (jinja2 declares it so)

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_body")
            return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[GenerationBlock, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


# -- the cache ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return None if value is None else str(value)


def describe(hf: Any) -> dict[str, Any] | None:
    """What the lean tokenizer needs from transformers' tokenizer `hf`, or None when it can't
    reproduce it exactly (the wrapper would change encoded or decoded text)."""
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "to_str"):
        return None  # a slow (Python) tokenizer
    cleanup = bool(getattr(hf, "clean_up_tokenization_spaces", False))
    forced = "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output"
    if cleanup and (type(backend.model).__name__ != "BPE" or getattr(hf, forced, True)):
        return None  # transformers edits the decoded text
    template = getattr(hf, "chat_template", None)
    if template is not None and not isinstance(template, str):
        return None  # several named templates
    meta: dict[str, Any] = {
        "version": CACHE_VERSION,
        "chat_template": template,
        "special_tokens_map": {k: _jsonable(v) for k, v in hf.special_tokens_map.items()},
        "all_special_tokens": [str(t) for t in hf.all_special_tokens],
        "split_special_tokens": bool(getattr(hf, "split_special_tokens", False)),
    }
    for attr in _ID_ATTRS:
        meta[f"{attr}_token_id"] = getattr(hf, f"{attr}_token_id", None)
    return meta


def write_cache(hf: Any, target: Path) -> bool:
    """Save transformers' tokenizer `hf` as a lean tokenizer in `target` (atomically); False
    (logged) when it can't or needn't be cached."""
    meta = describe(hf)
    if meta is None:
        log.info("tokenizer %s is not cached for lean loading", type(hf).__name__)
        return False
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        backend = hf.backend_tokenizer
        text = backend.to_str()
        (tmp / TOKENIZER_FILE).write_text(text, encoding="utf-8")
        meta["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        (tmp / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return True
    except (OSError, ValueError, TypeError, RuntimeError) as err:
        log.warning("could not cache the tokenizer in %s: %s", target, err)
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def load_cache(target: Path) -> LeanTokenizer | None:
    """The cached tokenizer, or None: missing, or damaged (then deleted, to be rebuilt)."""
    if not (target / META_FILE).is_file():
        return None
    try:
        from tokenizers import Tokenizer

        meta = json.loads((target / META_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("version") != CACHE_VERSION:
            raise ValueError("written by another version of Wren")
        text = (target / TOKENIZER_FILE).read_text(encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != meta.get("sha256"):
            raise ValueError(f"{TOKENIZER_FILE} does not match its checksum")
        return LeanTokenizer(Tokenizer.from_str(text), meta)
    except Exception as err:  # any unreadable cache entry: rebuild it from the model
        log.warning("cached tokenizer %s is unusable (%s); rebuilding it", target, err)
        shutil.rmtree(target, ignore_errors=True)
        return None
