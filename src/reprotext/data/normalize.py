"""Text normalisation and dataset cleaning, vectorised over pandas' Arrow-backed strings."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
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
# Keys (16 bytes each) of the two SipHashes that make a text's 128-bit fingerprint.
HASH_KEYS = ("reprotext-text-0", "reprotext-text-1")


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


def fingerprints(texts: pd.Series) -> np.ndarray:
    """(N, 2) uint64: a 128-bit fingerprint of each text (two keyed SipHashes), to find equal texts without them.

    Two different texts share one with probability about n^2 / 2^129: nil for any corpus.
    """
    if len(texts) == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    return np.stack([pd.util.hash_pandas_object(texts, index=False, hash_key=key).to_numpy() for key in HASH_KEYS],
                    axis=1)


def first_occurrences(prints: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each row's fingerprint appeared in no earlier row."""
    return ~pd.DataFrame(prints).duplicated(keep="first").to_numpy()


class CleanScan:
    """Cleaning a dataset in two passes over its batches, holding per row only fingerprints and codes, never text.

    Pass one (:meth:`add` each batch, then :meth:`finish`) decides which rows survive: normalised ``text``
    and ``label``, short texts and exact duplicates dropped (a duplicate keeps its copy in the earliest split,
    train, dev, test, when there is a ``split`` column, else its first row), labels and classes validated.
    Pass two (:meth:`select` the same batches, in the same order) yields the surviving rows, normalised.
    """

    def __init__(self, *, form: UnicodeForm, lowercase: bool, min_chars: int, where: str, label_column: str):
        self.form, self.lowercase, self.min_chars = form, lowercase, min_chars
        self.where, self.label_column = where, label_column
        self._short: list[np.ndarray] = []
        self._prints: list[np.ndarray] = []  # (n, 2) per batch, of the text
        self._leaks: list[np.ndarray] = []  # (n, 2) per batch, of the leak key
        self._labels: list[np.ndarray] = []  # codes into self._label_names
        self._label_ids: dict[str, int] = {}
        self._ranks: list[np.ndarray] = []  # split order, when the data has a split column
        self._unlabeled = 0
        self._first_unlabeled: object = None
        self.keep: np.ndarray | None = None  # (N,) bool once finished
        self._cursor = 0

    def _normalized(self, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        return normalize_texts(frame["text"], self.form, self.lowercase), normalize_texts(frame["label"], self.form)

    def add(self, frame: pd.DataFrame) -> None:
        """Record one batch (``text``, ``label``, optional ``split``) of pass one."""
        text, label = self._normalized(frame)
        short = (text.str.len() < self.min_chars).to_numpy()
        unlabeled = ~short & (label == "").to_numpy()
        if unlabeled.any():
            if self._first_unlabeled is None:
                self._first_unlabeled = frame.index[int(unlabeled.argmax())]
            self._unlabeled += int(unlabeled.sum())
        self._short.append(short)
        self._prints.append(fingerprints(text))
        self._leaks.append(fingerprints(leak_keys(text)))
        codes, names = pd.factorize(label)
        ids = np.array([self._label_ids.setdefault(name, len(self._label_ids)) for name in names], dtype=np.int32)
        self._labels.append(ids[codes] if len(codes) else np.zeros(0, dtype=np.int32))
        if "split" in frame.columns:
            self._ranks.append(frame["split"].map(SPLIT_ORDER).to_numpy(dtype=np.float64))

    def finish(self) -> CleanStats:
        """Decide which rows survive; raise on labels missing, nothing left, or fewer than two classes."""
        if self._unlabeled:
            raise DataError(f"{self.where}: {self._unlabeled} row(s) have text but no label in column "
                            f"{self.label_column!r} (first: row {int(self._first_unlabeled) + 1}); fill in the labels "
                            "or remove those rows")
        short = np.concatenate(self._short)
        prints, labels = np.concatenate(self._prints), np.concatenate(self._labels)
        # Rows in the order that decides which copy of a text stays: split order, then row order.
        rows = np.flatnonzero(~short)
        if self._ranks:
            rows = rows[np.argsort(np.concatenate(self._ranks)[rows], kind="stable")]
        first = first_occurrences(prints[rows])
        dup = np.zeros(len(short), dtype=bool)
        dup[rows[~first]] = True
        # The label of the kept copy of each row's text, for the dropped duplicates that disagree with it.
        kept_label = pd.Series(labels[rows]).groupby([prints[rows, 0], prints[rows, 1]]).transform("first").to_numpy()
        conflicts = int((labels[rows][~first] != kept_label[~first]).sum())
        self.keep = ~short & ~dup
        rows_in = len(short)
        if not self.keep.any():
            raise DataError(f"{self.where}: no documents left after cleaning ({rows_in} rows, {int(short.sum())} empty "
                            f"or shorter than prepare.min_chars={self.min_chars}); check prepare.text_column and the "
                            "file")
        classes = len(np.unique(labels[self.keep]))
        if classes < 2:
            only = self.label_names()[labels[self.keep][0]]
            raise DataError(f"{self.where}: only one class ({only!r} in column {self.label_column!r}) after cleaning; "
                            "a classifier needs at least two: check prepare.label_column")
        self._labels = [labels]
        return CleanStats(rows_in=rows_in, short_dropped=int(short.sum()), duplicates_dropped=int(dup.sum()),
                          label_conflicts=conflicts, sampled_out=0, rows_kept=int(self.keep.sum()), classes=classes)

    def label_names(self) -> np.ndarray:
        """The labels seen, indexed by code (object array)."""
        return np.array(list(self._label_ids), dtype=object)

    def sample(self, n: int, seed: int) -> int:
        """Keep at most ``n`` of the surviving rows (:func:`stratified_sample`); returns how many were sampled out."""
        assert self.keep is not None, "finish() first"
        rows = np.flatnonzero(self.keep)
        labels = pd.DataFrame({"label": self.label_names()[self._labels[0][rows]]}, index=rows)
        sampled = stratified_sample(labels, n, seed).index.to_numpy()
        self.keep = np.zeros_like(self.keep)
        self.keep[sampled] = True
        return len(rows) - len(sampled)

    def leak_prints(self) -> np.ndarray:
        """(K, 2) fingerprints of the leak keys of the surviving rows."""
        assert self.keep is not None, "finish() first"
        return np.concatenate(self._leaks)[self.keep]

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Pass two: the surviving rows of the next batch, ``text`` and ``label`` normalised, index kept."""
        assert self.keep is not None, "finish() first"
        keep = self.keep[self._cursor:self._cursor + len(frame)]
        self._cursor += len(frame)
        text, label = self._normalized(frame)
        return frame[keep].assign(text=text[keep], label=label[keep])


def clean(frame: pd.DataFrame, *, form: UnicodeForm, lowercase: bool, min_chars: int, where: str,
          label_column: str) -> tuple[pd.DataFrame, CleanStats]:
    """Normalise ``text`` and ``label``; drop short texts and exact duplicates; validate labels and classes.

    A duplicate keeps its copy in the earliest split (train, dev, test) when the
    frame has a ``split`` column, else its first row. The index (the row in the
    input file) is kept so errors can name rows. The one-batch case of :class:`CleanScan`.
    """
    scan = CleanScan(form=form, lowercase=lowercase, min_chars=min_chars, where=where, label_column=label_column)
    scan.add(frame)
    stats = scan.finish()
    return scan.select(frame), stats


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
