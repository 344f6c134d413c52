"""Fully connected hidden layers with the seminar's regularisers: dropout, DropConnect, batch norm."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from reprotext.models.dropconnect import DropConnectLinear


def fully_connected(in_dim: int, widths: Sequence[int], dropout: float = 0.0, dropconnect: float = 0.0,
                    batch_norm: bool = False) -> nn.Sequential:
    """Per width: linear (DropConnect) -> batch norm (optional) -> ReLU -> dropout; (B, in_dim) -> (B, widths[-1]).

    Batch norm sits between the linear map and the non-linearity, as in Ioffe & Szegedy 2015.
    """
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(DropConnectLinear(in_dim, width, dropconnect))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers += [nn.ReLU(), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers)
