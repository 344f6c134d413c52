"""IR metrics over judged queries, computed by ``ir-measures`` (trec_eval's definitions, via pytrec_eval).

nDCG@10 (graded gains, log2 discount), R@100 (judged relevant documents in the first 100, over all judged
relevant) and MRR@10 (reciprocal rank of the first relevant document within 10, else 0), each the mean over the
judged queries; a judged query the run does not rank counts 0. Ties are broken as trec_eval does.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from reprotext.errors import DataError
from reprotext.retrieval.fusion import top_k

METRICS = {"ndcg_at_10": "nDCG@10", "recall_at_100": "R@100", "mrr_at_10": "RR@10"}


def run_from_scores(scores: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str],
                    depth: int = 1000) -> dict[str, dict[str, float]]:
    """A run ({query id: {document id: score}}) of each query's ``depth`` best documents from (B, N) scores."""
    doc_ids = np.asarray(doc_ids)
    if scores.shape != (len(query_ids), len(doc_ids)):
        raise ValueError(f"scores {scores.shape} do not match {len(query_ids)} queries x {len(doc_ids)} documents")
    top = top_k(scores, depth)
    vals = np.take_along_axis(scores, top, 1)
    return {str(q): dict(zip(doc_ids[t].tolist(), v.astype(float).tolist()))
            for q, t, v in zip(query_ids, top, vals)}


def evaluate_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]],
                 metrics: Mapping[str, str] = METRICS) -> dict[str, float]:
    """Mean of each metric over the judged queries: {"ndcg_at_10": ..., "recall_at_100": ..., "mrr_at_10": ...}."""
    import ir_measures

    if not qrels:
        raise DataError("no judged queries to evaluate; the qrels of this split are empty")
    measures = {name: ir_measures.parse_measure(spec) for name, spec in metrics.items()}
    # Judged queries absent from the run score 0 (trec_eval would leave them out and inflate the mean).
    run = {q: dict(run.get(q, {})) for q in qrels}
    per_query: dict[str, dict[str, float]] = {name: {q: 0.0 for q in qrels} for name in measures}
    by_measure = {m: name for name, m in measures.items()}
    for metric in ir_measures.iter_calc(list(measures.values()), dict(qrels), run):
        per_query[by_measure[metric.measure]][metric.query_id] = float(metric.value)
    return {name: float(np.mean(list(values.values()))) for name, values in per_query.items()}
