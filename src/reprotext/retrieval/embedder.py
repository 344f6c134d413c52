"""Texts -> vectors with one saved representation (a classifier's encoder, a dual encoder, word2vec pieces)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reprotext import embeddings
from reprotext.errors import ArtifactError
from reprotext.io import read_json, sha256_file
from reprotext.retrieval import dual_encoder
from reprotext.retrieval.dense import encode, mean_pool
from reprotext.tokenizer import TokenArray, Tokenizer


@dataclass
class Embedder:
    """Texts -> vectors with one saved representation; ``identity`` names exactly which one."""

    kind: str  # classifier_encoder | dual_encoder | word2vec
    path: str
    identity: dict
    tokenizer: Tokenizer
    max_len: int
    _embed: Callable[[TokenArray], np.ndarray]
    lowercase: bool = False  # the model was trained on lowercased text (the retrieval pipeline's collection stage)
    center: bool = True  # centre vectors on the collection's mean before the cosine (not for a DSSM trained raw)

    def embed_tokens(self, docs: TokenArray) -> np.ndarray:
        return self._embed(docs)

    def embed_texts(self, texts: Sequence[str], threads: int = 2) -> np.ndarray:
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)
        return self._embed(self.tokenizer.encode_array(texts, threads=threads))


def load_embedder(model: str | Path, tokenizer_dir: str | Path, batch_size: int = 256,
                  max_len: int = 1024) -> Embedder:
    """A saved representation: a classifier (models/train, models/finetune), a dual encoder
    (models/finetune/dual_encoder) or piece embeddings (models/embeddings, mean-pooled)."""
    from reprotext.models import load_model
    from reprotext.models.classifier import CONFIG_FILE, WEIGHTS_FILE

    model = Path(model)
    tok = Tokenizer.load(tokenizer_dir)
    text = {}
    if (model / dual_encoder.CONFIG_FILE).is_file():
        encoder, config = dual_encoder.load_encoder(model, tok.sha256)
        kind, weights, max_len = "dual_encoder", model / dual_encoder.WEIGHTS_FILE, config.max_len
        # How the retrieval pipeline's DSSM reads text: lowercased, raw cosines (absent for the finetune stage's).
        text = read_json(model / dual_encoder.CONFIG_FILE).get("text", {})
    elif (model / CONFIG_FILE).is_file():
        classifier, _ = load_model(model, tok.sha256)
        encoder, kind, weights, max_len = classifier.encoder, "classifier_encoder", model / WEIGHTS_FILE, \
            classifier.config.max_len
    elif (model / embeddings.VECTORS_FILE).is_file():
        vectors = embeddings.load(model, tok.sha256)
        kind, weights = "word2vec", model / embeddings.VECTORS_FILE
        identity = {"kind": kind, "weights_sha256": sha256_file(weights), "tokenizer_sha256": tok.sha256,
                    "max_len": max_len}
        return Embedder(kind, str(model), identity, tok, max_len, lambda docs: mean_pool(vectors, docs, max_len))
    else:
        raise ArtifactError(f"{model}: not a saved model (no {CONFIG_FILE}, {dual_encoder.CONFIG_FILE} or "
                            f"{embeddings.VECTORS_FILE}); pass models/train, models/finetune, "
                            "models/finetune/dual_encoder or models/embeddings")
    identity = {"kind": kind, "weights_sha256": sha256_file(weights), "tokenizer_sha256": tok.sha256,
                "max_len": max_len}
    return Embedder(kind, str(model), identity, tok, max_len, lambda docs: encode(encoder, docs, max_len, batch_size),
                    lowercase=bool(text.get("lowercase", False)), center=bool(text.get("center", True)))


