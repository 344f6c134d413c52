"""Text normalisation and dataset cleaning, vectorised over pandas' Arrow-backed strings."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

from reprotext.errors import DataError

UnicodeForm = Literal["NFC", "NFKC"]

# Exactly the characters for which Python's str.isspace() is true: ASCII
# whitespace, the C0 separators \x1c-\x1f, NEL and the Unicode Z categories
# (no-break, ideographic, line and paragraph separators). Spelled out rather
# than \s or \p{Z} so the pattern means the same in RE2 (Arrow) and Python re.
WHITESPACE = "[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
# C0/C1 control characters that are not whitespace (those fold to a space instead).
CONTROL = "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]"
# Which split keeps a text found in several: the earliest in this order.
SPLIT_ORDER = {"train": 0, "dev": 1, "test": 2}


def normalize_texts(texts: pd.Series, form: UnicodeForm = "NFC", lowercase: bool = False) -> pd.Series:
    """Unicode ``form``, control characters removed, whitespace runs folded to one space, stripped.

    Missing values become empty strings. Works on any script: only whitespace
    and control characters are touched, never letters, marks or joiners.
    """
    out = texts.astype("str").fillna("").str.normalize(form)
    out = out.str.replace(CONTROL, "", regex=True).str.replace(WHITESPACE, " ", regex=True).str.strip(" ")
    return out.str.lower() if lowercase else out


def normalize_text(text: str, lowercase: bool = False, form: UnicodeForm = "NFC") -> str:
    """One text normalised exactly as :func:`normalize_texts` does it (for inference-time inputs)."""
    return str(normalize_texts(pd.Series([text], dtype="str"), form, lowercase).iloc[0])


def leak_keys(texts: pd.Series) -> pd.Series:
    """A comparison key for normalised texts: NFKC and lowercased, so case or width variants collide."""
    return texts.str.normalize("NFKC").str.lower()


@dataclass(frozen=True)
class CleanStats:
    """What cleaning one dataset did, for metrics and the data report."""

    rows_in: int
    short_dropped: int  # empty, or shorter than min_chars after normalisation
    duplicates_dropped: int
    label_conflicts: int  # dropped duplicates whose label differs from the kept copy's
    sampled_out: int  # removed by max_docs
    rows_kept: int
    classes: int

    def as_dict(self) -> dict[str, int]:
        """The stats as a flat dict of ints."""
        return asdict(self)


def clean(frame: pd.DataFrame, *, form: UnicodeForm, lowercase: bool, min_chars: int, where: str,
          label_column: str) -> tuple[pd.DataFrame, CleanStats]:
    """Normalise ``text`` and ``label``; drop short texts and exact duplicates; validate labels and classes.

    A duplicate keeps its copy in the earliest split (train, dev, test) when the
    frame has a ``split`` column, else its first row. The index (the row in the
    input file) is kept so errors can name rows.
    """
    rows_in = len(frame)
    text = normalize_texts(frame["text"], form, lowercase)
    label = normalize_texts(frame["label"], form)
    short = text.str.len() < min_chars
    unlabeled = ~short & (label == "")
    if unlabeled.any():
        first = int(unlabeled.idxmax()) + 1
        raise DataError(f"{where}: {int(unlabeled.sum())} row(s) have text but no label in column {label_column!r} "
                        f"(first: row {first}); fill in the labels or remove those rows")
    out = frame[~short].assign(text=text[~short], label=label[~short])
    dup = _duplicated(out)
    conflicts = _label_conflicts(out, dup)
    out = out[~dup]
    if out.empty:
        raise DataError(f"{where}: no documents left after cleaning ({rows_in} rows, {int(short.sum())} empty or "
                        f"shorter than prepare.min_chars={min_chars}); check prepare.text_column and the file")
    classes = out["label"].nunique()
    if classes < 2:
        only = out["label"].iloc[0]
        raise DataError(f"{where}: only one class ({only!r} in column {label_column!r}) after cleaning; "
                        "a classifier needs at least two: check prepare.label_column")
    stats = CleanStats(rows_in=rows_in, short_dropped=int(short.sum()), duplicates_dropped=int(dup.sum()),
                       label_conflicts=conflicts, sampled_out=0, rows_kept=len(out), classes=classes)
    return out, stats


def _duplicated(frame: pd.DataFrame) -> pd.Series:
    """Rows whose text appeared before (in split order, then row order)."""
    if "split" not in frame.columns:
        return frame["text"].duplicated(keep="first")
    ordered = frame.assign(_rank=frame["split"].map(SPLIT_ORDER)).sort_values("_rank", kind="stable")
    return ordered["text"].duplicated(keep="first").reindex(frame.index)


def _label_conflicts(frame: pd.DataFrame, dup: pd.Series) -> int:
    """How many dropped duplicates carry a label different from their kept copy."""
    if not dup.any():
        return 0
    kept = frame.loc[~dup & frame["text"].isin(frame.loc[dup, "text"])].set_index("text")["label"]
    dropped = frame.loc[dup]
    return int((dropped["text"].map(kept) != dropped["label"]).sum())


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
    return pd.concat([frame[frame["label"].isin(keep_whole)], sampled]).sort_index()
