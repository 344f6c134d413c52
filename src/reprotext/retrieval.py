"""Retrieval with learned representations: ranking metrics, document vectors, baselines, and a vector index.

Evaluation follows the query-by-example protocol of labelled collections
(Salakhutdinov & Hinton 2009, "Semantic hashing"; Huang et al. 2013, DSSM):
every test document is a query against the training collection, and a
retrieved document is relevant when it has the query's label. Per query:

- precision@k: relevant documents among the first k, divided by k;
- AP@k (average precision truncated at k): the sum of precision@i over the
  ranks i <= k that hold a relevant document, divided by min(R, k), R being the
  number of relevant documents in the collection, so a perfect ranking scores 1;
  mAP@k is its mean over the queries;
- recall@k: relevant documents among the first k, divided by R. When R > k it
  cannot exceed k / R (20 Newsgroups: about 100 / 660), so the stage reports
  that ceiling too.

Queries whose label has no document in the collection have no relevant answer;
they are left out of the means and counted. Ties in score rank the document
earlier in the collection first (a stable sort), so results repeat exactly.

Document vectors: a trained encoder's pooled output (the vector its head reads),
or the mean of a document's piece embeddings (word2vec). Before the cosine they
are centred on the mean vector of the indexed collection (no labels involved):
averaged vectors share a large common direction that otherwise dominates every
cosine. The baselines score raw text: TF-IDF cosine (scikit-learn) and Okapi
BM25 (``bm25s``).
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from reprotext.errors import ArtifactError, DataError, ReprotextError
from reprotext.io import FORMAT_VERSION, atomic_dir, read_json, sha256_file, write_json
from reprotext.tokenizer import PAD, TokenArray, Tokenizer
from reprotext.training.data import collate

K_PRECISION, K_MAP, K_RECALL = 10, 100, 100
# Cutoffs of the precision-recall curve: the number of documents retrieved (the collection size is added).
PR_CUTOFFS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
# Above this many documents, an index searches with faiss (exact inner product) when it is installed.
FAISS_MIN_DOCS = 100_000
INDEX_META, INDEX_VECTORS, INDEX_DOCS = "index.json", "vectors.npy", "documents.parquet"
SNIPPET_CHARS = 200


# ---------------------------------------------------------------------------------------------- metrics

def ranking_metrics(relevance: np.ndarray, n_relevant: np.ndarray, k_precision: int = K_PRECISION,
                    k_map: int = K_MAP, k_recall: int = K_RECALL) -> dict[str, np.ndarray]:
    """Per-query precision@k, AP@k and recall@k from the relevance of each query's ranked list.

    ``relevance`` (Q, L) bool: whether the document at each rank is relevant, best first; L may be shorter
    than a cutoff (a list of L documents has nothing beyond L). ``n_relevant`` (Q,): relevant documents in the
    whole collection (must be >= 1).
    """
    rel = np.asarray(relevance, dtype=bool)
    n_rel = np.asarray(n_relevant, dtype=np.float64)
    hits = np.cumsum(rel, axis=1, dtype=np.float64)  # (Q, L): relevant among the first i + 1

    def hits_at(k: int) -> np.ndarray:
        return hits[:, min(k, rel.shape[1]) - 1] if rel.shape[1] else np.zeros(len(rel))

    top = rel[:, :k_map]
    precision_at_rank = hits[:, :k_map] / np.arange(1, top.shape[1] + 1)
    ap = (precision_at_rank * top).sum(1) / np.minimum(n_rel, k_map)
    return {f"precision_at_{k_precision}": hits_at(k_precision) / k_precision,
            f"map_at_{k_map}": ap,
            f"recall_at_{k_recall}": hits_at(k_recall) / n_rel}


@dataclass
class RankingEvaluation:
    """Accumulates the metrics and the precision-recall curve of one method over batches of queries."""

    doc_labels: np.ndarray
    cutoffs: tuple[int, ...] = ()
    per_query: dict[str, list[np.ndarray]] = field(default_factory=dict)
    pr_precision: np.ndarray | None = None
    pr_recall: np.ndarray | None = None
    queries: int = 0
    skipped: int = 0

    def __post_init__(self) -> None:
        self.doc_labels = np.asarray(self.doc_labels)
        n = len(self.doc_labels)
        self.cutoffs = tuple(sorted({c for c in PR_CUTOFFS if c < n} | {n}))
        self.pr_precision = np.zeros(len(self.cutoffs))
        self.pr_recall = np.zeros(len(self.cutoffs))
        labels, counts = np.unique(self.doc_labels, return_counts=True)
        self._count = dict(zip(labels.tolist(), counts.tolist()))

    def add(self, scores: np.ndarray, query_labels: Sequence) -> None:
        """Rank the collection for a batch of queries: ``scores`` (B, N), higher is better."""
        query_labels = np.asarray(query_labels)
        n_rel = np.array([self._count.get(q, 0) for q in query_labels.tolist()], dtype=np.int64)
        keep = n_rel > 0
        self.skipped += int((~keep).sum())
        if not keep.any():
            return
        scores, query_labels, n_rel = scores[keep], query_labels[keep], n_rel[keep]
        order = np.argsort(-scores, axis=1, kind="stable")  # (B, N)
        rel = self.doc_labels[order] == query_labels[:, None]
        for name, values in ranking_metrics(rel, n_rel).items():
            self.per_query.setdefault(name, []).append(values)
        hits = np.cumsum(rel, axis=1)[:, np.array(self.cutoffs) - 1]  # (B, cutoffs)
        self.pr_precision += (hits / np.array(self.cutoffs)).sum(0)
        self.pr_recall += (hits / n_rel[:, None]).sum(0)
        self.queries += len(n_rel)

    def result(self) -> dict[str, float]:
        out = {name: float(np.concatenate(v).mean()) for name, v in self.per_query.items()}
        out["queries"] = self.queries
        if self.skipped:
            out["queries_without_relevant"] = self.skipped
        return out

    def curve(self) -> pd.DataFrame:
        """Mean precision and recall over the queries at each number of retrieved documents."""
        q = max(self.queries, 1)
        return pd.DataFrame({"retrieved": self.cutoffs, "precision": self.pr_precision / q,
                             "recall": self.pr_recall / q})


def recall_ceiling(query_labels: Sequence, doc_labels: Sequence, k: int = K_RECALL) -> float:
    """The best recall@k any ranking can reach: mean over the queries of min(1, k / R)."""
    labels, counts = np.unique(np.asarray(doc_labels), return_counts=True)
    count = dict(zip(labels.tolist(), counts.tolist()))
    r = np.array([count.get(q, 0) for q in np.asarray(query_labels).tolist()], dtype=np.float64)
    r = r[r > 0]
    return float(np.minimum(1.0, k / r).mean()) if len(r) else 0.0


def evaluate_scorer(score: Callable[[np.ndarray], np.ndarray], n_queries: int, query_labels: Sequence,
                    doc_labels: Sequence, batch_size: int = 256) -> RankingEvaluation:
    """Run ``score(query_indices) -> (B, N)`` over all queries in batches and rank the collection for each."""
    ev = RankingEvaluation(np.asarray(doc_labels))
    query_labels = np.asarray(query_labels)
    for start in range(0, n_queries, batch_size):
        idx = np.arange(start, min(start + batch_size, n_queries))
        ev.add(np.asarray(score(idx)), query_labels[idx])
    return ev


# --------------------------------------------------------------------------------------- document vectors

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


# ------------------------------------------------------------------------------------------- baselines

class TfidfScorer:
    """TF-IDF (word unigrams, sublinear tf, fit on the collection) cosine between queries and documents."""

    def __init__(self, docs: Sequence[str], max_features: int | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(sublinear_tf=True, max_features=max_features)
        self.docs = self.vectorizer.fit_transform(list(docs))  # rows are L2-normalised
        self.docs_t = self.docs.T.tocsr()

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return (self.vectorizer.transform(list(queries)) @ self.docs_t).toarray()


class BM25Scorer:
    """Okapi BM25 (``bm25s``, Lucene variant) over the collection; every query term counted once (k3 = 0).

    ``bm25s`` builds the index (the BM25 weight of every term in every document);
    a batch of queries is scored at once as a sparse product with it, the sum
    ``bm25s.BM25.get_scores`` forms for one query of distinct terms.
    """

    def __init__(self, docs: Sequence[str], k1: float = 1.5, b: float = 0.75):
        import bm25s
        import scipy.sparse as sp

        self._tokenize = lambda texts: bm25s.tokenize(list(texts), stopwords=None, return_ids=False,
                                                      show_progress=False)
        self.model = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.model.index(self._tokenize(docs), show_progress=False)
        s = self.model.scores
        self.weights = sp.csc_matrix((s["data"], s["indices"], s["indptr"]),
                                     shape=(s["num_docs"], len(s["indptr"]) - 1)).T.tocsr()  # (terms, docs)

    def query_matrix(self, queries: Sequence[str]):
        import scipy.sparse as sp

        vocab = self.model.vocab_dict
        rows, cols = [], []
        for i, tokens in enumerate(self._tokenize(queries)):
            ids = {vocab[t] for t in tokens if t and t in vocab}
            rows.extend([i] * len(ids))
            cols.extend(ids)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                             shape=(len(queries), self.weights.shape[0]))

    def scores(self, queries: Sequence[str]) -> np.ndarray:
        return (self.query_matrix(queries) @ self.weights).toarray()


# ------------------------------------------------------------------------------------------ embedders

@dataclass
class Embedder:
    """Texts -> vectors with one saved representation; ``identity`` names exactly which one."""

    kind: str  # classifier_encoder | dual_encoder | word2vec
    path: str
    identity: dict
    tokenizer: Tokenizer
    max_len: int
    _embed: Callable[[TokenArray], np.ndarray]

    def embed_tokens(self, docs: TokenArray) -> np.ndarray:
        return self._embed(docs)

    def embed_texts(self, texts: Sequence[str], threads: int = 2) -> np.ndarray:
        return self._embed(self.tokenizer.encode_array(list(texts), threads=threads))


def load_embedder(model: str | Path, tokenizer_dir: str | Path, batch_size: int = 256,
                  max_len: int = 1024) -> Embedder:
    """A saved representation: a classifier (models/train, models/finetune), a dual encoder
    (models/finetune/dual_encoder) or piece embeddings (models/embeddings, mean-pooled)."""
    from reprotext import dual_encoder, embeddings
    from reprotext.models import load_model
    from reprotext.models.classifier import CONFIG_FILE, WEIGHTS_FILE

    model = Path(model)
    tok = Tokenizer.load(tokenizer_dir)
    if (model / dual_encoder.CONFIG_FILE).is_file():
        encoder, config = dual_encoder.load_encoder(model, tok.sha256)
        kind, weights, max_len = "dual_encoder", model / dual_encoder.WEIGHTS_FILE, config.max_len
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
    return Embedder(kind, str(model), identity, tok, max_len, lambda docs: encode(encoder, docs, max_len, batch_size))


# ---------------------------------------------------------------------------------------- saved index

_READERS = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"), ".parquet": pd.read_parquet,
            ".jsonl": lambda p: pd.read_json(p, lines=True)}


def read_documents(path: str | Path, text_column: str = "text", id_column: str | None = None) -> pd.DataFrame:
    """A table's ids (``id_column``, else the row number) and texts, as columns ``id`` (str) and ``text``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    if path.suffix not in _READERS:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use .csv, .tsv, .parquet or .jsonl")
    frame = _READERS[path.suffix](path)
    for col, flag in ((text_column, "--text-column"), (id_column, "--id-column")):
        if col is not None and col not in frame.columns:
            raise DataError(f"{path}: column {col!r} not found; available: {', '.join(map(str, frame.columns))}; "
                            f"pass {flag}")
    ids = frame[id_column].astype(str) if id_column else pd.Series(range(len(frame))).astype(str)
    if ids.duplicated().any():
        raise DataError(f"{path}: id {ids[ids.duplicated()].iloc[0]!r} appears more than once in column "
                        f"{id_column!r}; ids must be unique")
    return pd.DataFrame({"id": ids.to_numpy(), "text": frame[text_column].fillna("").astype(str).to_numpy()})


def snippet(text: str, chars: int = SNIPPET_CHARS) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


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
    start = time.perf_counter()
    texts = documents["text"].tolist()
    parts = [embedder.embed_texts(texts[i:i + batch_docs]) for i in range(0, len(texts), batch_docs)]
    vectors = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    index = DenseIndex.build(vectors, center)
    meta = {"format_version": FORMAT_VERSION, "documents": len(documents), "dim": int(vectors.shape[1]),
            "center": center, "model": {"path": str(Path(embedder.path).resolve()), **embedder.identity},
            "tokenizer": str(embedder.tokenizer.path.parent.resolve()),
            "seconds": round(time.perf_counter() - start, 3)}
    with atomic_dir(output) as tmp:
        np.save(tmp / INDEX_VECTORS, index.vectors)
        if index.mean is not None:
            np.save(tmp / "mean.npy", index.mean)
        pd.DataFrame({"id": documents["id"].astype(str),
                      "snippet": [snippet(t) for t in texts]}).to_parquet(tmp / INDEX_DOCS, index=False)
        write_json(tmp / INDEX_META, meta)
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
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{directory}: index format {meta.get('format_version')} is not {FORMAT_VERSION}; "
                            "rebuild it with `reprotext index`")
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


# ------------------------------------------------------------------------------------------------ plots

def save_pr_plot(curves: dict[str, pd.DataFrame], png: Path, title: str) -> None:
    """Mean precision against mean recall as the number of retrieved documents grows, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    for i, (name, curve) in enumerate(curves.items()):
        ax.plot(curve["recall"], curve["precision"], marker=".", color=f"C{i}", label=name)
        at = curve[curve["retrieved"] == K_MAP]
        if len(at):
            ax.plot(at["recall"], at["precision"], "o", color=f"C{i}", markersize=8, alpha=0.4)
    ax.set_xscale("log")
    ax.set_xlabel("recall (mean over queries; log scale)")
    ax.set_ylabel("precision (mean over queries)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\n(one point per number retrieved: 1, 2, 5, ...; circled: {K_MAP})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------------- the evaluate stage

LEARNED = ("word2vec", "trained_encoder", "finetuned_encoder", "dual_encoder")
BASELINES = ("tfidf_cosine", "bm25")


def evaluate_collection(vectorizers: dict[str, Callable[[TokenArray], np.ndarray]], train_tokens: TokenArray,
                        test_tokens: TokenArray, train_texts: Sequence[str], test_texts: Sequence[str],
                        train_labels: Sequence[str], test_labels: Sequence[str], center: bool = True,
                        bm25_k1: float = 1.5, bm25_b: float = 0.75,
                        tfidf_max_features: int | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Every test document queries the training collection, with each representation in ``vectorizers``
    (name -> tokens -> vectors) and the TF-IDF cosine and BM25 baselines.

    Returns the metrics ({"methods": {name: {...}}, the recall ceiling, the best learned representation and its
    margin over TF-IDF, the dual encoder's gain over the fine-tuned classifier's encoder}) and each method's
    precision-recall curve.
    """
    train_labels, test_labels = np.asarray(train_labels, dtype=str), np.asarray(test_labels, dtype=str)
    n = len(test_labels)
    evaluations: dict[str, RankingEvaluation] = {}
    for name, vectorize in vectorizers.items():
        index = DenseIndex.build(vectorize(train_tokens), center)
        queries = vectorize(test_tokens)
        evaluations[name] = evaluate_scorer(lambda idx: index.scores(queries[idx]), n, test_labels, train_labels)
    test_texts = list(test_texts)
    for name, scorer in (("tfidf_cosine", TfidfScorer(train_texts, tfidf_max_features)),
                         ("bm25", BM25Scorer(train_texts, bm25_k1, bm25_b))):
        evaluations[name] = evaluate_scorer(lambda idx: scorer.scores([test_texts[i] for i in idx]), n,
                                            test_labels, train_labels)
    methods = {name: ev.result() for name, ev in evaluations.items()}
    key = f"map_at_{K_MAP}"
    out: dict = {"methods": methods, "collection_docs": len(train_labels), "queries": n,
                 f"recall_at_{K_RECALL}_ceiling": recall_ceiling(test_labels, train_labels)}
    learned = [m for m in methods if m not in BASELINES]
    if learned and methods:
        best = max(learned, key=lambda m: methods[m][key])
        out["best_learned"] = best
        out[f"best_learned_minus_tfidf_{key}"] = methods[best][key] - methods["tfidf_cosine"][key]
    if "dual_encoder" in methods and "finetuned_encoder" in methods:
        out[f"dual_encoder_minus_finetuned_encoder_{key}"] = methods["dual_encoder"][key] - \
            methods["finetuned_encoder"][key]
    return out, {name: ev.curve() for name, ev in evaluations.items()}


def flat_metrics(retrieval: dict, prefix: str) -> dict[str, float]:
    """MLflow keys ``<prefix>/<method>/<metric>`` and ``<prefix>/<summary>`` for the numbers of one collection."""
    out = {f"{prefix}/{m}/{k}": float(v) for m, ms in retrieval["methods"].items() for k, v in ms.items()}
    out.update({f"{prefix}/{k}": float(v) for k, v in retrieval.items() if isinstance(v, (int, float))})
    return out


NAMES = {"word2vec": "word2vec pieces, mean-pooled", "trained_encoder": "trained encoder (source task)",
         "finetuned_encoder": "fine-tuned classifier encoder (target task)",
         "dual_encoder": "dual encoder (contrastive, target task)", "tfidf_cosine": "baseline: TF-IDF cosine",
         "bm25": "baseline: BM25"}
TASKS = {"source": "source task", "target": "target task"}


def report_lines(evaluate: dict, finetune: dict, figures: dict[str, str]) -> tuple[list[str], list[str]]:
    """reports/report.md's retrieval lines: (headline bullets, the section), empty when retrieval did not run."""
    key = f"map_at_{K_MAP}"
    headline, section = [], []
    for role, m in evaluate.items():
        r = m.get("retrieval") if isinstance(m, dict) else None
        if not r:
            continue
        methods, best = r["methods"], r.get("best_learned")
        if best:
            margin = r[f"best_learned_minus_tfidf_{key}"]
            headline.append(
                f"- Retrieval, {TASKS.get(role, role)} (test documents query the training split): the best learned "
                f"representation, {NAMES.get(best, best)}, has mAP@{K_MAP} **{methods[best][key]:.3f}**, "
                f"{'above' if margin > 0 else 'below'} TF-IDF cosine's {methods['tfidf_cosine'][key]:.3f} by "
                f"{abs(margin):.3f} (BM25: {methods['bm25'][key]:.3f}).")
        gain = r.get(f"dual_encoder_minus_finetuned_encoder_{key}")
        if gain is not None and role == "target":  # both were trained on the target task: the fair comparison
            headline.append(f"- Dual encoder vs the fine-tuned classifier's encoder, {TASKS.get(role, role)}: "
                            f"mAP@{K_MAP} {methods['dual_encoder'][key]:.3f} vs "
                            f"{methods['finetuned_encoder'][key]:.3f} ({gain:+.3f}).")
        if not section:
            section += ["## Retrieval: query by example (test split)", "",
                        "Every test document queries its task's training split; a retrieved document is relevant "
                        f"when it has the query's label. P@{K_PRECISION}: relevant share of the first "
                        f"{K_PRECISION}; mAP@{K_MAP}: mean average precision truncated at {K_MAP} (normalised by "
                        f"min(relevant, {K_MAP})); R@{K_RECALL}: relevant found in the first {K_RECALL} of all "
                        "relevant. Dense vectors are compared by cosine after centring on the collection's mean.", ""]
        section += [f"### {TASKS.get(role, role).capitalize()}: {r['queries']} queries, {r['collection_docs']} "
                    "documents", "",
                    f"| representation | P@{K_PRECISION} | mAP@{K_MAP} | R@{K_RECALL} |", "|---|---:|---:|---:|"]
        for name, v in methods.items():
            section.append(f"| {NAMES.get(name, name)} | {v[f'precision_at_{K_PRECISION}']:.3f} | {v[key]:.3f} | "
                           f"{v[f'recall_at_{K_RECALL}']:.3f} |")
        section += ["", f"R@{K_RECALL} cannot exceed {r[f'recall_at_{K_RECALL}_ceiling']:.3f} here (the mean of "
                    f"min(1, {K_RECALL} / relevant documents)).", ""]
        if f"{role}_retrieval_pr" in figures:
            section += [f"![{role} precision-recall]({figures[f'{role}_retrieval_pr']})", ""]
    dual = finetune.get("dual_encoder")
    if dual and section:
        d = dual["dev"]
        section += ["### Dual encoder training (target dev)", "",
                    f"{'The fine-tuned classifier' if dual.get('init') == 'finetuned' else 'The train stage'}'s "
                    f"encoder, trained with in-batch negatives on {dual['pairs'].replace('_', '-')} "
                    f"pairs; epoch {dual['best_epoch']} of {dual['epochs_run']} kept by mAP@{K_MAP} on one half of "
                    f"dev. On the other half: mAP@{K_MAP} {d['map_at_100']:.3f} vs the fine-tuned classifier "
                    f"encoder's {d['classifier_encoder_map_at_100']:.3f} ({d['gain_map_at_100']:+.3f}).", "",
                    "| epoch | train loss | dev mAP@100 (selection half) |", "|---:|---:|---:|"]
        for row in dual["history"]:
            loss = f"{row['train/loss']:.4f}" if "train/loss" in row else "– (start)"
            section.append(f"| {row['epoch']} | {loss} | {row['dev/score']:.3f} |")
        section.append("")
    return headline, section
