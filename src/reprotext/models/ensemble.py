"""An ensemble: several encoders, each under a head of its own, their predictions averaged.

Independently initialised networks make different errors, and the mean of their predicted
distributions is more accurate and better calibrated than its members (Dietterich 2000;
Lakshminarayanan et al. 2017). Here the members train side by side in one model: each member's
loss is its own cross-entropy (the training loss is their mean, so no member's gradient depends on
another's output), each keeps its own embedding table, and early stopping watches the ensemble's
dev loss. A bag and a CNN fail in different ways (every word without order against the strongest
short phrases); copies of each differ by their random heads, filters and dropout masks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reprotext.models.head import Head


class EnsembleEncoder(nn.Module):
    """ids (B, T) -> the members' features side by side: (B, sum of their out_dim).

    ``members``: name -> encoder; ``kinds``: name -> the encoder type it is (whose statistics it takes).
    """

    def __init__(self, members: dict[str, nn.Module], kinds: dict[str, str]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members, got {list(members)}")
        self.members = nn.ModuleDict(members)
        self.kinds = dict(kinds)
        self.member_dims = [m.out_dim for m in members.values()]
        self.out_dim = sum(self.member_dims)

    @property
    def embedding(self) -> nn.Embedding:
        """The first member's embedding table (the one built from the model's pieces and vectors)."""
        return next(iter(self.members.values())).embedding

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(ids) for m in self.members.values()], 1)  # (B, sum out_dim)

    def load_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        """``stats`` keyed ``<kind>.<buffer>`` (as ``encoder_statistics`` returns them): every member of a kind takes them."""
        for name, member in self.members.items():
            own = {key.split(".", 1)[1]: value for key, value in stats.items()
                   if key.split(".", 1)[0] == self.kinds[name]}
            if own:
                member.load_statistics(own)

    def sparse_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.members.values() for p in getattr(m, "sparse_parameters", list)()]


class EnsembleHead(nn.Module):
    """One head per member over its own slice of the features; (B, sum dims) -> the averaged logits (B, C)."""

    def __init__(self, member_dims: list[int], num_classes: int, hidden_dim: int = 0, dropout: float = 0.0,
                 dropconnect: float = 0.0, batch_norm: bool = False):
        super().__init__()
        self.member_dims = list(member_dims)
        self.heads = nn.ModuleList(Head(d, num_classes, hidden_dim, dropout, dropconnect, batch_norm)
                                   for d in self.member_dims)

    def members(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logits: (B, K, C)."""
        return torch.stack([h(z) for h, z in zip(self.heads, x.split(self.member_dims, 1))], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine(self.members(x))


def combine(members: torch.Tensor) -> torch.Tensor:
    """(B, K, C) member logits -> (B, C) logits of the mean of their distributions (a lone member: its own)."""
    if members.shape[1] == 1:
        return members[:, 0]
    return torch.logsumexp(F.log_softmax(members, -1), 1) - math.log(members.shape[1])


def member_cross_entropy(members: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean over members of each one's cross-entropy: (B, K, C), (B,) -> a scalar (a lone member: its own)."""
    B, K, C = members.shape
    return F.cross_entropy(members.reshape(B * K, C), y.repeat_interleave(K))
