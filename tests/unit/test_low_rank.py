"""A tuned adapter served beside the decoder's weights (fast_decode.LowRankLinear).

The update W + B @ A is computed as base(x) + (x @ A.T) @ B.T, A and B rounded to half
precision; these tests check it against the merged weight, for a fused linear whose parts carry
their own updates (q/k/v: A stacked, B block-diagonal) or none, over 4-bit weights as a GGUF
holds them, and that a 4-bit layer with an update stays 4-bit (a merged update would leave the
grid).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.unit.test_kernels import grid_weight, needs_cpu, rel_err
from wren.model import kernels
from wren.model.fast_decode import (
    DenseLinear,
    LowRankLinear,
    Q4Linear,
    half_values,
    with_low_rank,
)

IN, R = 64, 4
PARTS = [("q", 64), ("k", 32), ("v", 32)]
# Part boundaries inside the kernel's 16-row tiles.
UNEVEN = [("q", 56), ("k", 36), ("v", 36)]
Pairs = dict[str, tuple[torch.Tensor, torch.Tensor]]


def updates(names: list[str], seed: int = 1, parts: list[tuple[str, int]] = PARTS) -> Pairs:
    g = torch.Generator().manual_seed(seed)
    out = dict(parts)
    return {
        n: (torch.randn(R, IN, generator=g), torch.randn(out[n], R, generator=g) * 0.1)
        for n in names
    }


def merged(
    weight: torch.Tensor, low_rank: Pairs, parts: list[tuple[str, int]] = PARTS
) -> torch.Tensor:
    """The weight with each part's update added as it is served: A and B in half precision."""
    rows = []
    start = 0
    for name, out in parts:
        w = weight[start : start + out]
        if name in low_rank:
            a, b = low_rank[name]
            w = w + half_values(b) @ half_values(a)
        rows.append(w)
        start += out
    return torch.cat(rows)


def test_the_update_beside_the_weights_is_the_merged_weight() -> None:
    weight = torch.randn(128, IN)
    x = torch.randn(3, IN)
    norm = torch.rand(IN) + 0.5
    for names in (["q", "k", "v"], ["q", "v"], ["k"]):
        low_rank = updates(names)
        used: set[str] = set()
        lin = with_low_rank(DenseLinear(weight), PARTS, low_rank, used)
        assert isinstance(lin, LowRankLinear) and used == set(names)
        want = DenseLinear(merged(weight, low_rank))
        assert torch.allclose(lin(x), want(x), atol=1e-4), names
        assert torch.allclose(lin.normed(x, norm, 1e-5), want.normed(x, norm, 1e-5), atol=1e-4)


def test_a_linear_without_an_update_is_left_as_it_is() -> None:
    base = DenseLinear(torch.randn(128, IN))
    used: set[str] = set()
    assert with_low_rank(base, PARTS, {}, used) is base
    assert used == set()


def test_four_bit_weights_stay_four_bit_with_the_update_beside_them() -> None:
    weight = grid_weight(128, IN)
    base = Q4Linear.from_weight(weight)
    assert base is not None
    low_rank = updates(["q", "k", "v"])
    lin = with_low_rank(base, PARTS, low_rank, set())
    assert isinstance(lin, LowRankLinear) and lin.base is base
    x = torch.randn(2, IN)
    norm = torch.rand(IN) + 0.5
    want = F.rms_norm(x, (IN,), norm, 1e-5) @ merged(weight, low_rank).t()
    # Within the 4-bit kernels' activation rounding of the fp32 merged model.
    assert rel_err(lin.normed(x, norm, 1e-5), want) < 1e-3
    assert rel_err(base.normed(x, norm, 1e-5), want) > 1e-2  # the update is there
    # The merged weight is off the 4-bit grid: it could only be served at fp32.
    assert Q4Linear.from_weight(merged(weight, low_rank)) is None


@needs_cpu
def test_the_kernel_computes_the_update_inside_the_4_bit_matmul() -> None:
    """With Wren's kernels the update is computed in the same `q4_linear` call (no extra torch
    calls per linear): it equals the torch side path, a part without an update adds nothing,
    and each output row is the same whatever the batch it was computed in (one or two rows:
    each parallel task computes z for its own parts; more: z once for all)."""
    assert kernels.available()
    weight = grid_weight(128, IN)
    base = Q4Linear.from_weight(weight)
    assert base is not None
    low_rank = updates(["q", "v"], parts=UNEVEN)  # k has no update
    lin = with_low_rank(base, UNEVEN, low_rank, set())
    assert isinstance(lin, LowRankLinear) and lin.fused
    x = torch.randn(5, IN)
    norm = torch.rand(IN) + 0.5
    delta = merged(weight, low_rank, UNEVEN) - weight
    want = base.normed(x, norm, 1e-5) + F.rms_norm(x, (IN,), norm, 1e-5) @ delta.t()
    got = lin.normed(x, norm, 1e-5)
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.equal(got[:, 56:92], base.normed(x, norm, 1e-5)[:, 56:92])  # k: no update
    assert torch.allclose(lin(x), base(x) + x @ delta.t(), atol=1e-4)
    for i in range(5):
        assert torch.equal(lin.normed(x[i : i + 1], norm, 1e-5)[0], got[i])
    assert torch.equal(lin.normed(x[1:3], norm, 1e-5), got[1:3])
    assert torch.equal(lin.normed(x[:3], norm, 1e-5), got[:3])


@pytest.mark.parametrize("rank", [8, 12, 16])
def test_prefill_rows_match_decode_rows_at_real_ranks(rank: int) -> None:
    """The kernel adds B·z one way for one or two rows (a decode step) and another, row by row
    over 8 outputs at a time, for more (prefill); both must give the same bits, or a token's
    prefilled output would differ from the same token decoded. Ranks of 8 and more fill the
    vector lanes the rank-4 test above leaves empty (12: one chunk of 8 plus a tail)."""
    assert kernels.available()
    g = torch.Generator().manual_seed(rank)
    weight = grid_weight(128, IN)
    base = Q4Linear.from_weight(weight)
    assert base is not None
    out = dict(UNEVEN)
    low_rank = {
        n: (torch.randn(rank, IN, generator=g), torch.randn(out[n], rank, generator=g) * 0.1)
        for n in ("q", "k", "v")
    }
    lin = with_low_rank(base, UNEVEN, low_rank, set())
    assert isinstance(lin, LowRankLinear) and lin.fused
    x = torch.randn(9, IN, generator=g)
    together = lin(x)
    delta = merged(weight, low_rank, UNEVEN) - weight
    assert torch.allclose(together, base(x) + x @ delta.t(), atol=1e-3)
    for i in range(9):
        assert torch.equal(lin(x[i : i + 1])[0], together[i])
    assert torch.equal(lin(x[3:5]), together[3:5])
