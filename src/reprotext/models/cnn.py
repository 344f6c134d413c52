"""A Kim-style convolutional encoder: several filter widths, ReLU, max-over-time pooling.

Kim 2014, "Convolutional Neural Networks for Sentence Classification".
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reprotext.tokenizer import PAD


class CNNEncoder(nn.Module):
    """ids (B, T) -> for each width w, ``filters`` feature maps max-pooled over time -> (B, len(widths) * filters)."""

    def __init__(self, embedding: nn.Embedding, widths: Sequence[int] = (3, 4, 5), filters: int = 100):
        super().__init__()
        if not widths or min(widths) < 1 or filters < 1:
            raise ValueError(f"cnn needs filter widths >= 1 and filters >= 1, got {list(widths)} and {filters}")
        self.embedding = embedding
        self.widths = tuple(widths)
        self.convs = nn.ModuleList(nn.Conv1d(embedding.embedding_dim, filters, w) for w in self.widths)
        self.out_dim = filters * len(self.widths)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != PAD).sum(1)  # (B,); padding is on the right only
        ids = F.pad(ids, (0, max(0, max(self.widths) - ids.shape[1])), value=PAD)  # at least one window per width
        x = self.embedding(ids).transpose(1, 2)  # (B, D, T)
        pooled = []
        for w, conv in zip(self.widths, self.convs):
            h = F.relu(conv(x))  # (B, F, T-w+1)
            # Only windows that start inside the document count (one, padded, for a document shorter than w),
            # so how much padding the batch adds never changes a document's features.
            starts = torch.arange(h.shape[2], device=ids.device)  # (T-w+1,)
            valid = starts < (lengths - w + 1).clamp(min=1).unsqueeze(1)  # (B, T-w+1)
            pooled.append(h.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(2))  # (B, F)
        return torch.cat(pooled, 1)  # (B, len(widths) * F)
