"""vocab: sentencepiece over the corpus (title + text; never the queries); documents and queries encoded."""
import time

from reprotext import stage
from reprotext.config import RETRIEVAL_SECTIONS, TokenizeConfig, load_section
from reprotext.io import atomic_dir, write_json
from reprotext.retrieval.pipeline import SavedCollection, encode_sets, train_vocab
from reprotext.tracking import stage_run


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--collection", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("vocab", TokenizeConfig, args.params, RETRIEVAL_SECTIONS)
    saved = SavedCollection.load(args.collection)
    with stage_run("vocab", cfg.model_dump(), pipeline="retrieval") as mlflow, \
            atomic_dir(args.tokenizer) as tok_dir, atomic_dir(args.tokens) as tokens_dir:
        tok, train_seconds = train_vocab(saved, cfg, tok_dir)
        start = time.perf_counter()
        sets = encode_sets(saved, tok, cfg.threads)
        encode_seconds = time.perf_counter() - start
        for name, arr in sets.items():
            arr.save(tokens_dir / name, tok.sha256)
        metrics = {"vocab_size": tok.vocab_size,
                   **{f"{name}/tokens": int(arr.offsets[-1]) for name, arr in sets.items()},
                   **{f"{name}/mean_length": float(arr.lengths().mean()) for name, arr in sets.items()}}
        write_json(args.metrics, metrics)
        mlflow.log_metrics({**metrics, "time/train_seconds": train_seconds, "time/encode_seconds": encode_seconds})


if __name__ == "__main__":
    stage.run(main)
