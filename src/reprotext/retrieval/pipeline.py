"""The retrieval pipeline's steps over a BEIR collection (retrieval/dvc.yaml's stages and the SciFact bench).

collection -> vocab (sentencepiece over the corpus) -> word2vec (over the corpus's pieces) -> bm25 -> dssm (the
dual encoder) -> hybrid (BM25 + dense fused, the fusion chosen on dev; nDCG@10, R@100, MRR@10 of all three on
test). Each function takes typed configs and in-memory data; the stage scripts read and write the files.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext.config import BM25Config, CollectionConfig, DSSMConfig, EmbedConfig, HybridConfig, TokenizeConfig
from reprotext.errors import ArtifactError, DataError
from reprotext.retrieval import dssm
from reprotext.retrieval.beir import SPLITS, Collection, carve_dev, load_beir
from reprotext.retrieval.fusion import fuse
from reprotext.retrieval.ir_metrics import evaluate_run, run_from_scores
from reprotext.retrieval.lexical import BM25Scorer
from reprotext.tokenizer import TokenArray, Tokenizer, train_tokenizer

TOKEN_SETS = ("docs", "titles", "texts", "queries")


# ------------------------------------------------------------------------------------------- collection

def prepare_collection(folder: str | Path, cfg: CollectionConfig) -> Collection:
    """The BEIR folder, checked, with dev queries carved out of the training queries when it has no dev split."""
    collection = carve_dev(load_beir(folder), cfg.dev_fraction, cfg.seed)
    for split in ("train", "dev"):
        if split not in collection.qrels:
            raise DataError(f"{folder}: no qrels/{split}.tsv; the dual encoder trains on judged training queries "
                            "and the fusion is chosen on dev ones")
    return collection


def model_text(texts: list[str], lowercase: bool) -> list[str]:
    return [t.lower() for t in texts] if lowercase else list(texts)


def save_collection(collection: Collection, directory: Path, lowercase: bool) -> dict:
    """corpus/queries/qrels as Parquet; ``model_text``: what the tokenizer and the dual encoder read."""
    corpus = collection.corpus.assign(bm25_text=collection.doc_texts())
    corpus = corpus.assign(model_text=model_text(corpus["bm25_text"].tolist(), lowercase),
                           model_title=model_text(corpus["title"].tolist(), lowercase),
                           model_body=model_text(corpus["text"].tolist(), lowercase))
    corpus.to_parquet(directory / "corpus.parquet", index=False)
    collection.queries.assign(model_text=model_text(collection.queries["text"].tolist(), lowercase)).to_parquet(
        directory / "queries.parquet", index=False)
    for split, qrels in collection.qrels.items():
        qrels.to_parquet(directory / f"qrels_{split}.parquet", index=False)
    return {"documents": len(corpus), "queries": len(collection.queries), "lowercase": lowercase,
            **{f"{s}_queries": int(q["query_id"].nunique()) for s, q in collection.qrels.items()},
            **{f"{s}_judgments": len(q) for s, q in collection.qrels.items()}}


@dataclass
class SavedCollection:
    """The collection stage's output, read back."""

    collection: Collection
    corpus: pd.DataFrame  # + bm25_text, model_text, model_title, model_body
    queries: pd.DataFrame  # + model_text

    @classmethod
    def load(cls, directory: str | Path) -> SavedCollection:
        directory = Path(directory)
        try:
            corpus = pd.read_parquet(directory / "corpus.parquet")
            queries = pd.read_parquet(directory / "queries.parquet")
            qrels = {s: pd.read_parquet(directory / f"qrels_{s}.parquet") for s in SPLITS
                     if (directory / f"qrels_{s}.parquet").is_file()}
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{directory}: collection missing or unreadable ({exc.__class__.__name__}); rerun "
                                "`dvc repro retrieval/dvc.yaml:collection`") from exc
        return cls(Collection(corpus[["id", "title", "text"]], queries[["id", "text"]], qrels), corpus, queries)


# ---------------------------------------------------------------------------------------- vocab, word2vec

def train_vocab(saved: SavedCollection, cfg: TokenizeConfig, tokenizer_dir: Path) -> tuple[Tokenizer, float]:
    """sentencepiece over the corpus (title + text) only: the queries are never training text."""
    start = time.perf_counter()
    tok = train_tokenizer(iter(saved.corpus["model_text"].tolist()), cfg, tokenizer_dir)
    return tok, time.perf_counter() - start


def encode_sets(saved: SavedCollection, tok: Tokenizer, threads: int) -> dict[str, TokenArray]:
    """Token ids of the indexed documents, their titles and bodies apart, and every query (queries.parquet order)."""
    columns = {"docs": saved.corpus["model_text"], "titles": saved.corpus["model_title"],
               "texts": saved.corpus["model_body"], "queries": saved.queries["model_text"]}
    return {name: tok.encode_array(col.tolist(), threads=threads) for name, col in columns.items()}


# --------------------------------------------------------------------------------------------------- BM25

def build_bm25(saved: SavedCollection, cfg: BM25Config) -> BM25Scorer:
    return BM25Scorer(saved.corpus["bm25_text"].tolist(), cfg.k1, cfg.b, cfg.stopwords, cfg.stemmer)


@dataclass
class Split:
    """One split's judged queries: ids, texts, token ids, and the judgments."""

    ids: list[str]
    texts: list[str]
    tokens: TokenArray | None  # None where only BM25 reads the queries
    qrels: dict[str, dict[str, int]]


def split_queries(saved: SavedCollection, query_tokens: TokenArray | None, split: str) -> Split:
    """The judged queries of ``split``; their token ids when ``query_tokens`` (all queries, in order) are given."""
    queries = saved.collection.split_queries(split)
    row = {q: i for i, q in enumerate(saved.queries["id"])}
    rows = [row[q] for q in queries["id"]]
    tokens = TokenArray.from_lists([query_tokens[i] for i in rows]) if query_tokens is not None else None
    return Split(queries["id"].tolist(), queries["text"].tolist(), tokens, saved.collection.judgments(split))


def metrics_of(scores: np.ndarray, split: Split, doc_ids: list[str], depth: int = 1000) -> dict[str, float]:
    return evaluate_run(split.qrels, run_from_scores(scores, split.ids, doc_ids, depth))


# --------------------------------------------------------------------------------------------------- DSSM

def training_pairs(saved: SavedCollection, tokens: dict[str, TokenArray], bm25: BM25Scorer | None
                   ) -> dssm.TrainingPairs:
    """The corpus's token sets and the judged training pairs, each with BM25's best non-relevant document."""
    query_tokens = dict(zip(saved.queries["id"], (tokens["queries"][i] for i in range(len(saved.queries)))))
    jq, jd, jids = dssm.judged_pairs(saved.collection, "train", query_tokens)
    hard = np.full(len(jd), -1, dtype=np.int64)
    if bm25 is not None and len(jd):
        text = dict(zip(saved.queries["id"], saved.queries["text"]))
        relevant: dict[str, set[int]] = {}
        for q, d in zip(jids, jd):
            relevant.setdefault(q, set()).add(int(d))
        hard = dssm.bm25_hard_negatives(bm25.scores([text[q] for q in jids]), [relevant[q] for q in jids])
    return dssm.TrainingPairs(tokens["docs"], tokens["titles"], tokens["texts"], TokenArray.from_lists(jq), jd, hard)


def train_dssm(saved: SavedCollection, tokens: dict[str, TokenArray], vectors: np.ndarray, tok_sha256: str,
               bm25: BM25Scorer | None, cfg: DSSMConfig):
    """(model, history, best epoch, seconds): the dual encoder, its epoch chosen by dev nDCG@10."""
    pairs = training_pairs(saved, tokens, bm25 if cfg.hard_negatives else None)
    dev = split_queries(saved, tokens["queries"], "dev")
    return dssm.fit_dssm(pairs, vectors, cfg, tok_sha256, dev.tokens, dev.ids, saved.corpus["id"].tolist(), dev.qrels)


# ------------------------------------------------------------------------------------------------- hybrid

def choose_fusion(dense: np.ndarray, lexical: np.ndarray, dev: Split, doc_ids: list[str], cfg: HybridConfig
                  ) -> tuple[dict, list[dict]]:
    """The fusion method and dense weight with the best dev nDCG@10 (ties: the first in cfg order); all scored."""
    grid = []
    for method in cfg.methods:
        for weight in cfg.weights:
            fused = fuse(dense, lexical, method, weight, cfg.depth, cfg.rrf_k)
            grid.append({"method": method, "weight": weight, **metrics_of(fused, dev, doc_ids)})
    best = max(grid, key=lambda g: g["ndcg_at_10"])
    return {"method": best["method"], "weight": best["weight"], "depth": cfg.depth, "rrf_k": cfg.rrf_k}, grid


def evaluate_methods(bm25: BM25Scorer, dense_scores, splits: dict[str, Split], doc_ids: list[str],
                     cfg: HybridConfig) -> dict:
    """BM25, dense and hybrid (fusion chosen on ``splits['dev']``) on every split; with timings.

    ``dense_scores(split) -> (Q, N)``. Returns {"fusion": chosen, "fusion_grid": dev scores, "<split>": {"bm25":
    {...}, "dense": {...}, "hybrid": {...}}, "seconds": {...}}.
    """
    scores, seconds = {}, {"bm25": 0.0, "dense": 0.0, "fusion": 0.0}
    for name, split in splits.items():
        t = time.perf_counter()
        lexical = bm25.scores(split.texts)
        seconds["bm25"] += time.perf_counter() - t
        t = time.perf_counter()
        dense = dense_scores(split)
        seconds["dense"] += time.perf_counter() - t
        scores[name] = (lexical, dense)
    fusion, grid = choose_fusion(scores["dev"][1], scores["dev"][0], splits["dev"], doc_ids, cfg)
    out: dict = {"fusion": fusion, "fusion_grid": grid}
    for name, split in splits.items():
        lexical, dense = scores[name]
        t = time.perf_counter()
        hybrid = fuse(dense, lexical, fusion["method"], fusion["weight"], cfg.depth, cfg.rrf_k)
        seconds["fusion"] += time.perf_counter() - t
        out[name] = {"bm25": metrics_of(lexical, split, doc_ids), "dense": metrics_of(dense, split, doc_ids),
                     "hybrid": metrics_of(hybrid, split, doc_ids), "queries": len(split.ids)}
    out["seconds"] = seconds
    return out


def train_word2vec(tokens: TokenArray, tok: Tokenizer, cfg: EmbedConfig):
    from reprotext.embeddings import PieceCorpus, train_embeddings

    return train_embeddings(PieceCorpus([tokens], tok.pieces()), cfg, progress=False)
