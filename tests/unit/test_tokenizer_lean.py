"""The lean serving tokenizer (model/tokenizer.py) against transformers' tokenizer, real model.

Same ids, offsets and decoded text on real code (stdlib modules) and on awkward text (emoji,
CJK, CRLF, tabs, special tokens inside text, a lone surrogate through `tokenizable`); same
vocabulary, special tokens and chat rendering. A damaged or missing cache entry is rebuilt,
and a lean start of the server's load path never imports transformers.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wren.model import tokenizer as lean_tokenizer
from wren.model.loading import _tokenizer, converted_dir, load_model, resolve_source
from wren.model.tokenizable import tokenizable
from wren.model.tokenizer import LeanTokenizer

pytestmark = pytest.mark.model

MODULES = ["json.decoder", "textwrap", "asyncio.base_events", "dataclasses", "argparse", "string"]

AWKWARD = [
    "",
    " ",
    "\n\n\n",
    "x = 1\r\ny = 2\r\n\tz = 3\r\n",
    "\t\tif a:\n\t\t\treturn  b  \n",
    "# 你好，世界 — こんにちは 안녕하세요\nprint('héllo wörld')\n",
    "emoji = '\U0001f600\U0001f44d\U0001f3fd \u2764\ufe0f "
    "\U0001f468\u200d\U0001f469\u200d\U0001f467'\n",
    "<|im_start|>user\nhi<|im_end|>\n<filename>a.py\n<file_sep>x<|endoftext|>",
    "<fim_prefix>def f():\n<fim_suffix>\n<fim_middle>",
    tokenizable('s = "\ud800" + "\udfff"'),
    "   leading spaces and trailing   ",
    "\u00a0non-breaking\u2009thin\u3000ideographic space",
    "zero\u200bwidth and \ufeffBOM",
    "mixed\r\n\r\nCRLF\rCR\n",
    "a" * 3000,
]

CHATS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Explain this code:\n```python\nx = [i * i for i in y]\n```"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Fix it\r\n\tplease \U0001f600"},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "And {{ this }} {% raw %}?"},
    ],
]


def corpus() -> list[str]:
    texts = []
    for name in MODULES:
        __import__(name)
        texts.append(inspect.getsource(sys.modules[name]))
    return texts + AWKWARD


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, LeanTokenizer]:
    hf = _tokenizer(converted_dir(resolve_source("")))
    target = tmp_path_factory.mktemp("tok") / "entry"
    assert lean_tokenizer.write_cache(hf, target)
    lean = lean_tokenizer.load_cache(target)
    assert lean is not None
    return hf, lean


def test_same_ids_offsets_and_decoded_text_as_transformers(pair: tuple[Any, LeanTokenizer]) -> None:
    hf, lean = pair
    total = 0
    for text in corpus():
        for special in (False, True):
            want = hf(text, add_special_tokens=special, return_offsets_mapping=True)
            got = lean(text, add_special_tokens=special, return_offsets_mapping=True)
            assert got["input_ids"] == list(want["input_ids"]), text[:60]
            assert got["offset_mapping"] == [tuple(o) for o in want["offset_mapping"]]
        ids = got["input_ids"]
        total += len(ids)
        for skip in (False, True):
            assert lean.decode(ids, skip_special_tokens=skip) == hf.decode(
                ids, skip_special_tokens=skip
            )
        # Prefixes cut anywhere, also inside a multi-byte character's tokens.
        for cut in range(0, len(ids), max(1, len(ids) // 7)):
            assert lean.decode(ids[:cut]) == hf.decode(ids[:cut])
        assert lean.convert_ids_to_tokens(ids[:50]) == hf.convert_ids_to_tokens(ids[:50])
    assert total > 30_000  # the stdlib modules really were tokenized


def test_same_vocabulary_special_tokens_and_ids(pair: tuple[Any, LeanTokenizer]) -> None:
    hf, lean = pair
    assert lean.get_vocab() == hf.get_vocab()
    assert len(lean) == len(hf)
    assert lean.all_special_tokens == hf.all_special_tokens
    assert lean.special_tokens_map == hf.special_tokens_map
    for attr in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "eos_token"):
        assert getattr(lean, attr) == getattr(hf, attr), attr
    assert lean.added_tokens_decoder == {i: str(t) for i, t in hf.added_tokens_decoder.items()}
    assert lean.convert_tokens_to_ids(["<|im_end|>", "def"]) == hf.convert_tokens_to_ids(
        ["<|im_end|>", "def"]
    )
    assert lean.eos_token_id is not None


def test_same_chat_rendering(pair: tuple[Any, LeanTokenizer]) -> None:
    hf, lean = pair
    assert lean.chat_template == hf.chat_template and lean.chat_template
    for chat in CHATS:
        for gen in (False, True):
            want = hf.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
            got = lean.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)
            assert got == want
            ids = lean.apply_chat_template(chat, add_generation_prompt=gen)
            assert ids == lean.encode(want, add_special_tokens=False)


def test_template_features_transformers_offers() -> None:
    source = (
        "{% for m in messages %}{% if m.role == 'skip' %}{% continue %}{% endif %}"
        "{% generation %}{{ m | tojson }}{% endgeneration %}\n{% endfor %}"
        "{% if not messages %}{{ raise_exception('no messages') }}{% endif %}"
    )
    tpl = lean_tokenizer.compile_chat_template(source)
    messages = [{"role": "user", "content": "é<>"}, {"role": "skip"}]
    out = tpl.render(messages=messages)
    assert out == '{"role": "user", "content": "é<>"}'  # trim_blocks ate the newline
    from transformers.utils.chat_template_utils import _compile_jinja_template

    assert out == _compile_jinja_template(source).render(messages=messages)
    import jinja2

    with pytest.raises(jinja2.exceptions.TemplateError, match="no messages"):
        tpl.render(messages=[])
    with pytest.raises(jinja2.exceptions.SecurityError):  # sandboxed like transformers'
        lean_tokenizer.compile_chat_template("{{ messages.__class__.__mro__ }}").render(messages=[])


def test_damaged_or_foreign_cache_entries_are_dropped(
    pair: tuple[Any, LeanTokenizer], tmp_path: Path
) -> None:
    hf, _ = pair
    target = tmp_path / "entry"
    assert lean_tokenizer.load_cache(target) is None  # missing

    assert lean_tokenizer.write_cache(hf, target)
    path = target / lean_tokenizer.TOKENIZER_FILE
    text = path.read_text(encoding="utf-8")
    edited = text.replace('"add_prefix_space":false', '"add_prefix_space":true', 1)
    assert edited != text
    from tokenizers import Tokenizer

    Tokenizer.from_str(edited)  # still a valid tokenizer, only a different one
    path.write_text(edited, encoding="utf-8")
    assert lean_tokenizer.load_cache(target) is None
    assert not target.exists()

    assert lean_tokenizer.write_cache(hf, target)
    path.write_text(text[: len(text) // 2], encoding="utf-8")  # truncated
    assert lean_tokenizer.load_cache(target) is None and not target.exists()

    assert lean_tokenizer.write_cache(hf, target)
    meta = json.loads((target / lean_tokenizer.META_FILE).read_text())
    meta["version"] = "0"
    (target / lean_tokenizer.META_FILE).write_text(json.dumps(meta))
    assert lean_tokenizer.load_cache(target) is None and not target.exists()


def test_a_tokenizer_without_a_rust_backend_is_not_cached(tmp_path: Path) -> None:
    class Slow:  # a tokenizer without a Rust backend
        chat_template = None

    assert not lean_tokenizer.write_cache(Slow(), tmp_path / "slow")
    assert not (tmp_path / "slow").exists()


def test_lean_load_uses_the_cache_and_rebuilds_a_damaged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "tok"
    monkeypatch.setattr(lean_tokenizer, "tokenizer_cache_dir", lambda _key: target)
    first = load_model("", lean_only=True)  # nothing cached: transformers', then cached
    assert target.is_dir()
    second = load_model("", lean_only=True)
    if second.lean is None:
        pytest.skip("no packed decoder cached on this machine (first start not run yet)")
    assert isinstance(second.tokenizer, LeanTokenizer)
    assert second.card == first.card
    (target / lean_tokenizer.TOKENIZER_FILE).write_text("{", encoding="utf-8")
    third = load_model("", lean_only=True)
    assert not isinstance(third.tokenizer, LeanTokenizer)  # rebuilt from transformers'
    assert isinstance(load_model("", lean_only=True).tokenizer, LeanTokenizer)


LEAN_START = textwrap.dedent(
    """
    import sys
    import wren.cli
    from wren.lsp.app import create_server
    create_server()
    # What lsp/lifecycle.py's loading thread does.
    from wren.engine.completion import CompletionEngine
    from wren.model.generation import TransformersBackend
    from wren.model.loading import load_model
    from wren.model.tokenizer import LeanTokenizer
    from wren.model.tune.adapters import choose_adapter
    loaded = load_model("", lean_only=choose_adapter("", None, True).path is None)
    if loaded.lean is None:
        print("NOT-LEAN")  # no packed decoder cached yet
        sys.exit(0)
    backend = TransformersBackend(loaded)
    backend.warm_up()
    CompletionEngine(backend, loaded.card)
    print(backend.detokenize(backend.tokenize("def f():")))
    print(isinstance(loaded.tokenizer, LeanTokenizer))
    print(sorted(m for m in sys.modules if m.split(".")[0] == "transformers"))
    """
)


def test_a_lean_start_never_imports_transformers() -> None:
    load_model("", lean_only=True)  # writes the tokenizer cache if missing
    out = subprocess.run(
        [sys.executable, "-c", LEAN_START], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    if out.stdout.startswith("NOT-LEAN"):
        pytest.skip("no packed decoder cached on this machine (first start not run yet)")
    assert out.stdout.splitlines() == ["def f():", "True", "[]"]
