"""Document vectors (mean-pooled piece embeddings, an encoder's pooled output) and an exact cosine index.

Before the cosine the vectors are centred on the mean vector of the indexed
collection (no labels involved): averaged vectors share a large common
direction that otherwise dominates every cosine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from reprotext.tokenizer import PAD, TokenArray
from reprotext.training.data import collate

# Above this many documents, an index searches with faiss (exact inner product) when it is installed.
FAISS_MIN_DOCS = 100_000


def mean_pool(vectors: np.ndarray, docs: TokenArray, max_len: int | None = None) -> np.ndarray:
    """(N, D) float32: the mean of each document's (first ``max_len``) piece vectors; zeros for an empty one."""
    lengths = docs.lengths()
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    total = int(lengths.sum())
    bag_starts = np.cumsum(lengths) - lengths  # where each document's pieces start in the flat selection
    take = np.repeat(docs.offsets[:-1], lengths) + np.arange(total) - np.repeat(bag_starts, lengths)
    ids = torch.from_numpy(np.asarray(docs.ids)[take].astype(np.int64))
    weight = torch.from_numpy(np.asarray(vectors, dtype=np.float32))
    pooled = torch.nn.functional.embedding_bag(ids, weight, torch.from_numpy(bag_starts.astype(np.int64)),
                                               mode="mean", padding_idx=PAD)
    return pooled.numpy()


@torch.no_grad()
def encode(encoder: nn.Module, docs: TokenArray, max_len: int, batch_size: int = 256) -> np.ndarray:
    """(N, D) float32: the encoder's pooled vectors, in batches of similar length (less padding)."""
    encoder.eval()
    n = len(docs)
    order = np.argsort(np.minimum(docs.lengths(), max_len), kind="stable")
    out = np.zeros((n, encoder.out_dim), dtype=np.float32)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        ids, _ = collate([(np.asarray(docs[int(i)][:max_len]), 0) for i in idx])
        out[idx] = encoder(ids).float().numpy()
    return out


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass
class DenseIndex:
    """Unit vectors (centred on ``mean`` first, when given) searched by exact cosine (inner product)."""

    vectors: np.ndarray  # (N, D) float32, unit rows
    mean: np.ndarray | None = None  # (D,) subtracted from every vector before normalising
    _faiss: object = None

    @classmethod
    def build(cls, vectors: np.ndarray, center: bool = True) -> DenseIndex:
        vectors = np.asarray(vectors, dtype=np.float32)
        mean = vectors.mean(0) if center and len(vectors) else None
        return cls(unit(vectors - mean if mean is not None else vectors), mean)

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        queries = np.asarray(queries, dtype=np.float32)
        return unit(queries - self.mean if self.mean is not None else queries)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(B, N) cosines of the (raw) query vectors to every document."""
        return self.prepare(queries) @ self.vectors.T

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents of each query, best first: (scores (B, k), indices (B, k))."""
        k = min(k, len(self.vectors))
        q = self.prepare(np.atleast_2d(queries))
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        faiss_index = self._faiss_index()
        if faiss_index is not None:
            scores, idx = faiss_index.search(np.ascontiguousarray(q), k)
            return scores, idx.astype(np.int64)
        scores = q @ self.vectors.T  # (B, N)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else \
            np.tile(np.arange(scores.shape[1]), (len(q), 1))
        top = np.take_along_axis(scores, part, 1)
        # Best first; equal scores: the earlier document first.
        order = np.lexsort((part, -top), axis=1)
        idx = np.take_along_axis(part, order, 1)
        return np.take_along_axis(scores, idx, 1), idx

    def _faiss_index(self):
        if len(self.vectors) < FAISS_MIN_DOCS:
            return None
        if self._faiss is None:
            try:
                import faiss
            except ImportError:
                self._faiss = False
                return None
            index = faiss.IndexFlatIP(self.vectors.shape[1])
            index.add(np.ascontiguousarray(self.vectors))
            self._faiss = index
        return self._faiss or None


