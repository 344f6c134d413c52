"""The encoders of ``reprotext.models`` as language models, input and output embeddings tied.

Every model's ``outputs(ids)`` gives, per prediction direction, output states in the embedding's space and
their targets: ``[(h (B, T, D), targets (B, T))]``, targets IGNORE where nothing is predicted. The logits are
``h @ E.T + b`` with ``E`` the encoder's own input embedding (Press & Wolf 2017; Inan et al. 2017), so the
output table starts from the word2vec vectors as the input table does.

- transformer: a masked LM (Devlin et al. 2019); the states of the corrupted positions, through BERT's
  transform (dense, GELU, LayerNorm), predict the original pieces.
- rnn: a causal LM, forward and, for a bidirectional encoder, backward as in ELMo (Peters et al. 2018): each
  direction's own states predict the next (previous) piece; the two directions never mix, so neither sees the
  piece it predicts. ULMFiT (Howard & Ruder 2018) pretrains the same way.
- ffnn: Bengio et al. 2003: the previous ``context`` pieces, each through the encoder's embedding and shared
  projection, concatenated, a tanh layer, the next piece. Only the embedding and the projection carry over to the
  classifier: its fully connected layers read a document's first ``window`` positions, not a context.
"""
from __future__ import annotations

import torch
from torch import nn

from reprotext.errors import ConfigError
from reprotext.models.ffnn import FFNNEncoder
from reprotext.models.rnn import RNNEncoder, _take
from reprotext.models.transformer import TransformerEncoder
from reprotext.pretraining.objectives import IGNORE, context_windows, mask_pieces, next_targets, previous_targets
from reprotext.tokenizer import PAD

Outputs = list[tuple[torch.Tensor, torch.Tensor]]


class TiedOutput(nn.Module):
    """States in the embedding's space (N, D) -> logits over the vocabulary (N, V), by the input table itself."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.embedding = [embedding]  # a list: not registered twice (its weight belongs to the encoder)
        self.bias = nn.Parameter(torch.zeros(embedding.num_embeddings))

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding[0].weight  # (V, D)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.weight.T + self.bias  # (N, V)


class LanguageModel(nn.Module):
    """An encoder with an LM head; ``transferable()`` names the encoder weights the classifier takes over."""

    objective: str = ""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.output = TiedOutput(encoder.embedding)

    def outputs(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> Outputs:
        raise NotImplementedError

    def transferable(self) -> dict[str, torch.Tensor]:
        """The encoder's state dict entries a classifier with the same encoder config loads."""
        return {k: v.detach().cpu().clone() for k, v in self.encoder.state_dict().items()}


class MaskedLM(LanguageModel):
    """A transformer encoder predicting BERT-corrupted pieces."""

    objective = "masked_lm"

    def __init__(self, encoder: TransformerEncoder, rate: float, mask_share: float, random_share: float):
        super().__init__(encoder)
        dim = encoder.out_dim
        self.rate, self.mask_share, self.random_share = rate, mask_share, random_share
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))

    def outputs(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> Outputs:
        inputs, targets = mask_pieces(ids, self.rate, self.mask_share, self.random_share,
                                      self.encoder.embedding.num_embeddings, generator)
        states = self.encoder.states(inputs)[:, 1:]  # (B, T, D), [CLS] dropped
        return [(self.transform(states), targets)]


class CausalRNNLM(LanguageModel):
    """An RNN encoder's forward direction predicting the next piece, its backward direction the previous one."""

    objective = "causal_lm"

    def __init__(self, encoder: RNNEncoder):
        if encoder.backward_layers and len(encoder.forward_layers) > 1:
            raise ConfigError("a stacked bidirectional RNN feeds both directions into each upper layer, so a causal "
                              "LM on it would see the pieces it predicts; pretrain with train.rnn.layers: 1 or "
                              "train.rnn.bidirectional: false")
        super().__init__(encoder)
        dim, hidden = encoder.embedding.embedding_dim, encoder.hidden_size
        self.project = nn.ModuleList(nn.Linear(hidden, dim) for _ in range(1 + bool(encoder.backward_layers)))

    def outputs(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> Outputs:
        enc = self.encoder
        x = enc.embedding(ids)  # (B, T, D)
        h = x
        for i, layer in enumerate(enc.forward_layers):
            h = layer(enc.drop(h) if i else h)[0]  # (B, T, H)
        out = [(self.project[0](enc.drop(h)), next_targets(ids))]
        if enc.backward_layers:
            # RNNEncoder.forward's in-place reversal: a document's pieces flipped, its padding left at the end.
            B, T = ids.shape
            steps = torch.arange(T, device=ids.device)
            lengths = (ids != PAD).sum(1).clamp(min=1)
            flip = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)  # (B, T)
            back = _take(enc.backward_layers[0](_take(x, flip))[0], flip)  # (B, T, H), document order
            out.append((self.project[1](enc.drop(back)), previous_targets(ids)))
        return out


class NextPieceLM(LanguageModel):
    """Bengio et al. 2003 on an FFNN encoder's embedding and projection; (B, T) -> the next piece at every t."""

    objective = "next_piece"

    def __init__(self, encoder: FFNNEncoder, context: int, hidden: int, dropout: float):
        super().__init__(encoder)
        self.context = context
        proj_dim = encoder.proj.out_features
        self.hidden = nn.Sequential(nn.Linear(context * proj_dim, hidden), nn.Tanh(), nn.Dropout(dropout),
                                    nn.Linear(hidden, encoder.embedding.embedding_dim))

    def outputs(self, ids: torch.Tensor, generator: torch.Generator | None = None) -> Outputs:
        windows = context_windows(ids, self.context)  # (B, T, n): pieces t-n .. t-1
        x = self.encoder.proj(self.encoder.embedding(windows)) * (windows != PAD).unsqueeze(-1)  # (B, T, n, P)
        targets = ids.masked_fill(ids == PAD, IGNORE)
        return [(self.hidden(x.flatten(2)), targets)]  # (B, T, D)

    def transferable(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in super().transferable().items() if k.startswith(("embedding.", "proj."))}
