"""A saved dense index: build it from a file of documents, load it, search it with the model that built it."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext.errors import ArtifactError, ReprotextError
from reprotext.io import FORMAT_VERSION, atomic_dir, check_format, read_json, write_json
from reprotext.retrieval.dense import DenseIndex
from reprotext.retrieval.documents import snippet
from reprotext.retrieval.embedder import Embedder

INDEX_META, INDEX_VECTORS, INDEX_DOCS = "index.json", "vectors.npy", "documents.parquet"


@dataclass
class SavedIndex:
    """An index directory: unit vectors, the document ids and snippets, and the model that made them."""

    directory: Path
    meta: dict
    index: DenseIndex
    documents: pd.DataFrame

    @property
    def model(self) -> dict:
        return self.meta["model"]


def build_index(embedder: Embedder, documents: pd.DataFrame, output: str | Path, center: bool = True,
                batch_docs: int = 8192) -> dict:
    """Embed ``documents`` (columns id, text) and write the index to ``output`` atomically; returns its meta."""
    with atomic_dir(output) as tmp:
        return write_dense(embedder, documents, tmp, center, batch_docs)


def write_dense(embedder: Embedder, documents: pd.DataFrame, directory: Path, center: bool = True,
                batch_docs: int = 8192) -> dict:
    """The dense index's files (vectors, mean, documents, index.json) into an existing ``directory``."""
    start = time.perf_counter()
    texts = documents["text"].tolist()
    parts = [embedder.embed_texts(texts[i:i + batch_docs]) for i in range(0, len(texts), batch_docs)]
    vectors = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    index = DenseIndex.build(vectors, center)
    meta = {"format_version": FORMAT_VERSION, "documents": len(documents), "dim": int(vectors.shape[1]),
            "center": center, "model": {"path": str(Path(embedder.path).resolve()), **embedder.identity},
            "tokenizer": str(embedder.tokenizer.path.parent.resolve()),
            "seconds": round(time.perf_counter() - start, 3)}
    np.save(directory / INDEX_VECTORS, index.vectors)
    if index.mean is not None:
        np.save(directory / "mean.npy", index.mean)
    pd.DataFrame({"id": documents["id"].astype(str),
                  "snippet": [snippet(t) for t in texts]}).to_parquet(directory / INDEX_DOCS, index=False)
    write_json(directory / INDEX_META, meta)
    return meta


def load_index(directory: str | Path) -> SavedIndex:
    directory = Path(directory)
    try:
        meta = read_json(directory / INDEX_META)
        vectors = np.load(directory / INDEX_VECTORS)
        mean = np.load(directory / "mean.npy") if meta.get("center") else None
        documents = pd.read_parquet(directory / INDEX_DOCS)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: not a readable index ({exc.__class__.__name__}); build it with "
                            "`reprotext index --model M --input docs.csv --output DIR`") from exc
    check_format(directory, meta, "index", "rebuild it with `reprotext index`")
    if len(vectors) != len(documents) or len(vectors) != meta["documents"]:
        raise ArtifactError(f"{directory}: {len(vectors)} vectors but {len(documents)} documents; the index is "
                            "damaged, rebuild it with `reprotext index`")
    return SavedIndex(directory, meta, DenseIndex(vectors, mean), documents)


def check_model(saved: SavedIndex, embedder: Embedder) -> None:
    """Refuse to search an index with another model (or tokenizer) than the one that built it."""
    want, got = saved.model, embedder.identity
    for key, what in (("kind", "model kind"), ("tokenizer_sha256", "tokenizer"), ("weights_sha256", "weights"),
                      ("max_len", "max_len")):
        if want.get(key) != got.get(key):
            def show(v):
                return v[:12] if isinstance(v, str) and len(v) == 64 else v
            raise ArtifactError(f"{saved.directory}: index was built with {want.get('path')} ({what} "
                                f"{show(want.get(key))}), but {embedder.path} has {what} {show(got.get(key))}; "
                                f"rebuild the index with `reprotext index --model {embedder.path} ...` or search "
                                "with the model that built it (--model)")


def search(saved: SavedIndex, embedder: Embedder, queries: Sequence[str], k: int = 10) -> list[pd.DataFrame]:
    """Per query, the ``k`` best documents: rank, id, score, snippet."""
    if k < 1:
        raise ReprotextError(f"-k {k}: ask for at least one result")
    check_model(saved, embedder)
    scores, idx = saved.index.search(embedder.embed_texts(list(queries)), k)
    out = []
    for s, i in zip(scores, idx):
        docs = saved.documents.iloc[i]
        out.append(pd.DataFrame({"rank": np.arange(1, len(i) + 1), "id": docs["id"].to_numpy(),
                                 "score": s.astype(float), "snippet": docs["snippet"].to_numpy()}))
    return out


