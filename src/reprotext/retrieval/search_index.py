"""A saved search index, BM25, dense or hybrid, behind ``reprotext index`` and ``reprotext search``.

One directory: ``index.json`` (the method, the fusion, how it was built), ``documents.parquet`` (ids, snippets),
the dense index's vectors (dense, hybrid; see :mod:`reprotext.retrieval.index`) and ``bm25/`` (bm25, hybrid).
:class:`Searcher` loads it once and answers any number of queries, so a long-lived process pays the start-up
(imports, the model, the index) once.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext.errors import ArtifactError, ReprotextError
from reprotext.io import FORMAT_VERSION, atomic_dir, read_json, write_json
from reprotext.retrieval.documents import snippet
from reprotext.retrieval.embedder import Embedder, load_embedder
from reprotext.retrieval.fusion import FUSIONS, fuse, top_k
from reprotext.retrieval.index import INDEX_DOCS, INDEX_META, SavedIndex, check_model, load_index, write_dense
from reprotext.retrieval.lexical import BM25Scorer

METHODS = ("bm25", "dense", "hybrid")
BM25_DIR = "bm25"


@dataclass(frozen=True)
class Fusion:
    """How a hybrid index fuses its two rankings (see :mod:`reprotext.retrieval.fusion`)."""

    method: str = "convex"
    weight: float = 0.5
    depth: int = 1000
    rrf_k: int = 60

    def __post_init__(self) -> None:
        if self.method not in FUSIONS:
            raise ReprotextError(f"fusion {self.method!r} is not one of {', '.join(FUSIONS)}")
        if not 0.0 <= self.weight <= 1.0:
            raise ReprotextError(f"fusion weight {self.weight} must be within [0, 1] (the dense side's share)")


def build(output: str | Path, documents: pd.DataFrame, method: str, embedder: Embedder | None = None,
          bm25: dict | None = None, fusion: Fusion | None = None) -> dict:
    """Index ``documents`` (id, text) for ``method`` into ``output`` atomically; returns index.json's content.

    ``bm25``: BM25Scorer's settings (k1, b, stopwords, stemmer); ``embedder``: the dense model (dense, hybrid).
    """
    if method not in METHODS:
        raise ReprotextError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if method != "bm25" and embedder is None:
        raise ReprotextError(f"--method {method} needs a dense model: pass --model (e.g. models/retrieval/dssm)")
    start = time.perf_counter()
    texts = documents["text"].tolist()
    with atomic_dir(output) as tmp:
        meta: dict = {}
        if method != "bm25":
            meta = write_dense(embedder, documents, tmp, center=embedder.center)
        else:
            pd.DataFrame({"id": documents["id"].astype(str),
                          "snippet": [snippet(t) for t in texts]}).to_parquet(tmp / INDEX_DOCS, index=False)
        if method != "dense":
            (tmp / BM25_DIR).mkdir()
            BM25Scorer(texts, **(bm25 or {})).save(tmp / BM25_DIR)
        meta.update({"format_version": FORMAT_VERSION, "method": method, "documents": len(documents),
                     "seconds": round(time.perf_counter() - start, 3)})
        if method == "hybrid":
            meta["fusion"] = (fusion or Fusion()).__dict__
        write_json(tmp / INDEX_META, meta)
    return meta


class Searcher:
    """A loaded index: ``search`` ranks the documents for queries with the index's method (or a part of it)."""

    def __init__(self, directory: str | Path, model: str | Path | None = None, tokenizer: str | Path | None = None):
        directory = Path(directory)
        try:
            self.meta = read_json(directory / INDEX_META)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{directory}: not a readable index ({exc.__class__.__name__}); build it with "
                                "`reprotext index --method bm25|dense|hybrid --input ... --output DIR`") from exc
        self.method = self.meta.get("method", "dense")  # indexes from before BM25 and hybrid are dense
        self.directory = directory
        self.dense: SavedIndex | None = None
        self.embedder: Embedder | None = None
        self.bm25: BM25Scorer | None = None
        if self.method != "bm25":
            self.dense = load_index(directory)
            self.embedder = load_embedder(model or self.dense.model["path"], tokenizer or self.meta["tokenizer"],
                                          max_len=self.dense.model.get("max_len", 1024))
            check_model(self.dense, self.embedder)
            self.documents = self.dense.documents
        else:
            self.documents = pd.read_parquet(directory / INDEX_DOCS)
        if self.method != "dense":
            self.bm25 = BM25Scorer.load(directory / BM25_DIR)
            if len(self.bm25) != len(self.documents):
                raise ArtifactError(f"{directory}: BM25 holds {len(self.bm25)} documents, the index "
                                    f"{len(self.documents)}; rebuild it with `reprotext index`")
        self.fusion = Fusion(**self.meta["fusion"]) if "fusion" in self.meta else None

    def methods(self) -> tuple[str, ...]:
        return METHODS if self.method == "hybrid" else (self.method,)

    def scores(self, queries: Sequence[str], method: str | None = None) -> np.ndarray:
        """(B, N) scores of every document (higher is better) under ``method`` (default: the index's)."""
        method = method or self.method
        if method not in self.methods():
            raise ReprotextError(f"--method {method}: this index was built for {self.method}; it can search with "
                                 f"{', '.join(self.methods())}")
        queries = list(queries)
        if method == "bm25":
            return self.bm25.scores(queries)
        dense = self.dense.index.scores(self.embedder.embed_texts(queries))
        if method == "dense":
            return dense
        f = self.fusion
        return fuse(dense, self.bm25.scores(queries), f.method, f.weight, f.depth, f.rrf_k)

    def search(self, queries: Sequence[str], k: int = 10, method: str | None = None) -> list[pd.DataFrame]:
        """Per query, the ``k`` best documents: rank, id, score, snippet."""
        if k < 1:
            raise ReprotextError(f"-k {k}: ask for at least one result")
        scores = self.scores(queries, method)
        top = top_k(scores, k)
        out = []
        for s, i in zip(np.take_along_axis(scores, top, 1), top):
            docs = self.documents.iloc[i]
            out.append(pd.DataFrame({"rank": np.arange(1, len(i) + 1), "id": docs["id"].to_numpy(),
                                     "score": s.astype(float), "snippet": docs["snippet"].to_numpy()}))
        return out
