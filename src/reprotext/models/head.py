"""The classification head: dropout, optional hidden layers, the output layer."""
from __future__ import annotations

import torch
from torch import nn

from reprotext.models.dropconnect import DropConnectLinear
from reprotext.models.fc import fully_connected


class Head(nn.Module):
    """Dropout, optional hidden layers (DropConnect, batch norm), and the output layer; (B, in_dim) -> (B, C)."""

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 0, dropout: float = 0.0,
                 dropconnect: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(dropout),
            fully_connected(in_dim, [hidden_dim] if hidden_dim else [], dropout, dropconnect, batch_norm),
            DropConnectLinear(hidden_dim or in_dim, num_classes, dropconnect),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def members(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of each member of the model, (B, 1, C): a plain head is one member."""
        return self(x).unsqueeze(1)
