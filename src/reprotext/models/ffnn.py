"""A Bengio-style feed-forward network over a fixed window of the first L pieces.

Bengio et al. 2003, "A Neural Probabilistic Language Model": every position is
mapped by the same projection, the L projected vectors are concatenated (so the
network sees word order, unlike a bag), and fully connected layers follow.
Here the projection is the embedding table followed by one shared linear map
(D -> P), which lets wide pretrained vectors feed a narrow concatenation.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reprotext.models.fc import fully_connected
from reprotext.tokenizer import PAD


class FFNNEncoder(nn.Module):
    """ids (B, T) -> the first ``window`` pieces, projected, concatenated, through ``hidden`` layers -> (B, H)."""

    def __init__(self, embedding: nn.Embedding, window: int = 256, proj_dim: int = 64, hidden: Sequence[int] = (256,),
                 dropout: float = 0.0, dropconnect: float = 0.0, batch_norm: bool = False):
        super().__init__()
        if window < 1 or proj_dim < 1:
            raise ValueError(f"ffnn window and proj_dim must be >= 1, got {window} and {proj_dim}")
        self.embedding = embedding
        self.window = window
        self.proj = nn.Linear(embedding.embedding_dim, proj_dim)  # shared by all positions
        self.fc = fully_connected(window * proj_dim, hidden, dropout, dropconnect, batch_norm)
        self.out_dim = hidden[-1] if hidden else window * proj_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = F.pad(ids[:, : self.window], (0, max(0, self.window - ids.shape[1])), value=PAD)  # (B, L)
        mask = (ids != PAD).unsqueeze(-1)  # (B, L, 1)
        x = self.proj(self.embedding(ids)) * mask  # (B, L, P); empty positions contribute zeros, not the bias
        return self.fc(x.flatten(1))  # (B, L*P) -> (B, H)
