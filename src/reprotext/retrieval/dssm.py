"""The retrieval pipeline's DSSM-style dual encoder over a BEIR collection, and its BM25 / dense / hybrid runs.

Huang et al. 2013 (DSSM) map a query and a document into one space and train
on which documents answer which queries: the cosine of a query and its
relevant document must beat the other documents' under a softmax. Here one
tower, shared by queries and documents, mean-pools piece embeddings that start
from word2vec over the corpus; the negatives are the other documents of the
batch (Henderson et al. 2017; Karpukhin et al. 2020) plus, for judged pairs, the
best BM25 document that is not judged relevant (a hard negative). The pairs:

- judged: each training query with each of its relevant documents (qrels/train.tsv, the dev queries held out);
- title: a document's title queries its abstract (the title is a short summary written by the authors);
- inverse cloze (Lee et al. 2019): a random span of a document queries the rest of it, drawn anew each epoch.

The epoch is chosen by the dev queries' nDCG@10 (dense alone).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from reprotext.config import DSSMConfig
from reprotext.errors import DataError
from reprotext.models import Classifier, ModelConfig
from reprotext.retrieval.beir import Collection
from reprotext.retrieval.dense import DenseIndex, encode
from reprotext.retrieval.dual_encoder import PairBatch, inverse_cloze, save_encoder, train_on_pairs
from reprotext.retrieval.ir_metrics import evaluate_run, run_from_scores
from reprotext.tokenizer import TokenArray

LABEL = "relevant"  # the tower is stored as a classifier's encoder; its one nominal label


def new_tower(vectors: np.ndarray, cfg: DSSMConfig, tokenizer_sha256: str) -> Classifier:
    """A bag-of-pieces tower initialised with the word2vec vectors (V, D); the head is never used."""
    config = ModelConfig(model="bag", vocab_size=int(vectors.shape[0]), embedding_dim=int(vectors.shape[1]),
                         labels=(LABEL,), max_len=cfg.max_len, tokenizer_sha256=tokenizer_sha256,
                         encoder={"pooling": cfg.pooling})
    return Classifier(config, vectors=vectors)


@dataclass
class TrainingPairs:
    """What the epochs draw from: corpus tokens (title + text, and each part) and the judged pairs."""

    docs: TokenArray  # (N,) title + text: what the index holds
    titles: TokenArray  # (N,) empty where a document has no title
    texts: TokenArray  # (N,)
    judged_queries: TokenArray  # (P,)
    judged_docs: np.ndarray  # (P,) corpus rows
    hard_negatives: np.ndarray  # (P,) corpus rows, -1 for none


def judged_pairs(collection: Collection, split: str, query_tokens: dict[str, np.ndarray]
                 ) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """(query token ids, corpus row of the relevant document, query id) of every relevant pair of ``split``."""
    row = {d: i for i, d in enumerate(collection.corpus["id"])}
    q, d, ids = [], [], []
    for qid, did, score in collection.qrels[split][["query_id", "doc_id", "score"]].itertuples(index=False):
        if score > 0:
            q.append(query_tokens[qid])
            d.append(row[did])
            ids.append(qid)
    return q, np.asarray(d, dtype=np.int64), ids


def bm25_hard_negatives(bm25_scores: np.ndarray, relevant: Sequence[set[int]]) -> np.ndarray:
    """(P,) the best-scoring corpus row of each query's (P, N) BM25 scores that is not judged relevant."""
    order = np.argsort(-bm25_scores, axis=1, kind="stable")[:, :50]
    out = np.full(len(order), -1, dtype=np.int64)
    for i, (ranked, rel) in enumerate(zip(order, relevant)):
        for j in ranked:
            if int(j) not in rel:
                out[i] = int(j)
                break
    return out


def epoch_sampler(pairs: TrainingPairs, cfg: DSSMConfig) -> Callable[[np.random.Generator], PairBatch]:
    """One epoch's pairs: the judged ones (``judged_repeat`` times), titles, and fresh inverse-cloze spans."""
    def draw(rng: np.random.Generator) -> PairBatch:
        queries: list[np.ndarray] = []
        docs: list[np.ndarray] = []
        keys: list[int] = []
        negatives: list[np.ndarray] = []
        neg_keys: list[int] = []
        empty = np.zeros(0, dtype=np.int32)

        def add(q: np.ndarray, d: np.ndarray, key: int, neg: int = -1) -> None:
            queries.append(q)
            docs.append(d)
            keys.append(key)
            negatives.append(pairs.docs[neg] if neg >= 0 else empty)
            neg_keys.append(neg)

        if cfg.judged_pairs:
            for _ in range(cfg.judged_repeat):
                for i, row in enumerate(pairs.judged_docs):
                    add(pairs.judged_queries[i], pairs.docs[int(row)], int(row),
                        int(pairs.hard_negatives[i]) if cfg.hard_negatives else -1)
        n = len(pairs.docs)
        if cfg.title_pairs:
            for row in range(n):
                if len(pairs.titles[row]) and len(pairs.texts[row]):
                    add(pairs.titles[row], pairs.texts[row], row)
        if cfg.ict_pairs:
            for row in range(n):
                if len(pairs.texts[row]) >= 4:
                    q, d = inverse_cloze(pairs.texts[row], rng, cfg.ict_span, cfg.ict_keep)
                    add(q, d, row)
        if len(keys) < 2:
            raise DataError("fewer than 2 training pairs: enable dssm.judged_pairs, title_pairs or ict_pairs, or "
                            "give a corpus with text")
        return PairBatch(queries, docs, np.asarray(keys, dtype=np.int64), negatives,
                         np.asarray(neg_keys, dtype=np.int64))

    return draw


def dense_scores(encoder: nn.Module, docs: TokenArray, queries: TokenArray, max_len: int,
                 doc_vectors: np.ndarray | None = None) -> np.ndarray:
    """(Q, N) cosines of the queries to the documents under ``encoder`` (no centring: trained on raw cosines)."""
    index = DenseIndex.build(encode(encoder, docs, max_len) if doc_vectors is None else doc_vectors, center=False)
    return index.scores(encode(encoder, queries, max_len))


def ndcg_at_10(scores: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str],
               qrels: dict[str, dict[str, int]]) -> float:
    return evaluate_run(qrels, run_from_scores(scores, query_ids, doc_ids, 100))["ndcg_at_10"]


def fit_dssm(pairs: TrainingPairs, vectors: np.ndarray, cfg: DSSMConfig, tokenizer_sha256: str,
             dev_queries: TokenArray, dev_ids: Sequence[str], doc_ids: Sequence[str],
             dev_qrels: dict[str, dict[str, int]]) -> tuple[Classifier, list[dict], int, float]:
    """Train the tower; returns (model, history, best epoch, seconds). The epoch is chosen by dev nDCG@10."""
    model = new_tower(vectors, cfg, tokenizer_sha256)

    def select(encoder: nn.Module) -> float:
        return ndcg_at_10(dense_scores(encoder, pairs.docs, dev_queries, cfg.max_len), dev_ids, doc_ids, dev_qrels)

    start = time.perf_counter()
    history, best = train_on_pairs(model.encoder, epoch_sampler(pairs, cfg), epochs=cfg.epochs,
                                   batch_size=cfg.batch_size, lr=cfg.lr, temperature=cfg.temperature,
                                   max_len=cfg.max_len, seed=cfg.seed, weight_decay=cfg.weight_decay, select=select)
    return model, history, best, time.perf_counter() - start


def save_dssm(model: Classifier, directory: Path, info: dict) -> None:
    save_encoder(model, directory, info)
