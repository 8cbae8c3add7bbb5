"""PackedAdam against torch.optim.Adam (coupled L2 decay) and torch.optim.AdamW (decoupled decay), float64."""

import pytest
import torch

from targetcodec.optim import PackedAdam


@pytest.mark.parametrize("mode, reference", [("l2", torch.optim.Adam), ("decoupled", torch.optim.AdamW)])
def test_packed_adam_equals_torch(mode, reference):
    gen = torch.Generator().manual_seed(0)
    R, lrs, wd = 3, [1e-3, 3e-2, 0.1], 0.05
    start = torch.randn(R, 4, 2, generator=gen, dtype=torch.float64)
    target = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    packed = start.clone()
    optimiser = PackedAdam([packed], [wd], weight_decay_modes=[mode])
    singles = [start[r].clone().requires_grad_(True) for r in range(R)]
    torch_optimisers = [reference([p], lr=lr, weight_decay=wd) for p, lr in zip(singles, lrs)]
    for step in range(20):
        factor = 0.5 + 0.5 * step / 19  # a changing learning rate, as the schedule gives
        optimiser.step([3 * (packed - target) ** 2], torch.tensor(lrs, dtype=torch.float64) * factor)
        for p, o, lr in zip(singles, torch_optimisers, lrs):
            o.zero_grad()
            (p - target).pow(3).sum().backward()
            o.param_groups[0]["lr"] = lr * factor
            o.step()
    for r in range(R):
        torch.testing.assert_close(packed[r], singles[r].detach(), rtol=1e-12, atol=1e-12)


def test_the_two_modes_differ_and_bad_mode_is_refused():
    p1, p2 = torch.ones(1, 3, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    PackedAdam([p1], [0.1], weight_decay_modes=["l2"]).step(
        [torch.zeros(1, 3, dtype=torch.float64)], torch.tensor([0.01])
    )
    PackedAdam([p2], [0.1], weight_decay_modes=["decoupled"]).step(
        [torch.zeros(1, 3, dtype=torch.float64)], torch.tensor([0.01])
    )
    # coupled: the decay is the whole gradient, so Adam moves by lr; decoupled: by lr * wd * p
    torch.testing.assert_close(p1, torch.full((1, 3), 1 - 0.01, dtype=torch.float64))
    torch.testing.assert_close(p2, torch.full((1, 3), 1 - 0.01 * 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match="'adamw'"):
        PackedAdam([p1], [0.1], weight_decay_modes=["adamw"])
