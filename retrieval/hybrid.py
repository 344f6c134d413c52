"""hybrid: BM25, the dual encoder and their fusion (method and weight chosen on dev); test nDCG@10, R@100, MRR@10.

The only stage of the retrieval pipeline that scores the test queries.
"""
import pandas as pd

from reprotext import stage
from reprotext.config import RETRIEVAL_SECTIONS, HybridConfig, load_section
from reprotext.io import atomic_dir, write_json
from reprotext.retrieval.dense import encode
from reprotext.retrieval.dssm import dense_scores
from reprotext.retrieval.dual_encoder import load_encoder
from reprotext.retrieval.lexical import BM25Scorer
from reprotext.retrieval.pipeline import SavedCollection, evaluate_methods, split_queries
from reprotext.retrieval.report import write_report
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.tracking import flatten, stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--collection", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--bm25", required=True)
    p.add_argument("--dssm", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("hybrid", HybridConfig, args.params, RETRIEVAL_SECTIONS)
    tok = Tokenizer.load(args.tokenizer)
    saved = SavedCollection.load(args.collection)
    queries = TokenArray.load(f"{args.tokens}/queries", tok.sha256)
    docs = TokenArray.load(f"{args.tokens}/docs", tok.sha256)
    bm25 = BM25Scorer.load(args.bm25)
    encoder, config = load_encoder(args.dssm, tok.sha256)
    splits = {s: split_queries(saved, queries, s) for s in ("dev", "test")}
    with stage_run("hybrid", cfg.model_dump(), pipeline="retrieval") as mlflow, atomic_dir(args.report) as report:
        doc_vectors = encode(encoder, docs, config.max_len)
        result = evaluate_methods(bm25, lambda split: dense_scores(encoder, docs, split.tokens, config.max_len,
                                                                   doc_vectors),
                                  splits, saved.corpus["id"].tolist(), cfg)
        seconds = result.pop("seconds")
        write_report(report / "report.md", result, len(saved.corpus))
        # Every (method, weight) tried on dev: a table for the report, not a metric to diff.
        pd.DataFrame(result.pop("fusion_grid")).to_csv(report / "fusion_grid.csv", index=False)
        write_json(args.metrics, result)
        mlflow.log_metrics({k: v for k, v in flatten({s: result[s] for s in splits}, sep="/").items()})
        mlflow.log_metrics({f"time/{k}_seconds": v for k, v in seconds.items()})
        mlflow.set_tags({"hybrid.fusion": result["fusion"]["method"], "hybrid.weight": result["fusion"]["weight"]})
        mlflow.log_artifacts(str(report), "report")


if __name__ == "__main__":
    stage.run(main)
