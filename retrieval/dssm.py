"""dssm: the DSSM-style dual encoder trained on judged and self-supervised pairs; epoch chosen by dev nDCG@10."""
import pandas as pd

from reprotext import embeddings, stage
from reprotext.config import RETRIEVAL_SECTIONS, DSSMConfig, load_section
from reprotext.io import atomic_dir, atomic_file, read_json, write_json
from reprotext.retrieval.dssm import save_dssm
from reprotext.retrieval.lexical import BM25Scorer
from reprotext.retrieval.pipeline import TOKEN_SETS, SavedCollection, train_dssm
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--collection", required=True)
    p.add_argument("--collection-metrics", required=True, help="the collection stage's metrics (how text was read)")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--bm25", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--history", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("dssm", DSSMConfig, args.params, RETRIEVAL_SECTIONS)
    tok = Tokenizer.load(args.tokenizer)
    saved = SavedCollection.load(args.collection)
    tokens = {name: TokenArray.load(f"{args.tokens}/{name}", tok.sha256) for name in TOKEN_SETS}
    vectors = embeddings.load(args.embeddings, tok.sha256)
    bm25 = BM25Scorer.load(args.bm25) if cfg.hard_negatives else None
    lowercase = bool(read_json(args.collection_metrics)["lowercase"])
    with stage_run("dssm", cfg.model_dump(), pipeline="retrieval") as mlflow, atomic_dir(args.out) as out:
        model, history, best, seconds = train_dssm(saved, tokens, vectors, tok.sha256, bm25, cfg)
        # How search must read text: as the collection stage did, and by raw cosine (as trained).
        save_dssm(model, out, {"best_epoch": best, "options": cfg.model_dump(),
                               "text": {"lowercase": lowercase, "center": False}})
        with atomic_file(args.history) as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
        best_row = next(h for h in history if h["epoch"] == best)
        metrics = {"best_epoch": best, "epochs_run": len(history) - 1, "dev/ndcg_at_10": best_row["dev/score"],
                   "start/dev/ndcg_at_10": history[0]["dev/score"], "pairs_per_epoch": history[-1].get("pairs", 0)}
        write_json(args.metrics, metrics)
        for row in history:
            mlflow.log_metrics({k: v for k, v in row.items() if k in ("train/loss", "dev/score")}, step=row["epoch"])
        mlflow.log_metrics({"time/train_seconds": seconds, "best_epoch": best})


if __name__ == "__main__":
    stage.run(main)
