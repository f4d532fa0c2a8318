"""LoRA training for `wren tune`, through peft: a plain AdamW loop over peft's model.

Bounded memory: one window (at most `window_tokens`) per step, held-out loss without
gradients. A time budget, and early stopping when held-out loss stops improving; the best
adapter seen is the one written. The result folder appears whole or not at all.

Speed on a CPU (issue 13; numbers in BENCHMARKS.md, "wren tune"):
- fp32. bf16 autocast on a CPU without native bf16 (AVX2 only) measured more than 15x
  slower per step, so CPU training stays fp32; CUDA trains in the dtype the loader chose.
- Threads: tuning is a job the user started, so it may use every core; but on a shared
  machine (or beside the editor's own server) spinning OpenMP threads on oversubscribed cores
  can be several times slower than one thread (measured 6 vs 30 tokens/s at load 9 on two
  cores). With `threads` 0 the loop times steps at every-core and at half the cores, keeps
  the faster, and checks again every `THREAD_PROBE_EVERY` steps (`WREN_THREADS` fixes it).
- No LoRA dropout: its random masks (`bernoulli_`) took 15 % of a CPU training step, and
  with it 512-token windows trained at 103 tokens/s, without at 133 (one process, 2 threads).
  A run sees each window at most twice, too few for dropout's regularization to pay.
- Learning rate: warm-up over the first steps, then a cosine decay to a tenth by the end of
  the time budget (or of the data, whichever comes first), so the last steps settle.
- Prompt + target examples (scope and docstring → body) compute the vocabulary projection
  only at the target positions (`logits_to_keep`): the prompt is context, not loss.
- `tokens_per_second` counts the tokens of training steps over the time spent in them;
  held-out scoring is reported apart (`eval_seconds`). Scoring is forward-only but not free
  (16 windows, ~25 s on two cores): it runs a quarter of the budget apart, or further apart
  when it is slow (`eval_interval`), so the budget goes to training.
"""

from __future__ import annotations

import json
import logging
import math
import random
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wren.errors import WrenError
from wren.model.threads import cores, fixed_threads, threads_for
from wren.model.tune import data as tune_data
from wren.model.tune.adapters import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    MANIFEST,
    MANIFEST_FORMAT,
    base_digest,
    workspace_adapter_dir,
    write_adapter_atomically,
)

log = logging.getLogger(__name__)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
THREAD_PROBE_STEPS = 3  # steps timed at each thread count
THREAD_PROBE_EVERY = 60  # steps between probes (the machine's load changes)
SWITCH_MARGIN = 1.25  # another thread count must be this much faster than every core
WARMUP_STEPS = 10
FINAL_LR_FRACTION = 0.1  # the cosine decay ends at this fraction of the learning rate
SCORING_SHARE = 6  # at least this many seconds of training per second of held-out scoring


class TuneError(WrenError):
    """`wren tune` cannot run here; the message says why."""


class TuneCancelled(WrenError):
    """The user stopped the tuning; nothing was written."""


@dataclass(frozen=True)
class TuneSettings:
    minutes: float = 10.0
    rank: int = 16
    alpha: int = 32
    # held-out loss after 5 minutes on click at 3e-4 / 1e-3 / 2e-3: 1.986 / 1.939 / 1.935
    learning_rate: float = 1e-3
    window_tokens: int = 512
    max_steps: int = 0  # 0: until the time budget or the data runs out
    epochs: int = 2
    eval_windows: int = 16  # held-out windows scored for loss
    eval_every_s: float = 0.0  # 0: `eval_interval` (a quarter of the budget, or longer)
    patience: int = 2  # evaluations without improvement before stopping
    heldout_percent: int = tune_data.HELDOUT_PERCENT
    seed: int = 0
    threads: int = 0  # 0: choose between every core and half of them by measured speed
    model: str = ""  # `wren.model.path`; "" = the embedded default
    device: str = "cpu"


@dataclass
class TuneProgress:
    phase: str  # "loading" | "scoring" | "training" | "writing"
    tokens: int = 0
    steps: int = 0
    loss: float | None = None  # running training loss
    heldout_loss: float | None = None
    elapsed_s: float = 0.0
    budget_s: float = 0.0


@dataclass
class TuneResult:
    folder: Path
    enabled: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Item:
    ids: list[int]
    labels: list[int]


def _encode(tokenizer: Any, ex: tune_data.Example, max_tokens: int) -> _Item | None:
    if not ex.prompt:
        ids = tokenizer(ex.target, add_special_tokens=False)["input_ids"][:max_tokens]
        return _Item(ids, list(ids)) if len(ids) >= 8 else None
    target = tokenizer(ex.target, add_special_tokens=False)["input_ids"][: max_tokens // 4]
    prompt = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
    prompt = prompt[max(0, len(prompt) - (max_tokens - len(target))) :]
    if not target or not prompt:
        return None
    return _Item(prompt + target, [-100] * len(prompt) + target)


class ThreadChooser:
    """Pick the faster of a few thread counts by timing real training steps, now and then.

    `candidates[0]` is the preferred count (every core). Each probe runs `probe_steps` steps at
    each candidate and keeps the one with the most tokens per second, unless it beats the
    preferred count by less than `SWITCH_MARGIN`: a few steps of different lengths and kinds
    time noisily (one probe of a quiet run once put 60 steps on one thread of two). On a busy
    machine two spinning threads measured 1.2-5x slower than one: the margin gives up the
    smallest of those gaps to stop near-ties from flipping a quiet run.
    Between probes the chosen count is used. A single candidate never probes.
    """

    def __init__(self, candidates: list[int], probe_steps: int, every: int) -> None:
        self.candidates = list(dict.fromkeys(c for c in candidates if c > 0)) or [1]
        self.probe_steps = probe_steps
        self.every = every
        self.chosen = self.candidates[0]
        self._probe_start = 0
        self._timed: dict[int, list[float]] = {}  # threads -> [tokens, seconds]

    def threads_for_step(self, step: int) -> int:
        if len(self.candidates) == 1:
            return self.chosen
        offset = step - self._probe_start
        span = self.probe_steps * len(self.candidates)
        if offset >= span and offset >= self.every:
            self._probe_start, offset = step, 0  # time to look again
        if offset < span:
            return self.candidates[offset // self.probe_steps]
        return self.chosen

    def record(self, step: int, threads: int, tokens: int, seconds: float) -> None:
        offset = step - self._probe_start
        span = self.probe_steps * len(self.candidates)
        if len(self.candidates) == 1 or offset >= span:
            return
        if offset == 0:
            self._timed = {}
        timed = self._timed.setdefault(threads, [0.0, 0.0])
        timed[0] += tokens
        timed[1] += seconds
        if offset == span - 1:
            rates = {n: t / s for n, (t, s) in self._timed.items() if s > 0}
            if rates:
                best = max(rates, key=lambda n: rates[n])
                preferred = self.candidates[0]
                near_tie = preferred in rates and rates[best] < SWITCH_MARGIN * rates[preferred]
                self.chosen = preferred if near_tie else best


def learning_rate_at(base: float, step: int, done: float) -> float:
    """The learning rate for `step` when `done` (0..1) of the run is behind: a linear warm-up
    over the first `WARMUP_STEPS` steps, then a cosine decay to `FINAL_LR_FRACTION` of `base`."""
    done = min(1.0, max(0.0, done))
    decay = FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * done))
    return base * min(1.0, (step + 1) / WARMUP_STEPS) * decay


def eval_interval(budget_s: float, scoring_s: float) -> float:
    """Seconds of training between held-out scorings: a quarter of the budget, and never less
    than `SCORING_SHARE` times what one scoring took, so scoring stays a small part of a run
    (an eighth of the budget spent 40 % of a 5-minute run scoring)."""
    return max(budget_s / 4, SCORING_SHARE * scoring_s)


def _step_loss(model: Any, it: _Item, device: str) -> Any:
    """Training loss of one item; the vocabulary projection only where there is a target."""
    import torch

    ids = torch.tensor([it.ids], device=device)
    if it.labels[0] != -100:  # a window: every token is a target
        return model(input_ids=ids, labels=ids, use_cache=False).loss
    first = next(i for i, label in enumerate(it.labels) if label != -100)
    keep = len(it.ids) - first + 1  # the last prompt position predicts the first target
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=keep).logits[0, :-1]
    target = torch.tensor(it.labels[first:], device=device)
    return torch.nn.functional.cross_entropy(logits.float(), target, ignore_index=-100)


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1e6 if sys.platform == "darwin" else rss / 1e3


def heldout_items(
    tokenizer: Any, files: list[tune_data.SourceFile], card_header: str, settings: TuneSettings
) -> list[_Item]:
    """Evenly spaced held-out windows (deterministic), at most `eval_windows`."""
    chars = settings.window_tokens * 3
    windows = [ex for f in files for ex in tune_data.windows(f, card_header, chars)]
    if len(windows) > settings.eval_windows:
        step = len(windows) / settings.eval_windows
        windows = [windows[int(i * step)] for i in range(settings.eval_windows)]
    items = [_encode(tokenizer, ex, settings.window_tokens) for ex in windows]
    return [it for it in items if it is not None]


def verdict(
    loss_before: float, loss_after: float, top1_before: float, top1_after: float
) -> tuple[bool, str]:
    """Whether a tuned adapter is used, and why: it must lower the held-out loss and not lower
    how often the model's first guess is the held-out code's next token (exact match, token by
    token). One that fails is kept for inspection, not used."""
    loss = f"held-out loss {loss_before:.3f} → {loss_after:.3f} nats/token"
    top1 = f"next-token exact match {top1_before:.1%} → {top1_after:.1%}"
    if loss_after >= loss_before:
        return False, f"it did not lower {loss}; kept for inspection, not used"
    if top1_after < top1_before:
        return False, f"it lowered {top1} ({loss}); kept for inspection, not used"
    return True, f"{loss}, {top1}"


def score(
    model: Any,
    items: list[_Item],
    device: str,
    cancel: Callable[[], bool],
    chooser: ThreadChooser | None = None,
) -> tuple[float, float]:
    """Mean loss per target token and top-1 next-token accuracy over `items`.

    With a `chooser`, the first items are timed at each of its thread counts and the rest run
    at the fastest (the first scoring runs before any training step has been timed).
    """
    import torch

    was_training = model.training
    model.eval()
    total_loss, total_right, total_n = 0.0, 0, 0
    with torch.no_grad():
        for k, it in enumerate(items):
            if cancel():
                raise TuneCancelled("Tuning cancelled; no adapter was written.")
            if chooser is not None:
                torch.set_num_threads(chooser.threads_for_step(k))
            t_item = time.perf_counter()
            ids = torch.tensor([it.ids], device=device)
            labels = torch.tensor([it.labels], device=device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            if chooser is not None:
                took = time.perf_counter() - t_item
                chooser.record(k, torch.get_num_threads(), len(it.ids), took)
            target = labels[0, 1:]
            mask = target != -100
            n = int(mask.sum())
            if n == 0:
                continue
            loss = torch.nn.functional.cross_entropy(logits[mask], target[mask], reduction="sum")
            total_loss += float(loss)
            total_right += int((logits[mask].argmax(-1) == target[mask]).sum())
            total_n += n
    if was_training:
        model.train()
    if total_n == 0:
        return float("nan"), 0.0
    return total_loss / total_n, total_right / total_n


def tune_workspace(
    root: Path,
    settings: TuneSettings = TuneSettings(),
    progress: Callable[[TuneProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    output: Path | None = None,
) -> TuneResult:
    """Train a LoRA adapter on `root`'s code and write it (atomically) to the cache."""
    report = progress or (lambda _p: None)
    stop = cancel or (lambda: False)
    t0 = time.perf_counter()
    budget_s = settings.minutes * 60
    root = root.resolve()
    if not root.is_dir():
        raise TuneError(f"{root} is not a folder.")
    split = tune_data.collect(root, settings.heldout_percent)
    if not split.train or not split.heldout:
        raise TuneError(
            f"{root} has too few source files to tune on ({len(split.train) + len(split.heldout)} "
            "found; at least two are needed, one of them held out to check the result)."
        )
    report(TuneProgress("loading", budget_s=budget_s))

    import torch
    from peft import (
        LoraConfig,
        get_peft_model,
        get_peft_model_state_dict,
        set_peft_model_state_dict,
    )

    from wren.model.loading import load_model

    loaded = load_model(settings.model, settings.device)
    if loaded.device == "cpu" and (settings.threads > 0 or fixed_threads() is not None):
        candidates = [settings.threads or threads_for(interactive=True)]
    elif loaded.device == "cpu":
        every_core = cores()
        candidates = [every_core, max(1, every_core // 2)]
    else:
        candidates = [torch.get_num_threads()]
    chooser = ThreadChooser(candidates, THREAD_PROBE_STEPS, THREAD_PROBE_EVERY)
    torch.set_num_threads(chooser.chosen)
    if loaded.dtype != "float32" and loaded.device == "cpu":
        raise TuneError("Tuning on the CPU needs the fp32 model.")
    digest = base_digest(loaded.source)
    tokenizer, device = loaded.tokenizer, loaded.device
    card_header = loaded.card.file_header
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)

    examples = tune_data.examples(split.train, card_header, settings.window_tokens * 3)
    train_items = [it for ex in examples if (it := _encode(tokenizer, ex, settings.window_tokens))]
    eval_items = heldout_items(tokenizer, split.heldout, card_header, settings)
    if not train_items or not eval_items:
        raise TuneError(f"{root} has too little code to tune on.")
    train_tokens = sum(len(it.ids) for it in train_items)

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(loaded.model, config)
    report(TuneProgress("scoring", elapsed_s=time.perf_counter() - t0, budget_s=budget_s))
    t_eval = time.perf_counter()
    first_probe = ThreadChooser(chooser.candidates, 2, len(eval_items) + 1)
    loss_before, acc_before = score(model, eval_items, device, stop, first_probe)
    chooser.chosen = first_probe.chosen
    torch.set_num_threads(chooser.chosen)
    eval_cost_s = time.perf_counter() - t_eval
    eval_every = settings.eval_every_s or eval_interval(budget_s, eval_cost_s)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    best_loss, best_acc = loss_before, acc_before
    acc = acc_before
    best_state: dict[str, Any] | None = None
    evals: list[dict[str, float]] = [{"tokens": 0, "loss": loss_before}]
    tokens = steps = bad = 0
    running: float | None = None
    last_eval = time.perf_counter()
    stopped = "data"
    train_start = time.perf_counter()
    step_s = eval_s = 0.0
    target_tokens = 0
    threads_used: dict[int, int] = {}
    model.train()
    order = [
        i
        for _ in range(settings.epochs)
        for i in rng.sample(range(len(train_items)), len(train_items))
    ]
    train_budget_s = max(1.0, budget_s - (train_start - t0) - eval_cost_s)
    for position, idx in enumerate(order):
        if stop():
            raise TuneCancelled("Tuning cancelled; no adapter was written.")
        if time.perf_counter() - t0 + eval_cost_s >= budget_s:
            stopped = "time"
            break
        if settings.max_steps and steps >= settings.max_steps:
            stopped = "steps"
            break
        it = train_items[idx]
        done = max((time.perf_counter() - train_start) / train_budget_s, position / len(order))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(settings.learning_rate, steps, done)
        n_threads = chooser.threads_for_step(steps)
        if n_threads != torch.get_num_threads():
            torch.set_num_threads(n_threads)
        t_step = time.perf_counter()
        loss = _step_loss(model, it, device)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = loss.item()
        took = time.perf_counter() - t_step
        chooser.record(steps, n_threads, len(it.ids), took)
        threads_used[n_threads] = threads_used.get(n_threads, 0) + 1
        step_s += took
        steps += 1
        tokens += len(it.ids)
        target_tokens += sum(1 for label in it.labels if label != -100)
        running = value if running is None else 0.95 * running + 0.05 * value
        report(
            TuneProgress(
                "training", tokens, steps, running, best_loss, time.perf_counter() - t0, budget_s
            )
        )
        if time.perf_counter() - last_eval >= eval_every:
            t_eval = time.perf_counter()
            held, acc = score(model, eval_items, device, stop)
            last_eval = time.perf_counter()
            eval_s += last_eval - t_eval
            evals.append({"tokens": tokens, "loss": held})
            if held < best_loss:
                best_loss, best_acc, bad = held, acc, 0
                best_state = {
                    k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()
                }
            else:
                bad += 1
                if bad >= settings.patience:
                    stopped = "early"
                    break
    train_s = time.perf_counter() - train_start
    if steps == 0:
        raise TuneError(
            f"The time budget ran out before training began (loading and scoring took "
            f"{time.perf_counter() - t0:.0f}s, and scoring the result at the end needs about "
            f"{eval_cost_s:.0f}s more); give it more minutes."
        )
    if evals[-1]["tokens"] != tokens:  # score what the loop ended with
        held, acc = score(model, eval_items, device, stop)
        evals.append({"tokens": tokens, "loss": held})
        if held < best_loss:
            best_loss, best_acc, best_state = held, acc, None  # the current weights are the best
    if best_state is not None:
        set_peft_model_state_dict(model, best_state)
    improved = best_loss < loss_before
    final_loss = best_loss if improved else evals[-1]["loss"]
    final_acc = best_acc if improved else acc
    enabled, reason = verdict(loss_before, final_loss, acc_before, final_acc)
    metrics = {
        "heldout_loss_before": round(loss_before, 4),
        "heldout_loss_after": round(final_loss, 4),
        "heldout_top1_before": round(acc_before, 4),
        "heldout_top1_after": round(final_acc, 4),
        "evaluations": evals,
        "tokens_seen": tokens,
        "target_tokens_seen": target_tokens,
        "steps": steps,
        "train_seconds": round(train_s, 1),
        "step_seconds": round(step_s, 1),
        "eval_seconds": round(eval_s + eval_cost_s, 1),
        "tokens_per_second": round(tokens / step_s, 1) if step_s > 0 else 0.0,
        "total_seconds": round(time.perf_counter() - t0, 1),
        "stopped": stopped,
        "peak_rss_mb": round(_peak_rss_mb(), 0),
        "threads": chooser.chosen,
        "threads_steps": {str(n): k for n, k in sorted(threads_used.items())},
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "workspace": str(root),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_name": loaded.name,
        "base_digest": digest,
        "data_digest": split.digest(),
        "files": {
            "train": len(split.train),
            "heldout": len(split.heldout),
            "skipped": split.skipped,
        },
        "train_tokens_available": train_tokens,
        "settings": asdict(settings),
        "lora": {"r": settings.rank, "alpha": settings.alpha, "targets": LORA_TARGETS},
        "metrics": metrics,
        "enabled": enabled,
        "reason": reason,
    }
    folder = output or workspace_adapter_dir(root)
    report(
        TuneProgress(
            "writing", tokens, steps, running, final_loss, time.perf_counter() - t0, budget_s
        )
    )

    def write(tmp: Path) -> None:
        if stop():
            raise TuneCancelled("Tuning cancelled; no adapter was written.")
        model.save_pretrained(str(tmp), safe_serialization=True)
        for extra in tmp.iterdir():  # peft adds a README; keep the weights and config only
            if extra.name not in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
                extra.unlink()
        if not (tmp / ADAPTER_WEIGHTS).is_file():
            raise TuneError("peft did not write adapter_model.safetensors.")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    write_adapter_atomically(folder, write)
    return TuneResult(folder, enabled, reason, metrics, manifest)
