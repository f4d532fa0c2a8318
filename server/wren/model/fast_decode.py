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

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
CACHE_GROW = 256  # positions added to a slot's cache at a time


@dataclass
class LeanLayer:
    ln1: torch.Tensor
    wqkv: torch.Tensor
    bqkv: torch.Tensor | None
    wo: torch.Tensor
    ln2: torch.Tensor
    wgu: torch.Tensor
    wdown: torch.Tensor


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
        k = torch.empty((n_layers, n_kv, new_cap, hd), dtype=self.dtype)
        v = torch.empty((n_layers, n_kv, new_cap, hd), dtype=self.dtype)
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
        lm_head: torch.Tensor,
        n_heads: int,
        n_kv: int,
        head_dim: int,
        eps: float,
        rope_theta: float,
        max_positions: int,
    ) -> None:
        self.embed = embed
        self.layers = layers
        self.norm = norm
        self.lm_head = lm_head
        self.n_heads, self.n_kv, self.head_dim = n_heads, n_kv, head_dim
        self.eps = eps
        self.dtype = embed.dtype
        self.q_size = n_heads * head_dim
        self.kv_size = n_kv * head_dim
        self.inter = layers[0].wdown.shape[1]
        inv_freq = 1.0 / (
            rope_theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
        )
        t = torch.arange(max_positions, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = emb.cos().to(self.dtype)
        self.sin = emb.sin().to(self.dtype)
        self.scale = 1.0 / math.sqrt(head_dim)
        self.max_positions = max_positions

    @classmethod
    def build(cls, model: Any) -> LeanModel | None:
        """Flatten a transformers causal LM, or None when its architecture isn't covered."""
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
            layers = []
            for layer in inner.layers:
                att, mlp = layer.self_attn, layer.mlp
                if not all(
                    isinstance(m, torch.nn.Linear)
                    for m in (att.q_proj, att.k_proj, att.v_proj, att.o_proj, mlp.gate_proj)
                ):
                    return None  # quantized modules: keep the transformers path
                wqkv = torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]).detach()
                bias = None
                if att.q_proj.bias is not None:
                    bias = torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias]).detach()
                if att.o_proj.bias is not None:
                    return None
                layers.append(
                    LeanLayer(
                        ln1=layer.input_layernorm.weight.detach(),
                        wqkv=wqkv.contiguous(),
                        bqkv=bias,
                        wo=att.o_proj.weight.detach(),
                        ln2=layer.post_attention_layernorm.weight.detach(),
                        wgu=torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach(),
                        wdown=mlp.down_proj.weight.detach(),
                    )
                )
            n_heads = int(config.num_attention_heads)
            head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // n_heads)
            return cls(
                embed=inner.embed_tokens.weight.detach(),
                layers=layers,
                norm=inner.norm.weight.detach(),
                lm_head=model.lm_head.weight.detach(),
                n_heads=n_heads,
                n_kv=int(getattr(config, "num_key_value_heads", n_heads)),
                head_dim=head_dim,
                eps=float(config.rms_norm_eps),
                rope_theta=theta,
                max_positions=int(getattr(config, "max_position_embeddings", 8192)),
            )
        except AttributeError as err:
            log.info("lean decoder not used for %s: %s", mtype, err)
            return None

    def new_cache(self) -> KVCache:
        return KVCache(len(self.layers), self.n_kv, self.head_dim, self.dtype)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps))

    def forward(self, ids: list[int], cache: KVCache, all_logits: bool = False) -> torch.Tensor:
        """Run `ids` after the cache's positions; append their keys/values; return logits.

        Returns [vocab] logits after the last id, or [len(ids), vocab] with `all_logits`.
        """
        t = len(ids)
        pos = cache.length
        end = pos + t
        if end > self.max_positions:
            raise ValueError(f"sequence of {end} tokens is longer than the model's context")
        cache.ensure(end)
        x = self.embed[torch.tensor(ids, dtype=torch.long)]  # [t, d]
        cos = self.cos[pos:end].unsqueeze(0)  # [1, t, hd]
        sin = self.sin[pos:end].unsqueeze(0)
        half = self.head_dim // 2
        mask = None
        if t > 1:
            # Row i (absolute position pos+i) sees keys 0..pos+i.
            qpos = torch.arange(pos, end).unsqueeze(1)
            mask = torch.arange(end).unsqueeze(0) <= qpos
        qs, kvs, hd, nh, nkv = self.q_size, self.kv_size, self.head_dim, self.n_heads, self.n_kv
        ck, cv = cache.k, cache.v
        for li, layer in enumerate(self.layers):
            h = self._rms(x, layer.ln1)
            qkv = F.linear(h, layer.wqkv, layer.bqkv)
            q = qkv[:, :qs].view(t, nh, hd).transpose(0, 1)  # [nh, t, hd]
            k = qkv[:, qs : qs + kvs].view(t, nkv, hd).transpose(0, 1)
            v = qkv[:, qs + kvs :].view(t, nkv, hd).transpose(0, 1)
            q = q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
            k = k * cos + torch.cat((-k[..., half:], k[..., :half]), dim=-1) * sin
            ck[li, :, pos:end] = k
            cv[li, :, pos:end] = v
            attn = F.scaled_dot_product_attention(
                q.unsqueeze(0),
                ck[li : li + 1, :, :end],
                cv[li : li + 1, :, :end],
                attn_mask=mask,
                scale=self.scale,
                enable_gqa=nh != nkv,
            )  # [1, nh, t, hd]
            x = x + F.linear(attn[0].transpose(0, 1).reshape(t, qs), layer.wo)
            h = self._rms(x, layer.ln2)
            gu = F.linear(h, layer.wgu)
            x = x + F.linear(F.silu(gu[:, : self.inter]) * gu[:, self.inter :], layer.wdown)
        cache.length = end
        if all_logits:
            return F.linear(self._rms(x, self.norm), self.lm_head)
        return F.linear(self._rms(x[-1:], self.norm), self.lm_head)[0]
