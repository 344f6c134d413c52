"""A recurrent encoder: a (bidirectional) LSTM or GRU over the pieces, pooled over time.

Hochreiter & Schmidhuber 1997 (LSTM), Cho et al. 2014 (GRU), Schuster & Paliwal
1997 (bidirectional). Sequences are packed, so padding is never read.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from reprotext.models.pooling import masked_max, masked_mean
from reprotext.tokenizer import PAD

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RNNEncoder(nn.Module):
    """ids (B, T) -> hidden states (B, T, dirs*H) pooled by mean, max, or the final states -> (B, dirs*H)."""

    def __init__(self, embedding: nn.Embedding, cell: str = "lstm", hidden_size: int = 128, layers: int = 1,
                 bidirectional: bool = True, pooling: str = "max", dropout: float = 0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"rnn cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if pooling not in ("mean", "max", "last"):
            raise ValueError(f"rnn pooling must be 'mean', 'max' or 'last', got {pooling!r}")
        self.embedding = embedding
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        # PyTorch applies dropout between stacked layers only.
        self.rnn = CELLS[cell](embedding.embedding_dim, hidden_size, num_layers=layers, batch_first=True,
                               bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.out_dim = hidden_size * self.directions

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        mask = ids != PAD  # (B, T)
        lengths = mask.sum(1).clamp(min=1)  # an all-pad row is read as one PAD step
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (layers*dirs, B, H); LSTM also returns c_n
            # The top layer's forward state after the last piece and backward state after the first.
            return h_n[-self.directions:].transpose(0, 1).reshape(B, -1)  # (B, dirs*H)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, dirs*H)
        mask = torch.arange(T, device=ids.device) < lengths.unsqueeze(1)
        return masked_mean(out, mask) if self.pooling == "mean" else masked_max(out, mask)
