"""A lean forward pass for Llama-shaped models, with a preallocated per-slot KV cache.

transformers' generic forward spends most of a single-token step in Python: cache objects,
mask construction, hooks, output dataclasses (measured: ~14 tok/s for the 135M default model
where the weights alone allow ~30). This module keeps the same math in a flat loop over plain
tensors: q/k/v and gate/up are fused into one matmul each, RoPE tables are precomputed, and
the KV cache is one tensor per slot that is written in place. Only the logits that are needed
are computed (the last position for prefill, every position for speculative verification).

Supported: `model_type` llama / mistral / qwen2 (q/k/v bias) with default RoPE, SiLU MLP and
RMSNorm. Anything else returns None from `LeanModel.build` and the backend keeps using the
transformers forward.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from wren.model import kernels

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
CACHE_GROW = 256  # positions added to a slot's cache at a time (a multiple of BLOCK)
BLOCK = 16  # prompt positions whose attention is computed in one fixed-shape call


ATTEND_HEAD_DIMS = (32, 64, 80, 96, 128)  # what kernels.cpp's attend_decode is built for
GROUP = 32  # GGUF block size (Q4_0/Q4_1/Q8_0), along the input dimension


class Linear:
    """y = x @ W.T for fp32 x of shape [m, in]; the weight format is the subclass's business."""

    nbytes: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normed(self, x: torch.Tensor, norm: torch.Tensor, eps: float) -> torch.Tensor:
        """self(RMSNorm(x) * norm): the AVX2 kernels fuse the norm into the matmul."""
        return self(F.rms_norm(x, (x.shape[-1],), norm, eps))

    def glu(self, gate_up: torch.Tensor) -> torch.Tensor:
        """self(silu(gate) * up) for the fused gate/up output: the MLP's down projection."""
        inter = gate_up.shape[1] // 2
        return self(F.silu(gate_up[:, :inter]) * gate_up[:, inter:])


class DenseLinear(Linear):
    """fp32 weights stored transposed: `x @ Wt` streams memory ~1.4x faster than F.linear here
    (measured on a 1-thread AVX-512 core: ~20 vs ~14 GB/s for a 49152x576 weight)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.wt = weight.detach().t().contiguous()
        self.bias = bias.detach() if bias is not None else None
        self.nbytes = self.wt.numel() * self.wt.element_size()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is not None:
            return torch.addmm(self.bias, x, self.wt)
        return x @ self.wt


SCALE_ROWS = 8  # kernels.cpp: block scales and minimums of 8 output rows in one vector


def scale_rows(per_block: torch.Tensor) -> torch.Tensor:
    """[n, k/32, 1] block scales (or minimums) as half [n/8, k/32, 8], n padded to 8 rows."""
    n, blocks = per_block.shape[0], per_block.shape[1]
    padded = -(-n // SCALE_ROWS) * SCALE_ROWS
    rows = per_block.reshape(n, blocks).half()
    if padded != n:
        rows = torch.cat([rows, rows.new_zeros(padded - n, blocks)])
    return rows.view(padded // SCALE_ROWS, SCALE_ROWS, blocks).transpose(1, 2).contiguous()


class Q4Linear(Linear):
    """4-bit weights with one scale and minimum per 32 inputs.

    Built only from weights that already lie on such a grid (a GGUF's Q4_0/Q4_1 blocks,
    de-quantized to float by transformers), so re-packing loses nothing (the AVX2 kernels keep
    the GGUF's half-precision scales) or only the rounding of the block scale to bf16 (torch's
    kernel). Either kernel computes every output row independently: the same input row gives
    bit-identical output whatever the batch, which keeps KV reuse and draft verification exact.

    With Wren's AVX2 kernels (`kernels.py`, built by setup): nibbles in GGUF order plus half
    scales/minimums, 8 output rows a vector (`scale_rows`), activations quantized to int16 per
    32 inputs. Without them: torch's `_weight_int4pack_mm_for_cpu` with bf16 activations.
    """

    def __init__(
        self,
        tensors: tuple[torch.Tensor, ...],
        out_features: int,
        bias: torch.Tensor | None,
    ) -> None:
        self.tensors = tensors
        self.out_features = out_features
        self.bias = bias.detach() if bias is not None else None
        self.nbytes = sum(t.numel() * t.element_size() for t in tensors)
        self.fast = len(tensors) == 3

    @classmethod
    def from_weight(
        cls, weight: torch.Tensor, bias: torch.Tensor | None = None, tol: float = 1e-3
    ) -> Q4Linear | None:
        """Pack `weight` [out, in] if it is on a 4-bit grid per 32 inputs, else None."""
        n, k = weight.shape
        fast = kernels.available()
        if k % GROUP or not (fast or hasattr(torch, "_weight_int4pack_mm_for_cpu")):
            return None
        w = weight.detach().float().reshape(n, k // GROUP, GROUP)
        lo = w.amin(-1, keepdim=True)
        step = (w.amax(-1, keepdim=True) - lo) / 15
        safe = torch.where(step > 0, step, torch.ones_like(step))
        q = torch.round((w - lo) / safe).clamp_(0, 15)
        err = (q * step + lo - w).abs()
        if bool((err > tol * safe + 1e-7).any()):
            return None
        if fast:
            nib = q.to(torch.uint8)
            packed = (nib[..., :16] | (nib[..., 16:] << 4)).reshape(n, k // 2).contiguous()
            return cls((packed, scale_rows(step), scale_rows(lo)), n, bias)
        scale_zero = torch.stack([step.squeeze(-1), (lo + 8 * step).squeeze(-1)], dim=-1)
        scale_zero = scale_zero.transpose(0, 1).contiguous().to(torch.bfloat16)  # [k/32, n, 2]
        packed = torch._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).reshape(n, k), 1)
        return cls((packed, scale_zero), n, bias)

    def normed(self, x: torch.Tensor, norm: torch.Tensor, eps: float) -> torch.Tensor:
        if not self.fast:
            return super().normed(x, norm, eps)
        y = torch.ops.wren.q4_linear(x, *self.tensors, norm, eps)
        return y + self.bias if self.bias is not None else y

    def glu(self, gate_up: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().glu(gate_up)
        y = torch.ops.wren.q4_linear(gate_up, *self.tensors, glu=True)
        return y + self.bias if self.bias is not None else y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast:
            y = torch.ops.wren.q4_linear(x, *self.tensors)
        else:
            packed, scale_zero = self.tensors
            y = torch._weight_int4pack_mm_for_cpu(
                x.to(torch.bfloat16), packed, GROUP, scale_zero
            ).float()
        return y + self.bias if self.bias is not None else y


class Int8Linear(Linear):
    """int8 weights with one scale per output row (the output head of a 4-bit model: GGUFs keep
    it at 8 bits, and at fp32 it would cost as much as all layers). Activations: int8 per 32
    inputs with the AVX2 kernels, else bf16 through torch's kernel."""

    def __init__(self, weight: torch.Tensor) -> None:
        w = weight.detach().float()
        scale = (w.abs().amax(1) / 127).clamp_(min=1e-12)
        q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
        fast = kernels.available() and w.shape[1] % GROUP == 0
        self._set(q, scale if fast else scale.to(torch.bfloat16))

    def _set(self, q: torch.Tensor, scale: torch.Tensor) -> None:
        self.q, self.scale = q, scale
        self.fast = scale.dtype == torch.float32  # the AVX2 kernel's layout
        self.nbytes = self.q.numel() + self.scale.numel() * self.scale.element_size()

    @classmethod
    def packed(cls, q: torch.Tensor, scale: torch.Tensor) -> Int8Linear:
        """From the packed-decoder cache (memory-mapped). torch's own kernel gets copies:
        `_weight_int8pack_mm` crashed the process (SIGSEGV) on the mapped weights for four or
        more input rows (torch 2.13), which the warm-up's scoring pass runs; copies work."""
        head = cls.__new__(cls)
        if scale.dtype != torch.float32:
            q, scale = q.clone(), scale.clone()
        head._set(q, scale)
        return head

    def normed(self, x: torch.Tensor, norm: torch.Tensor, eps: float) -> torch.Tensor:
        if not self.fast:
            return super().normed(x, norm, eps)
        return torch.ops.wren.q8_linear(x, self.q, self.scale, norm, eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast:
            return torch.ops.wren.q8_linear(x, self.q, self.scale)
        return torch._weight_int8pack_mm(x.to(torch.bfloat16), self.q, self.scale).float()


def half_values(t: torch.Tensor) -> torch.Tensor:
    """`t` rounded to half precision, kept as float32 (torch's CPU matmuls are fp32)."""
    return t.half().float()


class LowRankLinear(Linear):
    """`base(x) + x @ A.T @ B.T`: a `wren tune` adapter's update served beside packed weights.

    Merged into the weights, a LoRA update (typically far smaller than one step of the 4-bit
    grid) would leave them off the grid: re-packing would round it away, and keeping fp32
    weights reads ~5x the bytes per token. Beside the base it is the update that was trained,
    its A and B rounded to half precision (half the bytes of fp32; the rounding, 2^-11 of each
    value, is far below the 4-bit weights' own). Over 4-bit weights with Wren's kernels the
    update is computed inside the same kernel call (`q4_linear`'s lora_* arguments: one A per
    part of a fused linear, B per output row); otherwise by two thin torch matmuls over the
    same rounded values, the parts' A stacked and B block-diagonal. Rows are computed
    independently, like every Linear here.
    """

    def __init__(
        self, base: Linear, parts: list[tuple[int, tuple[torch.Tensor, torch.Tensor] | None]]
    ) -> None:
        """`parts`: (output rows, (A [r, in], B [out, r]) or None) of each fused part, in order."""
        self.base = base
        present = [ab for _, ab in parts if ab is not None]
        k = int(present[0][0].shape[1])
        ranks = {int(a.shape[0]) for a, _ in present}
        self.fused: tuple[torch.Tensor, ...] = ()
        if isinstance(base, Q4Linear) and base.fast and len(ranks) == 1:
            r = ranks.pop()
            a3 = torch.stack(
                [ab[0].half() if ab is not None else torch.zeros(r, k).half() for _, ab in parts]
            )
            b = torch.cat(
                [
                    ab[1].half() if ab is not None else torch.zeros(out, r).half()
                    for out, ab in parts
                ]
            )
            ends = torch.tensor(list(itertools.accumulate(out for out, _ in parts)))
            self.fused = (a3.contiguous(), b.contiguous(), ends)
            self.nbytes = base.nbytes + (a3.numel() + b.numel()) * 2
        else:
            rank = sum(int(a.shape[0]) for a, _ in present)
            self.at = torch.cat([half_values(a) for a, _ in present]).t().contiguous()  # [in, r]
            self.bt = torch.zeros(rank, sum(out for out, _ in parts))  # [r, out]
            row = col = 0
            for out, ab in parts:
                if ab is not None:
                    a, b = ab
                    self.bt[row : row + a.shape[0], col : col + out] = half_values(b).t()
                    row += int(a.shape[0])
                col += out
            self.nbytes = base.nbytes + (self.at.numel() + self.bt.numel()) * 4

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self._q4(x, None, 0.0)
        return self.base(x) + (x @ self.at) @ self.bt

    def normed(self, x: torch.Tensor, norm: torch.Tensor, eps: float) -> torch.Tensor:
        if self.fused:
            return self._q4(x, norm, eps)
        side = (F.rms_norm(x, (x.shape[-1],), norm, eps) @ self.at) @ self.bt
        return self.base.normed(x, norm, eps) + side

    def _q4(self, x: torch.Tensor, norm: torch.Tensor | None, eps: float) -> torch.Tensor:
        base = self.base
        assert isinstance(base, Q4Linear)
        y = torch.ops.wren.q4_linear(x, *base.tensors, norm, eps, *self.fused)
        return y + base.bias if base.bias is not None else y


# A tuned adapter's updates: module name -> (A [r, in], B [out, r]).
LowRankPairs = dict[str, tuple[torch.Tensor, torch.Tensor]]


def with_low_rank(
    base: Linear, parts: list[tuple[str, int]], low_rank: LowRankPairs, used: set[str]
) -> Linear:
    """`base` (the fused linear of `parts`: (module name, out features) in order) with the
    updates `low_rank` holds for those modules; `base` itself when it holds none."""
    if not any(name in low_rank for name, _ in parts):
        return base
    used.update(name for name, _ in parts if name in low_rank)
    return LowRankLinear(base, [(out, low_rank.get(name)) for name, out in parts])


@dataclass
class LeanLayer:
    ln1: torch.Tensor
    qkv: Linear
    o: Linear
    ln2: torch.Tensor
    gate_up: Linear
    down: Linear


class KVCache:
    """Keys and values for one slot: [layers, kv_heads, capacity, head_dim] each, grown in place."""

    def __init__(self, n_layers: int, n_kv: int, head_dim: int, dtype: torch.dtype) -> None:
        self.shape = (n_layers, n_kv, 0, head_dim)
        self.dtype = dtype
        self.k = torch.empty(self.shape, dtype=dtype)
        self.v = torch.empty(self.shape, dtype=dtype)
        self.length = 0  # valid positions

    @property
    def capacity(self) -> int:
        return int(self.k.shape[2])

    def nbytes(self) -> int:
        return int(self.k.numel() * self.k.element_size() * 2)

    def ensure(self, length: int) -> None:
        if length <= self.capacity:
            return
        new_cap = ((length + CACHE_GROW - 1) // CACHE_GROW) * CACHE_GROW
        n_layers, n_kv, _, hd = self.shape
        # Zeros, not empty: block attention reads (masked) positions past the valid ones, and
        # a NaN there would poison the row even behind the mask.
        k = torch.zeros((n_layers, n_kv, new_cap, hd), dtype=self.dtype)
        v = torch.zeros((n_layers, n_kv, new_cap, hd), dtype=self.dtype)
        if self.length:
            k[:, :, : self.length] = self.k[:, :, : self.length]
            v[:, :, : self.length] = self.v[:, :, : self.length]
        self.k, self.v = k, v

    def crop(self, length: int) -> None:
        self.length = min(self.length, length)

    def shrink(self) -> None:
        """Release capacity beyond the valid positions (after a long generation)."""
        keep = ((self.length + CACHE_GROW - 1) // CACHE_GROW) * CACHE_GROW
        if keep < self.capacity:
            self.k = self.k[:, :, :keep].clone()
            self.v = self.v[:, :, :keep].clone()


class LeanModel:
    """The decoder as flat tensors. `forward` appends ids to a `KVCache` and returns logits."""

    def __init__(
        self,
        embed: torch.Tensor,
        layers: list[LeanLayer],
        norm: torch.Tensor,
        lm_head: Linear,
        n_heads: int,
        n_kv: int,
        head_dim: int,
        eps: float,
        rope_theta: float,
        max_positions: int,
        weights: str,
    ) -> None:
        self.embed = embed
        self.layers = layers
        self.norm = norm
        self.lm_head = lm_head
        self.n_heads, self.n_kv, self.head_dim = n_heads, n_kv, head_dim
        self.eps = eps
        self.weights = weights  # "fp32" | "q4" (4-bit layers, int8 head)
        self.q_size = n_heads * head_dim
        self.kv_size = n_kv * head_dim
        self.hidden = int(embed.shape[1])
        inv_freq = 1.0 / (
            rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
        )
        t = torch.arange(max_positions, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos()
        self.sin = emb.sin()
        self.scale = 1.0 / math.sqrt(head_dim)
        self.max_positions = max_positions
        self.rope_theta = rope_theta
        self._layer_stack: Any = None  # see fused_layers; False: the layers can't be fused

    def fused_layers(self) -> Any:
        """Every layer's weights as one `torch.classes.wren.LayerStack` for the one-call
        `decoder_layers` kernel (made once), or None when some layer can't go through it (not
        4-bit with Wren's kernels, a bias, a tuned adapter)."""
        if self._layer_stack is None:
            tensors: list[torch.Tensor] = []
            for layer in self.layers:
                linears = (layer.qkv, layer.o, layer.gate_up, layer.down)
                q4 = [x for x in linears if isinstance(x, Q4Linear) and x.fast and x.bias is None]
                if len(q4) < len(linears):
                    tensors = []
                    break
                qkv, o, gate_up, down = (lin.tensors for lin in q4)
                ln1, ln2 = layer.ln1.contiguous(), layer.ln2.contiguous()
                tensors += [*qkv, ln1, *o, *gate_up, ln2, *down]
            self._layer_stack = torch.classes.wren.LayerStack(tensors) if tensors else False
        return None if self._layer_stack is False else self._layer_stack

    def weight_bytes_per_token(self) -> int:
        """Bytes of weights one decode step reads (for the memory-bandwidth bound)."""
        total = self.lm_head.nbytes + self.norm.numel() * 4
        for layer in self.layers:
            total += layer.qkv.nbytes + layer.o.nbytes + layer.gate_up.nbytes + layer.down.nbytes
            total += (layer.ln1.numel() + layer.ln2.numel()) * 4
        return int(total)

    def kv_bytes_per_position(self) -> int:
        """Bytes of keys and values a decode step reads for each cached position."""
        element = torch.empty((), dtype=self.kv_dtype()).element_size()
        return len(self.layers) * 2 * self.n_kv * self.head_dim * element

    def to_state(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """The packed 4-bit model as named tensors plus metadata (for `packed.py`'s cache)."""
        if self.weights != "q4" or not isinstance(self.lm_head, Int8Linear):
            raise ValueError("only the 4-bit layout is cached")
        tensors = {"embed": self.embed, "norm": self.norm}
        tensors["head.q"], tensors["head.scale"] = self.lm_head.q, self.lm_head.scale
        for i, layer in enumerate(self.layers):
            tensors[f"{i}.ln1"], tensors[f"{i}.ln2"] = layer.ln1, layer.ln2
            for name in ("qkv", "o", "gate_up", "down"):
                lin = getattr(layer, name)
                assert isinstance(lin, Q4Linear)
                for j, t in enumerate(lin.tensors):
                    tensors[f"{i}.{name}.{j}"] = t
                if lin.bias is not None:
                    tensors[f"{i}.{name}.bias"] = lin.bias
        meta = {
            "layers": len(self.layers),
            "n_heads": self.n_heads,
            "n_kv": self.n_kv,
            "head_dim": self.head_dim,
            "eps": self.eps,
            "rope_theta": self.rope_theta,
            "max_positions": self.max_positions,
        }
        for name in ("qkv", "o", "gate_up", "down"):
            meta[f"out.{name}"] = getattr(self.layers[0], name).out_features
        return {k: v.contiguous() for k, v in tensors.items()}, {k: str(v) for k, v in meta.items()}

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> LeanModel:
        """Inverse of `to_state`. Raises KeyError/ValueError on a file that doesn't fit."""
        n_heads, n_kv, hd = int(meta["n_heads"]), int(meta["n_kv"]), int(meta["head_dim"])
        layers = []
        for i in range(int(meta["layers"])):
            lins: dict[str, Q4Linear] = {}
            for name in ("qkv", "o", "gate_up", "down"):
                parts: list[torch.Tensor] = []
                while f"{i}.{name}.{len(parts)}" in tensors:
                    parts.append(tensors[f"{i}.{name}.{len(parts)}"])
                if len(parts) == 3 and not kernels.available():
                    raise ValueError("packed for the AVX2 kernels, which are not available")
                n = int(meta[f"out.{name}"])
                lins[name] = Q4Linear(tuple(parts), n, tensors.get(f"{i}.{name}.bias"))
            layers.append(LeanLayer(ln1=tensors[f"{i}.ln1"], ln2=tensors[f"{i}.ln2"], **lins))
        head = Int8Linear.packed(tensors["head.q"], tensors["head.scale"])
        if head.fast and not kernels.available():
            raise ValueError("packed for the AVX2 kernels, which are not available")
        return cls(
            embed=tensors["embed"],
            layers=layers,
            norm=tensors["norm"],
            lm_head=head,
            n_heads=n_heads,
            n_kv=n_kv,
            head_dim=hd,
            eps=float(meta["eps"]),
            rope_theta=float(meta["rope_theta"]),
            max_positions=int(meta["max_positions"]),
            weights="q4",
        )

    @classmethod
    def build(
        cls, model: Any, weights: str = "auto", low_rank: LowRankPairs | None = None
    ) -> LeanModel | None:
        """Flatten a transformers causal LM, or None when its architecture isn't covered.

        `weights`: "auto" packs the layers to 4 bits when they already are 4-bit values (a Q4
        GGUF), else keeps fp32; "fp32" always keeps fp32. `low_rank`: a tuned adapter's
        updates by module name, served beside the weights (`LowRankLinear`); None when one
        targets a module the lean layers don't hold.
        """
        config = model.config
        mtype = getattr(config, "model_type", "")
        if mtype not in SUPPORTED_TYPES:
            return None
        rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
        rope = dict(rope or {})
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            return None
        if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "mlp_bias", False):
            return None
        if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", False):
            return None
        theta = float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        inner = model.model
        try:
            parts = []
            for layer in inner.layers:
                att, mlp = layer.self_attn, layer.mlp
                mods = (
                    att.q_proj,
                    att.k_proj,
                    att.v_proj,
                    att.o_proj,
                    mlp.gate_proj,
                    mlp.up_proj,
                    mlp.down_proj,
                )
                if not all(type(m) is torch.nn.Linear for m in mods):
                    return None  # quantized modules: keep the transformers path
                if att.o_proj.bias is not None:
                    return None
                wqkv = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight])
                bias = None
                if att.q_proj.bias is not None:
                    bias = torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias])
                wgu = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
                parts.append(
                    (
                        layer,
                        wqkv.detach(),
                        bias,
                        att.o_proj.weight.detach(),
                        wgu.detach(),
                        mlp.down_proj.weight.detach(),
                    )
                )
            layers = None
            fmt = "fp32"
            if weights == "auto":
                layers = cls._pack_q4(parts)
                fmt = "q4" if layers is not None else "fp32"
            if layers is None:
                layers = [
                    LeanLayer(
                        ln1=layer.input_layernorm.weight.detach(),
                        qkv=DenseLinear(wqkv, bias),
                        o=DenseLinear(wo),
                        ln2=layer.post_attention_layernorm.weight.detach(),
                        gate_up=DenseLinear(wgu),
                        down=DenseLinear(wdown),
                    )
                    for layer, wqkv, bias, wo, wgu, wdown in parts
                ]
            if low_rank and not cls._attach_low_rank(model, layers, low_rank):
                return None
            head_w = model.lm_head.weight.detach()
            head: Linear = Int8Linear(head_w) if fmt == "q4" else DenseLinear(head_w)
            n_heads = int(config.num_attention_heads)
            head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // n_heads)
            return cls(
                embed=inner.embed_tokens.weight.detach(),
                layers=layers,
                norm=inner.norm.weight.detach(),
                lm_head=head,
                n_heads=n_heads,
                n_kv=int(getattr(config, "num_key_value_heads", n_heads)),
                head_dim=head_dim,
                eps=float(config.rms_norm_eps),
                rope_theta=theta,
                max_positions=int(getattr(config, "max_position_embeddings", 8192)),
                weights=fmt,
            )
        except AttributeError as err:
            log.info("lean decoder not used for %s: %s", mtype, err)
            return None

    @staticmethod
    def _attach_low_rank(model: Any, layers: list[LeanLayer], low_rank: LowRankPairs) -> bool:
        """Put the updates beside the layers' linears; False if one has no place here."""
        names = {id(m): n for n, m in model.named_modules()}
        used: set[str] = set()
        for lean, layer in zip(layers, model.model.layers, strict=True):
            att, mlp = layer.self_attn, layer.mlp

            def parts(*mods: Any) -> list[tuple[str, int]]:
                return [(names[id(m)], int(m.out_features)) for m in mods]

            lean.qkv = with_low_rank(
                lean.qkv, parts(att.q_proj, att.k_proj, att.v_proj), low_rank, used
            )
            lean.o = with_low_rank(lean.o, parts(att.o_proj), low_rank, used)
            lean.gate_up = with_low_rank(
                lean.gate_up, parts(mlp.gate_proj, mlp.up_proj), low_rank, used
            )
            lean.down = with_low_rank(lean.down, parts(mlp.down_proj), low_rank, used)
        if missing := sorted(set(low_rank) - used):
            log.info("lean decoder not used: the adapter also updates %s", ", ".join(missing))
            return False
        return True

    @staticmethod
    def _pack_q4(parts: list[tuple[Any, ...]]) -> list[LeanLayer] | None:
        layers = []
        for layer, wqkv, bias, wo, wgu, wdown in parts:
            packed = [
                Q4Linear.from_weight(wqkv, bias),
                Q4Linear.from_weight(wo),
                Q4Linear.from_weight(wgu),
                Q4Linear.from_weight(wdown),
            ]
            if any(p is None for p in packed):
                return None  # not 4-bit data: fp32 it is
            qkv, o, gu, down = packed
            assert qkv is not None and o is not None and gu is not None and down is not None
            layers.append(
                LeanLayer(
                    ln1=layer.input_layernorm.weight.detach(),
                    qkv=qkv,
                    o=o,
                    ln2=layer.post_attention_layernorm.weight.detach(),
                    gate_up=gu,
                    down=down,
                )
            )
        return layers

    def kv_dtype(self) -> torch.dtype:
        """half on the 4-bit path when the attention kernel serves it, else float32.

        A decode step over 1,000 cached positions reads 46 MB of float32 keys/values, half as
        many bytes as the 4-bit weights; as half they fit in this CPU's L3 cache. llama.cpp keeps
        f16 keys/values by default too. The fp32 path stays exact against transformers.
        """
        q4 = self.weights == "q4"
        return torch.float16 if q4 and self.kernel_attention() else torch.float32

    def kernel_attention(self) -> bool:
        """Whether attention runs in the AVX2 kernel (built, and this head size is in it)."""
        return self.head_dim in ATTEND_HEAD_DIMS and kernels.available()

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers), self.n_kv, self.head_dim, self.kv_dtype())

    def _attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pos: int, blocks: bool
    ) -> torch.Tensor:
        """Causal attention of q [1, nh, t, hd] (positions pos..pos+t-1) over the cache.

        CPU attention kernels round differently for different numbers of query rows and keys
        (~1e-7), and the bf16 activations of the 4-bit path can turn that into a different
        greedy token. So every position is always computed by a call of one fixed shape:

        - decode rows (`blocks=False`, generated tokens and draft verification): one call per
          row over exactly the keys it sees, the call a one-token step makes;
        - prompt rows (`blocks=True`): one call per aligned block of BLOCK positions, padded
          to BLOCK query rows, over the keys up to the block's end (masked causally). A row's
          result does not depend on the other rows of the call or on the masked keys
          (checked bit for bit), so a prompt position's keys/values come out the same however
          the prompt was chunked or extended keystroke by keystroke.

        The backend reuses only prompt-computed positions across requests, which makes KV
        reuse exact; decode rows make drafts exact.
        """
        t = q.shape[2]
        gqa = self.n_heads != self.n_kv
        if not blocks:
            rows = [
                F.scaled_dot_product_attention(
                    q[:, :, i : i + 1],
                    k[:, :, : pos + i + 1],
                    v[:, :, : pos + i + 1],
                    scale=self.scale,
                    enable_gqa=gqa,
                )
                for i in range(t)
            ]
            return rows[0] if t == 1 else torch.cat(rows, dim=2)
        out = []
        first = pos - pos % BLOCK
        for start in range(first, pos + t, BLOCK):
            lo, hi = max(start, pos), min(start + BLOCK, pos + t)  # rows present in this block
            qb = q.new_zeros((1, q.shape[1], BLOCK, q.shape[3]))
            qb[:, :, lo - start : hi - start] = q[:, :, lo - pos : hi - pos]
            mask = self._block_mask(start)
            ob = F.scaled_dot_product_attention(
                qb,
                k[:, :, : start + BLOCK],
                v[:, :, : start + BLOCK],
                attn_mask=mask,
                scale=self.scale,
                enable_gqa=gqa,
            )
            out.append(ob[:, :, lo - start : hi - start])
        return out[0] if len(out) == 1 else torch.cat(out, dim=2)

    def _block_mask(self, start: int) -> torch.Tensor:
        end = start + BLOCK
        return torch.arange(end).unsqueeze(0) <= torch.arange(start, end).unsqueeze(1)

    def forward(
        self, ids: list[int], cache: KVCache, all_logits: bool = False, prompt: bool = False
    ) -> torch.Tensor:
        """Run `ids` after the cache's positions; append their keys/values; return logits.

        Returns [vocab] logits after the last id, or [len(ids), vocab] with `all_logits`.
        `prompt`: prompt tokens. With the attention kernel built, every row (prompt or
        generated) goes through it, one row at a time over exactly the keys it sees, so a
        position's keys/values are bit-identical however the prompt was chunked; it is also
        the faster path (prefill ~200 vs ~180 tok/s, and 14 vs 42 ms for the one or two
        tokens a keystroke appends to a 1,000-token cache, where a block padded to BLOCK
        rows did 16 rows of work). Without the kernel, prompt rows use aligned blocks (see
        `_attention`).
        """
        t = len(ids)
        pos = cache.length
        end = pos + t
        if end > self.max_positions:
            raise ValueError(f"sequence of {end} tokens is longer than the model's context")
        cache.ensure(end + BLOCK)
        x = self.embed[torch.tensor(ids, dtype=torch.long)].float()  # [t, d]
        cos = self.cos[pos:end]  # [t, hd], broadcast over heads
        sin = self.sin[pos:end]
        half = self.head_dim // 2
        qs, kvs, hd, nh, nkv = self.q_size, self.kv_size, self.head_dim, self.n_heads, self.n_kv
        eps = self.eps
        ck, cv = cache.k, cache.v
        # Every row goes through the AVX2 attention kernel when it's built (see above).
        fast_attention = self.kernel_attention()
        if ck.dtype != torch.float32 and not fast_attention:
            raise RuntimeError("a half KV cache needs the attention kernel")
        fused = self.fused_layers() if fast_attention else None
        if fused is not None:  # every layer in one kernel call: the loop below, in C++
            x = torch.ops.wren.decoder_layers(
                x, fused, ck, cv, cos, sin, pos, nh, nkv, self.scale, eps
            )
        for li, layer in enumerate(self.layers if fused is None else ()):
            qkv = layer.qkv.normed(x, layer.ln1, eps)
            if fast_attention:  # RoPE, cache write and attention in one kernel call
                attn = torch.ops.wren.attend_decode(
                    qkv, ck[li], cv[li], cos, sin, pos, nh, nkv, self.scale
                )
            else:
                # RoPE on queries and keys together: [t, nh+nkv, hd].
                qk = qkv[:, : qs + kvs].view(t, nh + nkv, hd).transpose(0, 1)
                qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
                ck[li, :, pos:end] = qk[nh:]
                cv[li, :, pos:end] = qkv[:, qs + kvs :].view(t, nkv, hd).transpose(0, 1)
                heads = self._attention(
                    qk[:nh].unsqueeze(0), ck[li : li + 1], cv[li : li + 1], pos, prompt
                )
                attn = heads[0].transpose(0, 1).reshape(t, qs)
            x = x + layer.o(attn)
            x = x + layer.down.glu(layer.gate_up.normed(x, layer.ln2, eps))
        cache.length = end
        if not all_logits:
            x = x[-1:]
        logits = self.lm_head.normed(x, self.norm, eps)
        return logits if all_logits else logits[0]
