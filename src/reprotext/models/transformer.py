"""A Transformer encoder: self-attention + feed-forward blocks with residuals and LayerNorm.

Vaswani et al. 2017, "Attention Is All You Need", with the LayerNorm before each
sub-layer (pre-LN, Xiong et al. 2020), which trains without a warmup schedule.
Learned absolute positions (up to ``max_positions``, 512 as in BERT); a learned
[CLS] vector is prepended (Devlin et al. 2019) and the document vector is its
final state or the mean of the piece states.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reprotext.errors import ConfigError
from reprotext.models.pooling import masked_mean
from reprotext.tokenizer import PAD

MAX_POSITIONS = 512


class Block(nn.Module):
    """x + Attention(LN(x)), then x + FeedForward(LN(x)); (B, T, C) -> (B, T, C)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, h, T, C/h)
        # keep (B, T): True for keys that may be attended to; padding never is.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, h, T, C/h)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop(self.ff(self.ln2(x)))


class TransformerEncoder(nn.Module):
    """ids (B, T <= max_positions) -> [CLS] + pieces through ``layers`` blocks -> CLS state or mean -> (B, D)."""

    def __init__(self, embedding: nn.Embedding, layers: int = 2, heads: int = 4, ff_dim: int = 256,
                 pooling: str = "cls", max_positions: int = MAX_POSITIONS, dropout: float = 0.0):
        super().__init__()
        dim = embedding.embedding_dim
        if dim % heads:
            raise ConfigError(f"transformer: {heads} heads do not divide the embedding dim {dim}; "
                              "set train.transformer.heads to a divisor of embed.dim")
        if pooling not in ("cls", "mean"):
            raise ValueError(f"transformer pooling must be 'cls' or 'mean', got {pooling!r}")
        if not 1 <= max_positions <= MAX_POSITIONS:
            raise ValueError(f"transformer max_positions must be in [1, {MAX_POSITIONS}], got {max_positions}")
        self.embedding = embedding
        self.pooling = pooling
        self.positions = nn.Embedding(max_positions, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.positions.weight, std=0.02)  # small next to the word vectors, as in BERT/GPT-2
        nn.init.normal_(self.cls, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, ff_dim, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.states(ids)  # (B, 1+T, D)
        return x[:, 0] if self.pooling == "cls" else masked_mean(x[:, 1:], ids != PAD)  # (B, D)

    def states(self, ids: torch.Tensor) -> torch.Tensor:
        """The final [CLS] state and every piece's: ids (B, T) -> (B, 1+T, D) (a masked LM reads the pieces')."""
        B, T = ids.shape
        if T > self.positions.num_embeddings:
            raise ValueError(f"transformer got {T} pieces but has positions for {self.positions.num_embeddings}; "
                             "truncate to the model's max_len")
        mask = ids != PAD  # (B, T)
        x = self.embedding(ids) + self.positions(torch.arange(T, device=ids.device))  # (B, T, D)
        x = torch.cat([self.cls.expand(B, -1, -1).to(x.dtype), x], 1)  # (B, 1+T, D)
        keep = torch.cat([mask.new_ones(B, 1), mask], 1)  # (B, 1+T); [CLS] is always there to attend to
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, keep)
        return self.ln(x)  # (B, 1+T, D)
