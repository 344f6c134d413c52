"""embed: word2vec (skip-gram or CBOW, negative sampling) over the BPE pieces of the train splits."""
from pathlib import Path

from reprotext import stage
from reprotext.config import EmbedConfig, load_section
from reprotext.embeddings import PieceCorpus, nearest, save, train_embeddings
from reprotext.io import atomic_dir, write_json
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.tracking import stage_run

PROBES = ("▁god", "▁car", "▁space", "▁computer", "▁oil", "▁game")


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("embed", EmbedConfig, args.params)
    with stage_run("embed", cfg.model_dump()) as mlflow:
        tok = Tokenizer.load(args.tokenizer)
        arrays = [TokenArray.load(Path(args.tokens) / role / "train", tok.sha256) for role in ("source", "target")]
        pieces = tok.pieces()
        result = train_embeddings(PieceCorpus(arrays, pieces), cfg)
        neighbours = {}
        for probe in PROBES:
            row = tok.sp.piece_to_id(probe)
            if row != tok.sp.unk_id():
                neighbours[probe] = [pieces[i] for i in nearest(result.vectors, row, k=6)]
        with atomic_dir(args.out) as tmp:
            save(tmp, result, cfg, tok.sha256)
            write_json(tmp / "neighbours.json", neighbours)
        # Only deterministic numbers go into the DVC metrics file; timings go to MLflow.
        metrics = {"trained_rows": result.trained_rows, "random_rows": result.random_rows,
                   "final_epoch_loss": result.losses[-1]}
        write_json(args.metrics, metrics)
        for epoch, loss in enumerate(result.losses):
            mlflow.log_metric("train/loss", loss, step=epoch)
        mlflow.log_metrics({"trained_rows": result.trained_rows, "random_rows": result.random_rows,
                            "words_per_second": result.words_per_second})
        mlflow.log_dict(neighbours, "neighbours.json")


if __name__ == "__main__":
    stage.run(main)
