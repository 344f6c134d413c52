"""Hybrid retrieval: one ranking from a dense and a lexical one.

- Reciprocal-rank fusion (Cormack et al. 2009): score(d) = w / (k + rank_dense(d)) + (1 - w) / (k + rank_bm25(d)),
  ranks from 1, a list contributing nothing for a document beyond its first ``depth``.
- Convex combination of normalised scores (Bruch et al. 2023, "An analysis of fusion functions for hybrid
  retrieval"): w * dense(d) + (1 - w) * bm25(d), each min-max normalised over its own first ``depth`` documents
  per query (0 beyond them).

Both take (B, N) score matrices, higher is better, and return fused (B, N) scores; documents in neither list's
first ``depth`` score 0 (RRF) or 0 (convex), below every document that is in one.
"""
from __future__ import annotations

import numpy as np

FUSIONS = ("rrf", "convex")


def top_k(scores: np.ndarray, depth: int) -> np.ndarray:
    """(B, depth) column indices of each row's ``depth`` best scores, best first (ties: the earlier column)."""
    depth = min(depth, scores.shape[1])
    part = np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if depth < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    top = np.take_along_axis(scores, part, 1)
    return np.take_along_axis(part, np.lexsort((part, -top), axis=1), 1)


def reciprocal_ranks(scores: np.ndarray, k: int, depth: int) -> np.ndarray:
    """(B, N): 1 / (k + rank) for each row's first ``depth`` documents, 0 beyond."""
    top = top_k(scores, depth)
    out = np.zeros(scores.shape, dtype=np.float64)
    np.put_along_axis(out, top, 1.0 / (k + np.arange(1, top.shape[1] + 1)), 1)
    return out


def min_max(scores: np.ndarray, depth: int) -> np.ndarray:
    """(B, N): each row's first ``depth`` scores mapped onto [0, 1] (best 1, the depth-th 0), 0 beyond."""
    top = top_k(scores, depth)
    vals = np.take_along_axis(scores, top, 1).astype(np.float64)  # (B, depth), best first
    hi, lo = vals[:, :1], vals[:, -1:]
    norm = np.where(hi > lo, (vals - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    out = np.zeros(scores.shape, dtype=np.float64)
    np.put_along_axis(out, top, norm, 1)
    return out


def fuse(dense: np.ndarray, lexical: np.ndarray, method: str, weight: float, depth: int = 1000,
         rrf_k: int = 60) -> np.ndarray:
    """(B, N) fused scores of two (B, N) score matrices; ``weight`` is the dense side's share in [0, 1]."""
    if method not in FUSIONS:
        raise ValueError(f"fusion method {method!r} is not one of {', '.join(FUSIONS)}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight {weight} must be within [0, 1]")
    if dense.shape != lexical.shape:
        raise ValueError(f"score matrices differ in shape: dense {dense.shape}, lexical {lexical.shape}")
    if method == "rrf":
        return weight * reciprocal_ranks(dense, rrf_k, depth) + (1 - weight) * reciprocal_ranks(lexical, rrf_k, depth)
    return weight * min_max(dense, depth) + (1 - weight) * min_max(lexical, depth)
