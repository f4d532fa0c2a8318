"""Wren's AVX2 matmul kernels (server/wren/model/kernels.cpp) against plain torch math.

- they are built by setup on a CPU that can run them (so the suite exercises them);
- 4-bit and 8-bit results match the de-quantized weights times the input;
- every output row is bit-identical whatever the batch it was computed in and the number of
  threads (what keeps KV reuse and draft verification exact in the decoder);
- the fused RMSNorm and SwiGLU match torch's;
- the decoder's layers use them, and without them fall back to torch's kernels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wren.model import kernels
from wren.model.fast_decode import GROUP, Int8Linear, Q4Linear

needs_cpu = pytest.mark.skipif(not kernels.cpu_supported(), reason="CPU without AVX2/FMA/F16C")


def grid_weight(n: int, k: int, seed: int = 0) -> torch.Tensor:
    """A weight on a Q4_1 grid with half-precision scales and minimums (as a GGUF holds)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, k // GROUP, GROUP), generator=g).float()
    q[..., 0], q[..., 1] = 0, 15  # every block spans the whole grid, as Q4_1 blocks do
    d = (torch.rand(n, k // GROUP, 1, generator=g) * 0.02 + 1e-3).half().float()
    lo = (-8 * d + torch.randn(n, k // GROUP, 1, generator=g) * 1e-3).half().float()
    return (q * d + lo).reshape(n, k)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@needs_cpu
def test_setup_built_the_kernels_and_the_decoder_loads_them() -> None:
    assert kernels.library_path().is_file(), (
        "scripts/setup.sh should have built the kernels (python -m wren.model.kernels)"
    )
    assert kernels.available()
    layer = Q4Linear.from_weight(grid_weight(64, 128))
    assert layer is not None and layer.fast
    assert Int8Linear(torch.randn(64, 128)).fast


@needs_cpu
# 37 and 5 rows: block scales padded to 8 rows; 24 x 2,560: a tile of 8 rows after a full one
# and 80 blocks a row.
@pytest.mark.parametrize(("n", "k"), [(96, 576), (37, 1536), (5, 64), (24, 2560)])
def test_q4_matches_the_dequantized_weight(n: int, k: int) -> None:
    assert kernels.available()
    w = grid_weight(n, k)
    layer = Q4Linear.from_weight(w)
    assert layer is not None and layer.fast
    x = torch.randn(7, k)
    assert rel_err(layer(x), x @ w.T) < 1e-3  # int16 activations: ~1e-5 in practice


@needs_cpu
def test_q8_head_matches_the_int8_weight() -> None:
    assert kernels.available()
    w = torch.randn(300, 576)
    head = Int8Linear(w)
    assert head.fast
    x = torch.randn(3, 576)
    dequantized = head.q.float() * head.scale[:, None]
    assert rel_err(head(x), x @ dequantized.T) < 2e-2  # int8 activations
    assert rel_err(head(x), x @ w.T) < 3e-2


@needs_cpu
def test_fused_norm_matches_torch_rms_norm() -> None:
    assert kernels.available()
    w = grid_weight(64, 576, seed=1)
    layer = Q4Linear.from_weight(w)
    head = Int8Linear(torch.randn(80, 576))
    assert layer is not None
    norm = torch.rand(576) + 0.5
    x = torch.randn(4, 576) * 3
    expect = F.rms_norm(x, (576,), norm, 1e-5)
    assert rel_err(layer.normed(x, norm, 1e-5), layer(expect)) < 1e-5
    assert rel_err(head.normed(x, norm, 1e-5), head(expect)) < 1e-5


@needs_cpu
def test_fused_swiglu_matches_silu_times_up() -> None:
    """`down.glu(gate_up)`: the kernel computes silu(gate) * up before its matmul."""
    assert kernels.available()
    layer = Q4Linear.from_weight(grid_weight(48, 256, seed=2))
    assert layer is not None and layer.fast
    gate_up = torch.randn(5, 512) * 3
    expect = layer(F.silu(gate_up[:, :256]) * gate_up[:, 256:])
    got = layer.glu(gate_up)
    assert got.shape == expect.shape
    assert rel_err(got, expect) < 1e-5
    # Not a plain matmul of either half: the product is what goes in.
    assert rel_err(layer(gate_up[:, 256:]), expect) > 0.1


@needs_cpu
def test_rows_are_bit_identical_whatever_the_batch_and_threads() -> None:
    assert kernels.available()
    layer = Q4Linear.from_weight(grid_weight(53, 576, seed=2))  # 53: tiles and a remainder
    head = Int8Linear(torch.randn(53, 576))
    assert layer is not None
    norm = torch.rand(576) + 0.5
    before = torch.get_num_threads()
    # 13 rows: groups of eight (prefill) and four, then 3, 2 or 1 rows; norm, SwiGLU and
    # quantizing split their rows over the threads in eights.
    ops = (
        (layer, torch.randn(13, 576)),
        (head, torch.randn(13, 576)),
        (lambda t: layer.normed(t, norm, 1e-5), torch.randn(13, 576)),
        (layer.glu, torch.randn(13, 2 * 576) * 3),
    )
    try:
        for op, x in ops:
            torch.set_num_threads(1)
            batch = op(x)
            alone = torch.cat([op(x[i : i + 1]) for i in range(len(x))])
            shifted = op(x[1:])
            torch.set_num_threads(2)
            threaded = op(x)
            assert torch.equal(batch, alone)
            assert torch.equal(batch[1:], shifted)
            assert torch.equal(batch, threaded)
            for size in (2, 3, 6, 7):  # 4 + 2 and 4 + 3 rows: draft verification's shapes
                assert torch.equal(op(x[:size]), batch[:size])
    finally:
        torch.set_num_threads(before)


def test_without_the_kernels_the_layers_use_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kernels._state, "loaded", False)
    w = grid_weight(64, 576, seed=3)
    layer = Q4Linear.from_weight(w)
    head = Int8Linear(torch.randn(64, 576))
    assert layer is not None and not layer.fast and not head.fast
    x = torch.randn(2, 576)
    assert rel_err(layer(x), x @ w.T) < 2e-2  # bf16 activations


def test_kernels_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("WREN_KERNELS", "off")
    assert not kernels.available()


@needs_cpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("nh", "nkv"), [(9, 3), (14, 2), (4, 2)])
def test_decode_attention_matches_rope_and_sdpa_in_double_precision(
    dtype: torch.dtype, nh: int, nkv: int
) -> None:
    """float32 caches (the fp32 path) and half caches (the 4-bit path's default). Query heads
    sharing a key/value head go through the kernel in threes: groups of 3 (the default model),
    7 (3 + 3 + 1) and 2."""
    assert kernels.available()
    g = torch.Generator().manual_seed(4)
    hd, cap, pos, t = 64, 160, 126, 5  # 127..131 keys: every tail length
    ck = torch.randn(nkv, cap, hd, generator=g).to(dtype)
    cv = torch.randn(nkv, cap, hd, generator=g).to(dtype)
    qkv = torch.randn(t, (nh + 2 * nkv) * hd, generator=g)
    cos, sin = torch.rand(t, hd, generator=g), torch.rand(t, hd, generator=g)
    want_k, want_v = ck.clone(), cv.clone()
    got = torch.ops.wren.attend_decode(qkv, ck, cv, cos, sin, pos, nh, nkv, 0.125)
    # The Python path: RoPE as fast_decode writes it, keys/values into the cache, causal rows.
    half = hd // 2
    qk = qkv[:, : (nh + nkv) * hd].view(t, nh + nkv, hd).transpose(0, 1)
    qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin
    want_k[:, pos : pos + t] = qk[nh:].to(dtype)  # rounded to nearest when half
    want_v[:, pos : pos + t] = qkv[:, (nh + nkv) * hd :].view(t, nkv, hd).transpose(0, 1).to(dtype)
    assert torch.equal(ck, want_k) and torch.equal(cv, want_v)  # bit-identical cache writes
    rows = []
    for i in range(t):
        q = qk[:nh, i : i + 1].unsqueeze(0).double()
        k = want_k[:, : pos + i + 1].unsqueeze(0).double()
        v = want_v[:, : pos + i + 1].unsqueeze(0).double()
        out = F.scaled_dot_product_attention(q, k, v, scale=0.125, enable_gqa=True)
        rows.append(out[0].transpose(0, 1).reshape(1, nh * hd))
    assert rel_err(got, torch.cat(rows).float()) < 1e-5
    # Row i alone, after rows < i were written, gives the same bits as in the batch.
    for i in range(t):
        ck2, cv2 = want_k.clone(), want_v.clone()
        alone = torch.ops.wren.attend_decode(
            qkv[i : i + 1], ck2, cv2, cos[i : i + 1], sin[i : i + 1], pos + i, nh, nkv, 0.125
        )
        assert torch.equal(alone, got[i : i + 1]), i


def test_vnni_is_built_only_for_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build adds AVX-512 VNNI where /proc/cpuinfo lists it, and is keyed by its flags, so a
    cache shared with an AVX2-only machine never hands that machine a VNNI library."""
    avx2 = {"avx2", "fma", "f16c"}
    monkeypatch.setattr(kernels, "cpu_flags", lambda: avx2)
    plain, plain_dir = kernels.cflags(), kernels.build_dir()
    assert plain == kernels.CFLAGS
    monkeypatch.setattr(kernels, "cpu_flags", lambda: avx2 | {"avx512_vnni", "avx512vl"})
    assert kernels.cflags() == kernels.CFLAGS + kernels.VNNI_CFLAGS
    assert kernels.build_dir() != plain_dir


@needs_cpu
def test_a_layer_stack_refuses_tensors_that_are_not_whole_layers() -> None:
    assert kernels.available()
    q = Q4Linear.from_weight(grid_weight(64, 64)).tensors
    norm = torch.ones(64)
    layer = [*q, norm, *q, *q, norm, *q]  # 14 tensors, but o/gate_up/down shapes do not fit
    with pytest.raises(RuntimeError, match="14 tensors a layer"):
        torch.classes.wren.LayerStack(layer[:13])
    with pytest.raises(RuntimeError, match="shapes do not fit together"):
        torch.classes.wren.LayerStack(layer)
