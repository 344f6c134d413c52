"""Reductions over time that ignore padding: (B, T, D) + mask (B, T) -> (B, D)."""
from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the unmasked steps; a row with none pools to zeros."""
    m = mask.to(x.dtype)  # (B, T)
    # A batched matrix product: no (B, T, D) temporary for the masked copy.
    return torch.bmm(m.unsqueeze(1), x).squeeze(1) / m.sum(1, keepdim=True).clamp(min=1)


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of the unmasked steps; a row with none pools to zeros."""
    x = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)  # (B, D)
    return torch.where(torch.isinf(x) & (x < 0), torch.zeros_like(x), x)
