"""tokenize: sentencepiece BPE trained on the train splits only; train and dev splits encoded.

The test splits are encoded by evaluate, the only stage that opens them.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext import stage
from reprotext.config import TokenizeConfig, load_section
from reprotext.errors import DataError
from reprotext.io import atomic_dir, write_json
from reprotext.tokenizer import UNK, TokenArray, train_tokenizer
from reprotext.tracking import flatten, stage_run

ROLES, SPLITS = ("source", "target"), ("train", "dev")


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: split not found; run `dvc repro split` first")
    return pd.read_parquet(path, columns=["text"])


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("tokenize", TokenizeConfig, args.params)
    with stage_run("tokenize", cfg.model_dump()) as mlflow:
        texts = {(r, s): _read(Path(args.splits) / r / f"{s}.parquet")["text"].tolist() for r in ROLES for s in SPLITS}
        metrics = {}
        with atomic_dir(args.tokenizer) as tok_dir, atomic_dir(args.tokens) as tokens_dir:
            tok = train_tokenizer(texts["source", "train"] + texts["target", "train"], cfg, tok_dir)
            for (role, split), docs in texts.items():
                arr = TokenArray.from_lists(tok.encode(docs, threads=cfg.threads))
                arr.save(tokens_dir / role / split, tok.sha256)
                n_chars = sum(map(len, docs))
                metrics[f"{role}/{split}"] = {
                    "tokens_per_doc": float(arr.lengths().mean()),
                    "chars_per_token": n_chars / max(int(arr.offsets[-1]), 1),
                    "unk_rate": float(np.mean(arr.ids == UNK)) if len(arr.ids) else 0.0,
                }
            used = np.unique(np.concatenate([TokenArray.load(tokens_dir / r / "train").ids for r in ROLES]))
            metrics["vocab_size"] = tok.vocab_size
            metrics["vocab_used_in_train"] = len(used) / tok.vocab_size
        write_json(args.metrics, metrics)
        mlflow.log_metrics(flatten(metrics, sep="/"))
        mlflow.log_artifact(str(Path(args.tokenizer) / "spm.model"), "tokenizer")


if __name__ == "__main__":
    stage.run(main)
