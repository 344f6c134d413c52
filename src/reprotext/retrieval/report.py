"""The retrieval pipeline's Markdown report: BM25, dense and hybrid on the test (and dev) queries."""
from __future__ import annotations

from pathlib import Path

from reprotext.io import atomic_file

METHOD_NAMES = {"bm25": "BM25 (bm25s)", "dense": "dual encoder (DSSM-style, cosine)", "hybrid": "hybrid"}


def report_lines(result: dict, documents: int) -> list[str]:
    f = result["fusion"]
    lines = ["# Retrieval over judged queries", "",
             f"{documents} documents. Metrics from ir-measures (trec_eval definitions) over the judged queries of "
             "each split; the fusion's method and dense weight were chosen on the dev queries (carved out of the "
             "training queries), the dual encoder's epoch too.", ""]
    for split in ("test", "dev"):
        if split not in result:
            continue
        r = result[split]
        lines += [f"## {split.capitalize()} ({r['queries']} queries)", "",
                  "| method | nDCG@10 | R@100 | MRR@10 |", "|---|---:|---:|---:|"]
        for m in ("bm25", "dense", "hybrid"):
            name = METHOD_NAMES[m] + (f" ({f['method']}, dense weight {f['weight']:g})" if m == "hybrid" else "")
            v = r[m]
            lines.append(f"| {name} | {v['ndcg_at_10']:.4f} | {v['recall_at_100']:.4f} | {v['mrr_at_10']:.4f} |")
        lines.append("")
    lines += ["## Fusion choice (dev nDCG@10)", "", "| method | dense weight | nDCG@10 |", "|---|---:|---:|"]
    lines += [f"| {g['method']} | {g['weight']:g} | {g['ndcg_at_10']:.4f} |" for g in result["fusion_grid"]]
    return lines + [""]


def write_report(path: Path, result: dict, documents: int) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text("\n".join(report_lines(result, documents)), encoding="utf-8")
