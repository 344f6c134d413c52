"""tokenize: sentencepiece BPE trained on the train splits (+ unlabeled text); train, dev and unlabeled encoded.

The test splits are encoded by evaluate, the only stage that opens them.
"""
import time
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from reprotext import stage
from reprotext.config import TokenizeConfig, load_section
from reprotext.errors import DataError
from reprotext.io import atomic_dir, read_json, write_json
from reprotext.token_report import piece_counts, segmentations, split_stats, write_report
from reprotext.tokenizer import META_FILE, train_tokenizer
from reprotext.tracking import flatten, stage_run

ROLES, SPLITS = ("source", "target"), ("train", "dev")
UNLABELED = "unlabeled"


def _read(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: not found; run `dvc repro` for the stage that writes it (split or prepare)")
    try:
        return pd.read_parquet(path, columns=["text"])["text"].tolist()
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: cannot read a `text` column ({exc}); rerun the stage that wrote it") from exc


def main() -> None:
    p = stage.parser(__doc__)
    p.add_argument("--splits", required=True)
    p.add_argument("--unlabeled", help="Parquet with a `text` column: more tokenizer (and word2vec) training text")
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--report", required=True)
    p.add_argument("--metrics", required=True)
    args = p.parse_args()
    cfg = load_section("tokenize", TokenizeConfig, args.params)
    texts = {f"{r}/{s}": _read(Path(args.splits) / r / f"{s}.parquet") for r in ROLES for s in SPLITS}
    if args.unlabeled:
        texts[UNLABELED] = _read(Path(args.unlabeled))
    train_sets = [name for name in texts if name.endswith("/train") or name == UNLABELED]
    with stage_run("tokenize", cfg.model_dump()) as mlflow, atomic_dir(args.tokenizer) as tok_dir, \
            atomic_dir(args.tokens) as tokens_dir, atomic_dir(args.report) as report_dir:
        start = time.perf_counter()
        tok = train_tokenizer(chain.from_iterable(texts[n] for n in train_sets), cfg, tok_dir)
        train_seconds = time.perf_counter() - start
        byte_mask = tok.byte_mask()
        stats, lengths, train_counts = {}, {}, np.zeros(tok.vocab_size, dtype=np.int64)
        encode_seconds = 0.0
        for name, docs in texts.items():
            start = time.perf_counter()
            arr = tok.encode_array(docs, threads=cfg.threads)
            encode_seconds += time.perf_counter() - start
            arr.save(tokens_dir / name, tok.sha256)
            counts = piece_counts(arr, tok.vocab_size)
            stats[name] = split_stats(arr, sum(map(len, docs)), counts, byte_mask)
            lengths[name] = arr.lengths()
            if name in train_sets:
                train_counts += counts
        training = read_json(tok_dir / META_FILE)["training"]
        examples = {f"{r}/dev": segmentations(tok, texts[f"{r}/dev"]) for r in ROLES}
        write_report(report_dir, tok, stats, lengths, train_counts, examples, training)
        metrics = {name: s.as_dict() for name, s in stats.items()}
        metrics["vocab_size"] = tok.vocab_size
        metrics["vocab_used_in_train"] = float(np.count_nonzero(train_counts)) / tok.vocab_size
        metrics["training"] = training
        write_json(args.metrics, metrics)
        # Timings vary from run to run: MLflow only, never the DVC metrics file.
        total_tokens = sum(s.tokens for s in stats.values())
        mlflow.log_metrics({**flatten(metrics, sep="/"), "time/train_seconds": train_seconds,
                            "time/encode_seconds": encode_seconds,
                            "throughput/encode_tokens_per_second": total_tokens / max(encode_seconds, 1e-9)})
        mlflow.log_artifacts(str(report_dir), "report")
        mlflow.log_artifact(str(tok_dir / "spm.model"), "tokenizer")


if __name__ == "__main__":
    stage.run(main)
