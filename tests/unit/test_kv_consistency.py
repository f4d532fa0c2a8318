"""KV slots stay consistent when jobs run inside other jobs' checkpoints (real model).

A batch or background job's cancel checkpoint runs more urgent jobs on the same thread: a
completion inside an explanation, an explanation inside a background prefill. A nested job
may take over the slot the paused job is filling; when the paused job goes on it must not
write into that changed cache (and a cancelled one must stop). Whatever the interleaving,
every completion must equal the same request served from an empty cache.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from wren.engine.scheduler import BACKGROUND, BATCH, INTERACTIVE, Scheduler
from wren.errors import GenerationCancelled
from wren.model.generation import PREFILL_CHUNK, CacheSlot, TransformersBackend
from wren.model.loading import LoadedModel, load_model
from wren.types import CancelToken, GenerationParams

pytestmark = pytest.mark.model

COMPLETE = GenerationParams(max_new_tokens=8, time_budget_s=120.0)
EXPLAIN = GenerationParams(max_new_tokens=12, time_budget_s=120.0)

INVENTORY = '''"""Stock keeping for a small shop."""

import json
from dataclasses import dataclass


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 0


class Inventory:
    def __init__(self, path):
        self.path = path
        self.items = {}

    def load(self):
        with open(self.path) as fh:
            for row in json.load(fh):
                item = Item(row["name"], row["price"], row.get("quantity", 0))
                self.items[item.name] = item

    def save(self):
        rows = [vars(item) for item in self.items.values()]
        with open(self.path, "w") as fh:
            json.dump(rows, fh, indent=2)

    def total_value(self):
        total = 0.0
        for item in self.items.values():
            total += '''

GEOMETRY = '''import math


def distance(a, b):
    """Euclidean distance between two points given as (x, y) tuples."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def polygon_area(points):
    """Shoelace formula; points in order, first not repeated at the end."""
    area = 0.0
    for i, (x1, y1) in enumerate(points):
        x2, y2 = points[(i + 1) % len(points)]
        area += x1 * y2 - x2 * y1
    return abs(area) / 2


def perimeter(points):
    total = 0.0
    for i, point in enumerate(points):
        total += distance(point, points[(i + 1) % len(points)])
    return total


def bounding_box(points):
    xs = [x for x, _ in points]
    ys = '''


def variants(text: str, top: tuple[str, str], rename: tuple[str, str]) -> list[str]:
    """The document as the user edits it: as opened, edited in its first lines, a name
    renamed everywhere (first seen a few lines down), and a few characters typed at the end.
    All but the last pair differ early, so one version's cache is wrong for another."""
    assert text.count(top[0]) == 1 and text.count(rename[0]) >= 2
    return [
        text,
        text.replace(top[0], top[1]),
        text.replace(rename[0], rename[1]),
        text + "item",
    ]


DOCS = {
    "file:///kv/inventory.py": variants(
        INVENTORY, ("for a small shop", "for a bakery"), ("items", "products")
    ),
    "file:///kv/geometry.py": variants(
        GEOMETRY, ("import math\n", "import math\nimport cmath\n"), ("points", "vertices")
    ),
}
EXPLAIN_PROMPTS = [
    "<|im_start|>user\nExplain what this does:\n" + INVENTORY[:400] + "<|im_end|>\n",
    "<|im_start|>user\nExplain what this does:\n" + GEOMETRY[:400] + "<|im_end|>\n",
]


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_model()


@pytest.fixture(scope="module")
def backend(loaded: LoadedModel) -> TransformersBackend:
    return TransformersBackend(loaded)


class Fresh:
    """Plain greedy from an empty cache, memoised per prompt."""

    def __init__(self, backend: TransformersBackend) -> None:
        self.backend = backend
        self.memo: dict[tuple[str, int], str] = {}

    def __call__(self, prompt: str, params: GenerationParams = COMPLETE) -> str:
        key = (prompt, params.max_new_tokens)
        if key not in self.memo:
            result = self.backend.generate(prompt, params, CancelToken(), cache_slot=None)
            self.memo[key] = result.text
        return self.memo[key]


@pytest.fixture(scope="module")
def fresh(backend: TransformersBackend) -> Fresh:
    return Fresh(backend)


def test_prompts_span_several_prefill_chunks(backend: TransformersBackend) -> None:
    for texts in DOCS.values():
        assert all(len(backend.tokenize(t)) > 3 * PREFILL_CHUNK for t in texts)
    assert backend.lean is not None  # `assert_slot_matches_its_tokens` reads its KVCache


def test_a_prompt_position_is_the_same_however_the_prompt_was_fed(
    backend: TransformersBackend,
) -> None:
    """KV reuse is exact: a position's keys, values and logits do not depend on how the prompt
    reached it (one prefill in chunks, other chunk sizes, keystroke by keystroke, or as
    decode rows), so a warm request answers as a cold one does."""
    lean = backend.lean
    assert lean is not None
    ids = backend.tokenize(next(iter(DOCS.values()))[0])[: 3 * PREFILL_CHUNK + 5]

    def feed(chunks: list[int], prompt: bool) -> tuple[Any, torch.Tensor]:
        cache, pos, logits = lean.new_cache(), 0, None
        for size in chunks:
            logits = lean.forward(ids[pos : pos + size], cache, prompt=prompt)
            pos += size
        assert pos == len(ids) and logits is not None
        return cache, logits

    n = len(ids)
    with torch.inference_mode():
        ref_cache, ref_logits = feed([PREFILL_CHUNK] * 3 + [5], prompt=True)
        for chunks, prompt in (
            ([7] * (n // 7) + [n % 7], True),
            ([n - 5, 1, 1, 1, 1, 1], True),
            ([n - 3, 1, 2], False),
        ):
            cache, logits = feed([c for c in chunks if c], prompt)
            assert torch.equal(logits, ref_logits), (chunks, prompt)
            assert torch.equal(cache.k[:, :, :n], ref_cache.k[:, :, :n]), (chunks, prompt)
            assert torch.equal(cache.v[:, :, :n], ref_cache.v[:, :, :n]), (chunks, prompt)


def assert_slot_matches_its_tokens(backend: TransformersBackend, name: str) -> None:
    """The slot's reusable part (its first `prompt_len` positions) holds the keys and values
    of its own `tokens`: the same, bit for bit up to rounding, as a prefill from scratch."""
    slot = backend._slots.get(name)
    if slot is None or slot.past is None or slot.prompt_len == 0:
        return
    n = slot.prompt_len
    assert n <= len(slot.tokens), (n, len(slot.tokens))
    assert slot.past.length >= n, (slot.past.length, n)
    reference = CacheSlot()
    backend._prefill(reference, list(slot.tokens[:n]), CancelToken())
    for mine, ref in ((slot.past.k, reference.past.k), (slot.past.v, reference.past.v)):
        assert torch.allclose(mine[:, :, :n], ref[:, :, :n], atol=1e-4), (
            f"slot {name}: its cache does not hold its tokens"
        )


# -- targeted cases ------------------------------------------------------------------------


def test_cancelled_prefill_writes_nothing_after_a_nested_completion(
    backend: TransformersBackend, fresh: Fresh
) -> None:
    """A background prefill of the document as opened is paused at its second checkpoint; a
    completion on the edited document runs inside it and cancels it (as every completion
    request cancels background work). The prefill must stop without touching the slot."""
    slot = "file:///kv/targeted-cancel.py"
    opened, edited = DOCS["file:///kv/inventory.py"][0], DOCS["file:///kv/inventory.py"][1]
    backend.drop_slot(slot)
    prefill_cancel = CancelToken()
    nested: list[str] = []
    calls = 0

    def checkpoint() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            prefill_cancel.cancel("pre-empted")  # Scheduler.cancel_background
            result = backend.generate(edited, COMPLETE, CancelToken(), cache_slot=slot)
            nested.append(result.text)

    prefill_cancel.checkpoint = checkpoint
    with pytest.raises(GenerationCancelled):
        backend.prefill(opened, slot, prefill_cancel)
    assert nested == [fresh(edited)]
    assert_slot_matches_its_tokens(backend, slot)
    # The slot must still describe its cache: both prompts come out as from an empty cache.
    again = backend.generate(opened, COMPLETE, CancelToken(), cache_slot=slot)
    assert again.cached_tokens > 0
    assert again.text == fresh(opened)
    assert backend.generate(edited, COMPLETE, CancelToken(), cache_slot=slot).text == fresh(edited)


def test_prefill_that_goes_on_after_a_nested_job_plans_again(
    backend: TransformersBackend, fresh: Fresh
) -> None:
    """Not cancelled: the prefill finishes, on top of what the nested job left in the slot."""
    slot = "file:///kv/targeted-replan.py"
    opened, edited = DOCS["file:///kv/geometry.py"][0], DOCS["file:///kv/geometry.py"][2]
    backend.drop_slot(slot)
    cancel = CancelToken()
    calls = 0

    def checkpoint() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            backend.generate(edited, COMPLETE, CancelToken(), cache_slot=slot)

    cancel.checkpoint = checkpoint
    backend.prefill(opened, slot, cancel)
    assert_slot_matches_its_tokens(backend, slot)
    got = backend.generate(opened, COMPLETE, CancelToken(), cache_slot=slot)
    assert got.cached_tokens == got.prompt_tokens  # the prefill did finish the prompt
    assert got.text == fresh(opened)


def test_decoding_goes_on_correctly_when_a_nested_job_took_its_slot(
    backend: TransformersBackend, fresh: Fresh
) -> None:
    """A batch generation paused between two tokens; a nested request on the same slot."""
    slot = "file:///kv/targeted-decode.py"
    first, other = EXPLAIN_PROMPTS
    backend.drop_slot(slot)
    cancel = CancelToken()
    calls = 0

    def checkpoint() -> None:
        nonlocal calls
        calls += 1
        if calls == 8:  # the prompt's chunks are done: this is between two decoded tokens
            backend.generate(other, COMPLETE, CancelToken(), cache_slot=slot)

    cancel.checkpoint = checkpoint
    got = backend.generate(first, EXPLAIN, cancel, cache_slot=slot)
    assert calls > 8
    assert got.text == fresh(first, EXPLAIN)
    assert_slot_matches_its_tokens(backend, slot)
    assert backend.generate(other, COMPLETE, CancelToken(), cache_slot=slot).text == fresh(other)


# -- randomized interleavings through the real scheduler -----------------------------------

ROUNDS = 5
NESTED_PER_ROUND = 3


@dataclass
class Interleaving:
    """Jobs submitted from inside checkpoints, chosen by a seeded random generator, so a run
    is the same every time (everything but the first jobs is submitted on the worker)."""

    sched: Scheduler
    backend: TransformersBackend
    rng: random.Random
    budget: int
    futures: list[Future[Any]] = field(default_factory=list)
    tokens: list[CancelToken] = field(default_factory=list)
    completions: list[tuple[str, Future[Any]]] = field(default_factory=list)
    explains: list[tuple[str, Future[Any]]] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)

    def _submit(
        self, fn: Callable[[CancelToken], Any], priority: int, key: str | None
    ) -> Future[Any]:
        self.budget -= 1
        future, token = self.sched.submit(fn, priority, key)
        self.futures.append(future)
        self.tokens.append(token)
        return future

    def _paused_here(self, cancel: CancelToken, slot: str) -> None:
        """Wrap the scheduler's checkpoint: maybe submit work, then let it run nested."""
        run_urgent = cancel.checkpoint

        def checkpoint() -> None:
            self.act(slot)
            run_urgent()

        cancel.checkpoint = checkpoint

    def prefill(self, uri: str, prompt: str) -> None:
        def job(cancel: CancelToken) -> Any:
            self._paused_here(cancel, uri)
            return self.backend.prefill(prompt, uri, cancel, max_new_tokens=COMPLETE.max_new_tokens)

        self.trace.append(f"prefill {uri[-12:]} v{DOCS[uri].index(prompt)}")
        self._submit(job, BACKGROUND, f"prefill:{uri}")

    def complete(self, uri: str, prompt: str) -> None:
        def job(cancel: CancelToken) -> str:
            # Whatever ran before left the slot describing its own cache.
            assert_slot_matches_its_tokens(self.backend, uri)
            return self.backend.generate(prompt, COMPLETE, cancel, cache_slot=uri).text

        self.sched.cancel_background()  # what the completion handler does first
        fut = self._submit(job, INTERACTIVE, f"complete:{uri}")
        self.trace.append(f"complete {uri[-12:]} v{DOCS[uri].index(prompt)}")
        self.completions.append((prompt, fut))

    def explain(self, prompt: str) -> None:
        def job(cancel: CancelToken) -> str:
            self._paused_here(cancel, "actions")
            return self.backend.generate(prompt, EXPLAIN, cancel, cache_slot="actions").text

        self.trace.append("explain")
        self.explains.append((prompt, self._submit(job, BATCH, None)))

    def act(self, paused_slot: str) -> None:
        """At a checkpoint of a job filling `paused_slot`: maybe submit or cancel work. A
        completion goes to the paused job's own document more often than not (the case
        where a nested job takes over the slot under the paused one)."""
        if self.budget <= 0:
            return
        uri = self.rng.choice(sorted(DOCS))
        if paused_slot in DOCS and self.rng.random() < 0.7:
            uri = paused_slot
        prompt = self.rng.choice(DOCS[uri])
        r = self.rng.random()
        if r < 0.45:
            self.complete(uri, prompt)
        elif r < 0.55:
            self.explain(self.rng.choice(EXPLAIN_PROMPTS))
        elif r < 0.65:
            self.prefill(uri, prompt)
        elif r < 0.7 and self.tokens:
            self.rng.choice(self.tokens).cancel("cancelled by the editor")
            self.trace.append("cancel")

    def wait(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        seen = -1
        while seen != len(self.futures):
            seen = len(self.futures)
            for fut in list(self.futures):
                with contextlib.suppress(GenerationCancelled):
                    fut.result(max(1.0, deadline - time.monotonic()))


@pytest.mark.parametrize("seed", [7])
def test_random_interleavings_leave_every_completion_as_from_an_empty_cache(
    backend: TransformersBackend, fresh: Fresh, seed: int
) -> None:
    """Rounds of background prefills (sometimes an explanation); at their checkpoints the
    driver submits completions (mostly for the paused prefill's own document, cancelling
    background work as the completion handler does), explanations, prefills and cancels."""
    backend.drop_caches()
    sched = Scheduler()
    rng = random.Random(seed)
    run = Interleaving(sched, backend, rng, budget=0)
    for _ in range(ROUNDS):
        gate = threading.Event()
        sched.submit(lambda c, g=gate: g.wait(30), INTERACTIVE)  # hold the worker: we queue
        for _ in range(rng.randint(1, 2)):
            uri = rng.choice(sorted(DOCS))
            run.prefill(uri, rng.choice(DOCS[uri]))
        if rng.random() < 0.3:
            run.explain(rng.choice(EXPLAIN_PROMPTS))
        run.budget = NESTED_PER_ROUND
        gate.set()
        run.wait()
    sched.close()
    nested = sum(1 for _, f in run.completions if f.done() and not f.exception())
    assert nested >= 3, run.trace  # the run did interleave real work
    for prompt, fut in run.completions:
        if fut.exception() is None:
            assert fut.result() == fresh(prompt), (run.trace, prompt[-60:])
    for prompt, fut in run.explains:
        if fut.exception() is None:
            assert fut.result() == fresh(prompt, EXPLAIN), run.trace
    # What the slots hold afterwards is what they claim: their caches hold their tokens, and
    # a completion served from there equals a run from an empty cache.
    for name in [*DOCS, "actions"]:
        assert_slot_matches_its_tokens(backend, name)
    for uri, texts in DOCS.items():
        got = backend.generate(texts[0], COMPLETE, CancelToken(), cache_slot=uri)
        assert got.text == fresh(texts[0]), (run.trace, uri)
