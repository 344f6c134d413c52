"""Encoder + classification head, the checkpoint format, and the model config it stores."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprotext.artifacts import ArtifactKind, load_artifact, save_artifact
from reprotext.errors import ArtifactError
from reprotext.models.bag import BagEncoder, bag_statistics
from reprotext.models.cnn import CNNEncoder
from reprotext.models.ensemble import EnsembleEncoder, EnsembleHead
from reprotext.models.ffnn import FFNNEncoder
from reprotext.models.head import Head
from reprotext.models.rnn import RNNEncoder
from reprotext.models.transformer import TransformerEncoder
from reprotext.tokenizer import PAD

WEIGHTS_FILE, CONFIG_FILE = "model.pt", "model.json"
MODEL = ArtifactKind("model", WEIGHTS_FILE, CONFIG_FILE, fix="rerun its stage", made="model was trained",
                     tokenizer_fix="retrain it or use its own tokenizer")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network; stored inside every checkpoint.

    ``encoder`` holds the chosen encoder's own options (JSON values), e.g.
    ``{"widths": [3, 4, 5], "filters": 100}`` for the CNN; dropout, DropConnect
    and batch norm apply to the head and to the FFNN's hidden layers.
    """

    model: str
    vocab_size: int
    embedding_dim: int
    labels: tuple[str, ...]
    hidden_dim: int = 0
    dropout: float = 0.0
    max_len: int = 1024
    tokenizer_sha256: str = ""
    dropconnect: float = 0.0
    batch_norm: bool = False
    encoder: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


# name -> builder(embedding, config); every encoder has .embedding and .out_dim.
ENCODERS: dict[str, Callable[[nn.Embedding, ModelConfig], nn.Module]] = {
    "bag": lambda emb, c: BagEncoder(emb, **c.encoder),
    "ffnn": lambda emb, c: FFNNEncoder(emb, **c.encoder, dropout=c.dropout, dropconnect=c.dropconnect,
                                       batch_norm=c.batch_norm),
    "cnn": lambda emb, c: CNNEncoder(emb, **c.encoder),
    "rnn": lambda emb, c: RNNEncoder(emb, **c.encoder, dropout=c.dropout),
    "transformer": lambda emb, c: TransformerEncoder(emb, **c.encoder, dropout=c.dropout),
}
ENSEMBLE = "ensemble"  # options: {"members": {kind: its options}, "copies": n}: n members of each kind


def _copy_embedding(embedding: nn.Embedding) -> nn.Embedding:
    """A table of its own with the same vectors (and the same frozenness) for a further ensemble member."""
    copy = nn.Embedding(embedding.num_embeddings, embedding.embedding_dim, padding_idx=embedding.padding_idx)
    copy.weight.data.copy_(embedding.weight.data)
    copy.weight.requires_grad_(embedding.weight.requires_grad)
    return copy


def _ensemble(embedding: nn.Embedding, config: ModelConfig) -> EnsembleEncoder:
    kinds_options, copies = config.encoder.get("members") or {}, config.encoder.get("copies", 1)
    if ENSEMBLE in kinds_options or not set(kinds_options) <= set(ENCODERS):
        raise ValueError(f"ensemble members must be among {', '.join(ENCODERS)}, got {list(kinds_options)}")
    kinds = {f"{kind}{i}": kind for kind in kinds_options for i in range(copies)}
    members = {name: ENCODERS[kind](embedding if j == 0 else _copy_embedding(embedding),
                                    replace(config, model=kind, encoder=kinds_options[kind]))
               for j, (name, kind) in enumerate(kinds.items())}
    return EnsembleEncoder(members, kinds)


ENCODERS[ENSEMBLE] = _ensemble


def make_head(encoder: nn.Module, num_classes: int, config: ModelConfig) -> nn.Module:
    """The head for ``encoder``: one per member for an ensemble, else one over its pooled vector."""
    options = (num_classes, config.hidden_dim, config.dropout, config.dropconnect, config.batch_norm)
    if isinstance(encoder, EnsembleEncoder):
        return EnsembleHead(encoder.member_dims, *options)
    return Head(encoder.out_dim, *options)


class Classifier(nn.Module):
    """ids (B, T) -> logits (B, C)."""

    def __init__(self, config: ModelConfig, vectors: np.ndarray | None = None, freeze_embeddings: bool = False):
        super().__init__()
        if config.model not in ENCODERS:
            raise ArtifactError(f"unknown model {config.model!r}; valid: {', '.join(ENCODERS)}")
        self.config = config
        embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=PAD)
        if vectors is not None:
            if vectors.shape != (config.vocab_size, config.embedding_dim):
                raise ArtifactError(f"embedding matrix has shape {vectors.shape}, the model needs "
                                    f"{(config.vocab_size, config.embedding_dim)}; rerun `dvc repro embed`")
            embedding.weight.data.copy_(torch.from_numpy(vectors))
        embedding.weight.requires_grad_(not freeze_embeddings)
        try:
            self.encoder = ENCODERS[config.model](embedding, config)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(f"{config.model} encoder options {config.encoder} are invalid ({exc}); "
                                "fix train.<model> in params.yaml or retrain the model") from exc
        self.head = make_head(self.encoder, len(config.labels), config)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))  # (B, C)

    def member_logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Each member's logits (B, K, C): K = 1 but for an ensemble, whose members each train on their own loss."""
        return self.head.members(self.encoder(ids))

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Parameters whose gradients are sparse (a bag's tables with ``sparse: true``); the optimiser pairs them."""
        get = getattr(self.encoder, "sparse_parameters", None)
        return get() if get is not None else []


def encoder_statistics(model: str, options: dict, pieces: Sequence[str], documents: Iterable[torch.Tensor],
                       labels: Sequence[int] | None = None, n_classes: int = 0) -> tuple[dict, dict[str, torch.Tensor]]:
    """What an encoder needs from its tokenizer and the training text, computed before the model is built.

    Returns (the encoder options, completed where the statistics decide a size, e.g. a bag's counted
    n-gram table; the buffers for ``load_statistics``). Nothing for encoders without statistics.
    ``documents``: batches of (B, T) piece ids of the training text; ``labels`` their class indices (for
    statistics that weigh features by the labels, a bag's ``nb_weights``).
    """
    if model == ENSEMBLE:
        members, stats = dict(options.get("members") or {}), {}
        for name, own in members.items():
            members[name], theirs = encoder_statistics(name, own, pieces, documents, labels, n_classes)
            stats.update({f"{name}.{key}": value for key, value in theirs.items()})
        return {**options, "members": members}, stats
    if model != "bag":
        return options, {}
    return bag_statistics(options, list(pieces), documents, labels, n_classes)


def load_statistics(model: Classifier, stats: dict[str, torch.Tensor]) -> None:
    """Give the model's encoder the statistics of ``encoder_statistics`` (a no-op when there are none)."""
    if stats:
        model.encoder.load_statistics(stats)


def copy_statistics(model: Classifier, source: Classifier) -> None:
    """Copy the encoder's buffers (statistics, not learned weights) from ``source``, built from the same config."""
    theirs = dict(source.encoder.named_buffers())
    for name, buf in model.encoder.named_buffers():
        buf.copy_(theirs[name])


def save_model(model: Classifier, directory: Path, info: dict) -> None:
    """Weights (a plain CPU state dict) and their config + provenance, side by side."""
    save_artifact(directory, MODEL, model.state_dict(), {"config": asdict(model.config), **info})


def _rebuild(meta: dict) -> Classifier:
    cfg = meta["config"]
    return Classifier(ModelConfig(**{**cfg, "labels": tuple(cfg["labels"])}))


def load_model(directory: str | Path, tokenizer_sha256: str | None = None) -> tuple[Classifier, dict]:
    """Rebuild a saved classifier; refuse one that was trained with another tokenizer."""
    return load_artifact(directory, MODEL, _rebuild, tokenizer_sha256)
