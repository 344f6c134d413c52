"""tokenize: sentencepiece BPE trained on the train splits (+ unlabeled text); train, dev and unlabeled encoded.

The test splits are encoded by evaluate, the only stage that opens them.
"""
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from reprotext import stage
from reprotext.config import TokenizeConfig, load_section
from reprotext.data.sources import BATCH_ROWS
from reprotext.data.store import iter_frames, read_schema
from reprotext.errors import ArtifactError, DataError
from reprotext.io import atomic_dir, read_json, write_json
from reprotext.token_report import piece_counts, segmentations, split_stats, write_report
from reprotext.tokenizer import META_FILE, TokenArray, Tokenizer, train_tokenizer
from reprotext.tracking import flatten, stage_run

ROLES, SPLITS = ("source", "target"), ("train", "dev")
UNLABELED = "unlabeled"


def _check(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: not found; run `dvc repro` for the stage that writes it (split or prepare)")
    try:
        names = read_schema(path).names
    except ArtifactError as exc:
        raise DataError(f"{path}: cannot read a `text` column ({exc.__cause__}); "
                        "rerun the stage that wrote it") from exc
    if "text" not in names:
        raise DataError(f"{path}: cannot read a `text` column (columns: {', '.join(names)}); "
                        "rerun the stage that wrote it")


def _batches(path: Path) -> Iterator[list[str]]:
    """The ``text`` column of a Parquet file, BATCH_ROWS texts at a time: no split is ever held whole."""
    for frame in iter_frames(path, BATCH_ROWS, ["text"]):
        yield frame["text"].tolist()


def _texts(*paths: Path) -> Iterator[str]:
    for path in paths:
        for batch in _batches(path):
            yield from batch


class _Encoded:
    """One split encoded batch by batch: what its statistics need, gathered as the ids go to disk."""

    def __init__(self, tok: Tokenizer, path: Path, threads: int):
        self.tok, self.path, self.threads = tok, path, threads
        self.chars, self.seconds = 0, 0.0
        self.counts = np.zeros(tok.vocab_size, dtype=np.int64)

    def __iter__(self) -> Iterator[TokenArray]:
        for batch in _batches(self.path):
            self.chars += sum(map(len, batch))
            start = time.perf_counter()
            parts = list(self.tok.encode_batches([batch], self.threads))
            self.seconds += time.perf_counter() - start
            for arr in parts:
                self.counts += piece_counts(arr, self.tok.vocab_size)
                yield arr


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
    paths = {f"{r}/{s}": Path(args.splits) / r / f"{s}.parquet" for r in ROLES for s in SPLITS}
    if args.unlabeled:
        paths[UNLABELED] = Path(args.unlabeled)
    for path in paths.values():
        _check(path)
    train_sets = [name for name in paths if name.endswith("/train") or name == UNLABELED]
    with stage_run("tokenize", cfg.model_dump()) as mlflow, atomic_dir(args.tokenizer) as tok_dir, \
            atomic_dir(args.tokens) as tokens_dir, atomic_dir(args.report) as report_dir:
        start = time.perf_counter()
        tok = train_tokenizer(_texts(*(paths[n] for n in train_sets)), cfg, tok_dir)
        train_seconds = time.perf_counter() - start
        byte_mask = tok.byte_mask()
        stats, lengths, train_counts = {}, {}, np.zeros(tok.vocab_size, dtype=np.int64)
        encode_seconds = 0.0
        for name, path in paths.items():
            encoded = _Encoded(tok, path, cfg.threads)
            arr = TokenArray.write(tokens_dir / name, encoded, tok.sha256)
            encode_seconds += encoded.seconds
            stats[name] = split_stats(arr, encoded.chars, encoded.counts, byte_mask)
            lengths[name] = arr.lengths()
            if name in train_sets:
                train_counts += encoded.counts
        training = read_json(tok_dir / META_FILE)["training"]
        examples = {f"{r}/dev": segmentations(tok, _texts(paths[f"{r}/dev"])) for r in ROLES}
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
