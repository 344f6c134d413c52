"""Text normalisation and dataset cleaning."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

import pandas as pd

from reprotext.errors import DataError

_WS = re.compile(r"\s+")
# C0/C1 control characters other than whitespace, which _WS folds to spaces.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def normalize_text(text: str, lowercase: bool = False) -> str:
    """NFC, control characters removed, whitespace runs folded to one space, stripped."""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = _WS.sub(" ", text).strip()
    return text.lower() if lowercase else text


@dataclass(frozen=True)
class CleanStats:
    rows_in: int
    dropped_short: int
    dropped_duplicates: int
    rows_out: int
    classes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def clean(frame: pd.DataFrame, lowercase: bool, min_chars: int, where: str) -> tuple[pd.DataFrame, CleanStats]:
    """Normalise texts; drop texts shorter than ``min_chars`` and exact duplicates (first kept)."""
    rows_in = len(frame)
    out = frame.copy()
    out["text"] = [normalize_text(t, lowercase) for t in out["text"]]
    out["label"] = out["label"].map(lambda s: normalize_text(str(s)))
    short = out["text"].str.len() < min_chars
    out = out[~short]
    dup = out["text"].duplicated(keep="first")
    out = out[~dup].reset_index(drop=True)
    if out.empty:
        raise DataError(f"{where}: no documents left after cleaning ({rows_in} in, {int(short.sum())} empty or shorter "
                        f"than prepare.min_chars={min_chars}); check the text column")
    classes = out["label"].nunique()
    if classes < 2:
        raise DataError(f"{where}: only one class ({out['label'].iloc[0]!r}) after cleaning; a classifier needs at least two")
    return out, CleanStats(rows_in, int(short.sum()), int(dup.sum()), len(out), classes)


def stratified_sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows, each class keeping its share (at least one row), seeded."""
    if len(frame) <= n:
        return frame
    from sklearn.model_selection import train_test_split

    counts = frame["label"].value_counts()
    keep_whole = counts[counts < 2].index  # singletons cannot be stratified; keep them
    rest = frame[~frame["label"].isin(keep_whole)]
    take = max(n - (len(frame) - len(rest)), rest["label"].nunique())
    if take >= len(rest):
        return frame
    sampled, _ = train_test_split(rest, train_size=take, stratify=rest["label"], random_state=seed)
    return pd.concat([frame[frame["label"].isin(keep_whole)], sampled]).sort_index().reset_index(drop=True)
