"""embed: word2vec (skip-gram or CBOW, negative sampling) over the BPE pieces of the train splits and unlabeled text."""
from pathlib import Path

from reprotext import stage
from reprotext.config import EmbedConfig, load_section
from reprotext.embeddings import PieceCorpus, probe, save, similarity_benchmarks, train_embeddings, write_report
from reprotext.io import atomic_dir, write_json
from reprotext.tokenizer import META_FILE, TokenArray, Tokenizer
from reprotext.tracking import flatten, stage_run

# Token sets of training text that tokenize writes; unlabeled only when it was given unlabeled text.
TRAIN_SETS = ("source/train", "target/train", "unlabeled")


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("embed", EmbedConfig, args.params)
    tok = Tokenizer.load(args.tokenizer)
    tokens = Path(args.tokens)
    names = [n for n in TRAIN_SETS if n != "unlabeled" or (tokens / n / META_FILE).is_file()]
    corpus = PieceCorpus([TokenArray.load(tokens / n, tok.sha256) for n in names], tok.pieces())
    with stage_run("embed", cfg.model_dump()) as mlflow:
        result = train_embeddings(corpus, cfg)
        sims = similarity_benchmarks(result.vectors, result.trained, tok)
        probes = probe(result.vectors, result.trained, tok, cfg.probes)
        with atomic_dir(args.out) as out_dir, atomic_dir(args.report) as report_dir:
            save(out_dir, result, cfg, tok.sha256)
            write_report(report_dir, result, cfg, sims, probes)
        # Deterministic for a seed with one worker, as the vectors are; timings go to MLflow only.
        metrics = {"trained_rows": result.trained_rows, "random_rows": result.random_rows,
                   "loss_per_token": result.losses[-1], "training_tokens": corpus.n_tokens(),
                   **{name: s.as_dict() for name, s in sims.items()}}
        write_json(args.metrics, metrics)
        for epoch, loss in enumerate(result.losses):
            mlflow.log_metric("train/loss", loss, step=epoch)
        logged = {k: v for k, v in flatten(metrics, sep="/").items() if v is not None}
        mlflow.log_metrics({**logged, "time/train_seconds": result.seconds,
                            "throughput/tokens_per_second": result.tokens_per_second(corpus.n_tokens()),
                            "throughput/effective_tokens_per_second": result.effective_tokens / max(result.seconds, 1e-9)})
        mlflow.set_tag("embed.training_sets", ",".join(names))
        mlflow.log_artifacts(args.report, "report")


if __name__ == "__main__":
    stage.run(main)
