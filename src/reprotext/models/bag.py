"""Bag of embeddings: the mean (or max) of a document's piece vectors, fastText-style.

Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification": optional
hashed bigram features (adjacent piece pairs hashed into a fixed number of
buckets, each with its own vector) give the bag some word order.
"""
from __future__ import annotations

import torch
from torch import nn

from reprotext.models.pooling import masked_max, masked_mean
from reprotext.tokenizer import PAD

# Multiplier of the bigram hash (a, b) -> (a * P + b) mod buckets; a prime well above any vocabulary size.
_HASH_PRIME = 1_000_003


class BagEncoder(nn.Module):
    """Pooled piece (and hashed bigram) embeddings; the output size is the embedding dim."""

    def __init__(self, embedding: nn.Embedding, pooling: str = "mean", bigram_buckets: int = 0):
        super().__init__()
        if pooling not in ("mean", "max"):
            raise ValueError(f"bag pooling must be 'mean' or 'max', got {pooling!r}")
        self.embedding = embedding
        self.pooling = pooling
        self.out_dim = embedding.embedding_dim
        self.bigrams: nn.Embedding | None = None
        if bigram_buckets:
            # Zero-initialised: training starts from the plain unigram bag and learns what bigrams add.
            self.bigrams = nn.Embedding(bigram_buckets, self.out_dim)
            nn.init.zeros_(self.bigrams.weight)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != PAD  # (B, T)
        x = self.embedding(ids)  # (B, T, D)
        if self.bigrams is not None:
            pair_mask = mask[:, :-1] & mask[:, 1:]  # (B, T-1)
            buckets = (ids[:, :-1] * _HASH_PRIME + ids[:, 1:]) % self.bigrams.num_embeddings  # (B, T-1)
            x = torch.cat([x, self.bigrams(buckets)], 1)  # (B, 2T-1, D)
            mask = torch.cat([mask, pair_mask], 1)
        return masked_mean(x, mask) if self.pooling == "mean" else masked_max(x, mask)  # (B, D)
