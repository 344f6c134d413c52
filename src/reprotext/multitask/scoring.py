"""The multitask model's test scores: every task's head on its own test split, and the single-task baseline's on the
target task. The evaluate stage calls this; it is the only reader of the test splits."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from reprotext.config import EvaluateConfig
from reprotext.data.store import read_frame
from reprotext.errors import ArtifactError, DataError
from reprotext.evaluation import full_metrics, predict_tokens
from reprotext.multitask.model import DISABLED, load_multitask
from reprotext.tokenizer import TokenArray, Tokenizer


def score_test(multitask: str | Path | None, data: str | Path | None, metrics: str | Path | None,
               splits: str | Path, cfg: EvaluateConfig, tok: Tokenizer) -> dict | None:
    """Score the multitask stage's models on every task's test split.

    `multitask` is the stage's model directory, `data` its extra tasks' splits, `metrics` its dev metrics and
    `splits` the split stage's output (the source and target tasks' splits). Returns None when no multitask
    directory was passed or exists, or the stage was switched off; else the scores (`test`), the model directory,
    its task labels and a one-row-per-task input example for the exported model.
    """
    if not multitask or (Path(multitask) / DISABLED).is_file():
        return None
    if not Path(multitask).exists():  # a stage run outside DVC (bench/run.py runs the stages it times)
        print(f"note: no multitask model at {multitask}; the report leaves the multitask comparison out "
              "(`dvc repro multitask` makes one)")
        return None
    if not metrics or not data:
        raise ArtifactError("--multitask needs --multitask-data and --multitask-metrics (the stage's other outputs)")
    model_dir, single_dir = Path(multitask) / "model", Path(multitask) / "single_task"
    model, _ = load_multitask(model_dir, tok.sha256)
    single = load_multitask(single_dir, tok.sha256)[0] if single_dir.is_dir() else None

    def test_scores(task_model, tokens: TokenArray, actual: list[str]) -> dict:
        labels = list(task_model.config.labels)
        proba = predict_tokens(task_model, tokens, cfg.batch_size)
        return {"test": full_metrics(actual, [labels[i] for i in proba.argmax(1)], labels, proba,
                                     cfg.calibration_bins), "test_docs": len(actual)}

    out, examples = {"tasks": {}}, []
    for name in model.tasks:
        split_dir = Path(splits) / name if name in ("source", "target") else Path(data) / name
        path = split_dir / "test.parquet"
        if not path.is_file():
            raise DataError(f"{path}: split not found; run `dvc repro split multitask` first")
        test = read_frame(path, columns=["text", "label"])
        test["label"] = test["label"].astype(str)
        tokens = TokenArray.from_lists(tok.encode(test["text"].tolist(), threads=2))
        out["tasks"][name] = test_scores(model.task_model(name), tokens, test["label"].tolist())
        if name == "target" and single is not None:
            out["single_task"] = test_scores(single.task_model(name), tokens, test["label"].tolist())
        examples += [(t[:300], name) for t in test["text"].head(1)]
    return {"test": out, "model_dir": model_dir, "task_labels": model.task_labels,
            "example": pd.DataFrame(examples, columns=["text", "task"])}
