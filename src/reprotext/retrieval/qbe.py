"""Query by example on a labelled collection: ranking metrics, the precision-recall curve, the evaluate stage's report.

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

This is the classification pipeline's retrieval check (a same-label document
counts as relevant); retrieval over real queries with relevance judgments is
:mod:`reprotext.retrieval.beir` and :mod:`reprotext.retrieval.ir_metrics`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reprotext.retrieval.dense import DenseIndex
from reprotext.retrieval.lexical import BM25Scorer, TfidfScorer
from reprotext.tokenizer import TokenArray

K_PRECISION, K_MAP, K_RECALL = 10, 100, 100
# Cutoffs of the precision-recall curve: the number of documents retrieved (the collection size is added).
PR_CUTOFFS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)


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
        labels, codes, counts = np.unique(self.doc_labels, return_inverse=True, return_counts=True)
        self._count = dict(zip(labels.tolist(), counts.tolist()))
        self._code = {label: i for i, label in enumerate(labels.tolist())}
        self._doc_codes = torch.from_numpy(codes.reshape(-1).astype(np.int64))  # labels as integers: compared fast

    def add(self, scores: np.ndarray, query_labels: Sequence) -> None:
        """Rank the collection for a batch of queries: ``scores`` (B, N), higher is better."""
        query_labels = np.asarray(query_labels)
        n_rel = np.array([self._count.get(q, 0) for q in query_labels.tolist()], dtype=np.int64)
        keep = n_rel > 0
        self.skipped += int((~keep).sum())
        if not keep.any():
            return
        scores, query_labels, n_rel = scores[keep], query_labels[keep], n_rel[keep]
        # Best first, ties in collection order (a stable sort of the negated scores; torch's is the faster one).
        order = torch.sort(torch.from_numpy(-np.asarray(scores)), dim=1, stable=True).indices  # (B, N)
        query_codes = torch.tensor([self._code[q] for q in query_labels.tolist()], dtype=torch.int64)
        rel = (self._doc_codes[order] == query_codes[:, None]).numpy()
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
                f"- Query-by-example retrieval, {TASKS.get(role, role)} (test documents query the training split; same label = relevant): the best learned "
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
