"""DropConnect: zero individual weights of a linear layer in training, not its outputs.

Wan et al. 2013, "Regularization of Neural Networks using DropConnect". One mask
is drawn per forward pass and shared by the batch (the cheap variant of Merity
et al. 2018's weight drop); the kept weights are scaled by 1 / (1 - p), so at
inference the layer is the plain linear map with the expected weights (the
mean-field approximation, not the paper's Gaussian moment matching).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DropConnectLinear(nn.Linear):
    """``nn.Linear`` whose weight entries are dropped with probability ``p`` in training; plain in eval."""

    def __init__(self, in_features: int, out_features: int, p: float = 0.0, bias: bool = True):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"DropConnect probability must be in [0, 1), got {p}")
        super().__init__(in_features, out_features, bias)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.dropout(self.weight, self.p, self.training) if self.p else self.weight  # (out, in)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"
