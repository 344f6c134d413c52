"""word2vec: skip-gram (or CBOW) over the corpus's pieces, the dual encoder's starting embeddings."""
from reprotext import stage
from reprotext.config import RETRIEVAL_SECTIONS, EmbedConfig, load_section
from reprotext.embeddings import save
from reprotext.io import atomic_dir, write_json
from reprotext.retrieval.pipeline import train_word2vec
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("word2vec", EmbedConfig, args.params, RETRIEVAL_SECTIONS)
    tok = Tokenizer.load(args.tokenizer)
    docs = TokenArray.load(f"{args.tokens}/docs", tok.sha256)
    with stage_run("word2vec", cfg.model_dump(), pipeline="retrieval") as mlflow, atomic_dir(args.out) as out:
        result = train_word2vec(docs, tok, cfg)
        save(out, result, cfg, tok.sha256)
        metrics = {"trained_rows": result.trained_rows, "random_rows": result.random_rows,
                   "loss_per_token": result.losses[-1], "training_tokens": int(docs.offsets[-1])}
        write_json(args.metrics, metrics)
        for epoch, loss in enumerate(result.losses):
            mlflow.log_metric("train/loss", loss, step=epoch)
        mlflow.log_metrics({**metrics, "time/train_seconds": result.seconds})


if __name__ == "__main__":
    stage.run(main)
