"""collection: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) checked and stored; dev queries carved out."""
from reprotext import stage
from reprotext.config import RETRIEVAL_SECTIONS, CollectionConfig, load_section
from reprotext.io import atomic_dir, write_json
from reprotext.retrieval.pipeline import prepare_collection, save_collection
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--data", required=True, help="the BEIR folder")
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("collection", CollectionConfig, args.params, RETRIEVAL_SECTIONS)
    collection = prepare_collection(args.data, cfg)
    with stage_run("collection", cfg.model_dump(), pipeline="retrieval") as mlflow, atomic_dir(args.out) as out:
        metrics = save_collection(collection, out, cfg.lowercase)
        write_json(args.metrics, metrics)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.set_tag("collection.data", args.data)


if __name__ == "__main__":
    stage.run(main)
