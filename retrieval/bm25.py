"""bm25: the Okapi BM25 index of the corpus (bm25s; stop words, Snowball stemming); its dev metrics."""
import time

from reprotext import stage
from reprotext.config import RETRIEVAL_SECTIONS, BM25Config, load_section
from reprotext.io import atomic_dir, write_json
from reprotext.retrieval.pipeline import SavedCollection, build_bm25, metrics_of, split_queries
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--collection", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("bm25", BM25Config, args.params, RETRIEVAL_SECTIONS)
    saved = SavedCollection.load(args.collection)
    dev = split_queries(saved, None, "dev")
    with stage_run("bm25", cfg.model_dump(), pipeline="retrieval") as mlflow, atomic_dir(args.out) as out:
        start = time.perf_counter()
        bm25 = build_bm25(saved, cfg)
        index_seconds = time.perf_counter() - start
        bm25.save(out)
        start = time.perf_counter()
        scores = bm25.scores(dev.texts)
        search_seconds = time.perf_counter() - start
        metrics = {"dev": metrics_of(scores, dev, saved.corpus["id"].tolist(), cfg.depth), "dev_queries": len(dev.ids)}
        write_json(args.metrics, metrics)
        mlflow.log_metrics({**{f"dev/{k}": v for k, v in metrics["dev"].items()}, "time/index_seconds": index_seconds,
                            "time/dev_search_seconds": search_seconds})


if __name__ == "__main__":
    stage.run(main)
