"""The extra tasks of multitask training: a user's labelled datasets, read, cleaned and split as prepare and
split treat the source and target tasks."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reprotext.config import ExtraTaskOptions, PrepareConfig, SplitConfig
from reprotext.data.normalize import clean, stratified_sample
from reprotext.data.sources import BUILTIN_PREFIX, load_labeled
from reprotext.data.split import SPLITS, split_frame
from reprotext.data.store import write_frame
from reprotext.tokenizer import Tokenizer
from reprotext.training.data import TokenDataset, encode_labels


@dataclass
class ExtraTask:
    """An extra task's splits (``text``, ``label``) and its label list (the sorted training labels)."""

    name: str
    parts: dict[str, pd.DataFrame]
    labels: list[str]

    def datasets(self, tok: Tokenizer, max_len: int, threads: int = 1) -> tuple[TokenDataset, TokenDataset]:
        """Train and dev as token datasets (test stays text: only the evaluate stage reads it)."""
        out = []
        for split in ("train", "dev"):
            frame = self.parts[split]
            ids = encode_labels(frame["label"].tolist(), self.labels, f"multitask extra task {self.name} ({split})")
            out.append(TokenDataset(tok.encode_array(frame["text"].tolist(), threads=threads), ids, max_len))
        return out[0], out[1]

    def save(self, directory: Path, meta: dict) -> None:
        """``<directory>/<name>/{train,dev,test}.parquet``."""
        (directory / self.name).mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            write_frame(self.parts[split], directory / self.name / f"{split}.parquet", {**meta, "split": split})


def prepare_extra(task: ExtraTaskOptions, prep: PrepareConfig, split: SplitConfig) -> ExtraTask:
    """Read ``task.path`` with prepare's settings and its own columns, clean it, split it stratified.

    Raises DataError (naming the setting) for a missing file or column, a single class, or a split left empty.
    """
    param = f"multitask.extra_tasks[{task.name}].path"
    cfg = prep.model_copy(update={"text_column": task.text_column, "label_column": task.label_column,
                                  "split_column": None, "group_column": None})
    frame = load_labeled(task.path, cfg, param=param)
    label_column = "label" if task.path.startswith(BUILTIN_PREFIX) else task.label_column
    frame, _ = clean(frame, form=cfg.unicode_form, lowercase=cfg.lowercase, min_chars=cfg.min_chars,
                     where=f"{task.path} ({param})", label_column=label_column)
    if cfg.max_docs is not None:
        frame = stratified_sample(frame, cfg.max_docs, cfg.seed)
    frame = frame.drop(columns=[c for c in ("split", "group") if c in frame.columns]).reset_index(drop=True)
    result = split_frame(frame, split.model_copy(update={"method": "stratified"}), where=f"{task.path} ({param})")
    return ExtraTask(task.name, result.parts, sorted(set(result.parts["train"]["label"])))
