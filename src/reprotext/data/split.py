"""Stratified, seeded train/dev/test splits with a leakage guard."""
from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from reprotext.errors import DataError

SPLITS = ("train", "dev", "test")


def stratified_split(frame: pd.DataFrame, train: float, dev: float, test: float, seed: int,
                     where: str = "data") -> dict[str, pd.DataFrame]:
    """Split by label into train/dev/test with the given ratios (each class in proportion)."""
    counts = frame["label"].value_counts()
    too_small = counts[counts < 3]
    if len(too_small):
        name, n = too_small.index[0], int(too_small.iloc[0])
        raise DataError(f"{where}: class {name!r} has {n} document(s); stratifying into train/dev/test needs at least 3 "
                        "per class: add documents or drop the class")
    rest, test_df = train_test_split(frame, test_size=test, stratify=frame["label"], random_state=seed)
    train_df, dev_df = train_test_split(rest, test_size=dev / (train + dev), stratify=rest["label"], random_state=seed)
    parts = {"train": train_df, "dev": dev_df, "test": test_df}
    check_no_leak(parts, where)
    return {k: v.sort_index().reset_index(drop=True)[["text", "label"]] for k, v in parts.items()}


def check_no_leak(parts: dict[str, pd.DataFrame], where: str) -> None:
    """Fail when a text appears in two splits."""
    seen: dict[str, str] = {}
    for name, part in parts.items():
        for text in part["text"]:
            other = seen.setdefault(text, name)
            if other != name:
                raise DataError(f"{where}: a text appears in both {other} and {name}: {text[:60]!r}...")
