"""Bag of embeddings: the mean (or max) of a document's piece vectors, fastText-style.

Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification".
"""
from __future__ import annotations

import torch
from torch import nn

from reprotext.tokenizer import PAD


class BagEncoder(nn.Module):
    """Pooled piece embeddings; the output size is the embedding dim."""

    def __init__(self, embedding: nn.Embedding, pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "max"):
            raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
        self.embedding = embedding
        self.pooling = pooling
        self.out_dim = embedding.embedding_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != PAD).unsqueeze(-1)  # (B, T, 1)
        x = self.embedding(ids)  # (B, T, D)
        if self.pooling == "mean":
            return (x * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, D)
        x = x.masked_fill(~mask, float("-inf")).amax(1)
        return torch.where(torch.isinf(x), torch.zeros_like(x), x)  # an all-pad row pools to zeros
