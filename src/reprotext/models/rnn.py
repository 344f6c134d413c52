"""A recurrent encoder: a (bidirectional) LSTM or GRU over the pieces, pooled over time.

Hochreiter & Schmidhuber 1997 (LSTM), Cho et al. 2014 (GRU), Schuster & Paliwal
1997 (bidirectional). Each direction of each layer is its own one-way RNN over
the padded batch, which PyTorch runs on its fused kernels; a packed sequence
would skip the padding too but falls back to a step-by-step loop on the CPU
(about 14x slower). Padding is on the right, so the forward direction reaches
it only after the document; the backward direction reads every document
reversed in place (its pieces flipped, the padding left at the end). Either way
no state of a real piece ever depends on padding.
"""
from __future__ import annotations

import torch
from torch import nn

from reprotext.models.pooling import masked_max, masked_mean
from reprotext.tokenizer import PAD

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def _take(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b, t]] for every b, t: (B, T, C) gathered along time by (B, T)."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class RNNEncoder(nn.Module):
    """ids (B, T) -> hidden states (B, T, dirs*H) pooled by mean, max, or the final states -> (B, dirs*H)."""

    def __init__(self, embedding: nn.Embedding, cell: str = "lstm", hidden_size: int = 128, layers: int = 1,
                 bidirectional: bool = True, pooling: str = "max", dropout: float = 0.0):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"rnn cell must be one of {', '.join(CELLS)}, got {cell!r}")
        if pooling not in ("mean", "max", "last"):
            raise ValueError(f"rnn pooling must be 'mean', 'max' or 'last', got {pooling!r}")
        if layers < 1 or hidden_size < 1:
            raise ValueError(f"rnn layers and hidden_size must be >= 1, got {layers} and {hidden_size}")
        self.embedding = embedding
        self.pooling = pooling
        self.hidden_size = hidden_size
        directions = 2 if bidirectional else 1
        widths = [embedding.embedding_dim] + [hidden_size * directions] * (layers - 1)
        self.forward_layers = nn.ModuleList(CELLS[cell](w, hidden_size, batch_first=True) for w in widths)
        self.backward_layers = nn.ModuleList(
            CELLS[cell](w, hidden_size, batch_first=True) for w in (widths if bidirectional else []))
        self.drop = nn.Dropout(dropout)  # between stacked layers, where nn.LSTM(dropout=...) puts it
        self.out_dim = hidden_size * directions

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, T = ids.shape
        steps = torch.arange(T, device=ids.device)
        lengths = (ids != PAD).sum(1).clamp(min=1)  # (B,); an all-pad row is read as one PAD step
        inside = steps < lengths.unsqueeze(1)  # (B, T)
        # Position t of the reversed document holds piece L-1-t; the padding stays put. The map is its own inverse.
        flip = torch.where(inside, lengths.unsqueeze(1) - 1 - steps, steps)  # (B, T)
        x = self.embedding(ids)  # (B, T, D)
        for i, forward_rnn in enumerate(self.forward_layers):
            if i:
                x = self.drop(x)
            states = [forward_rnn(x)[0]]  # (B, T, H)
            if self.backward_layers:
                states.append(_take(self.backward_layers[i](_take(x, flip))[0], flip))  # (B, T, H), document order
            x = torch.cat(states, -1)  # (B, T, dirs*H)
        if self.pooling == "last":
            # The forward state after the last piece; the backward state after reading back to the first.
            last = [x[torch.arange(B, device=ids.device), lengths - 1, : self.hidden_size]]
            if self.backward_layers:
                last.append(x[:, 0, self.hidden_size:])
            return torch.cat(last, -1)  # (B, dirs*H)
        return masked_mean(x, inside) if self.pooling == "mean" else masked_max(x, inside)
