"""Seeded train/dev/test splits: stratified, predefined or grouped, with a leakage guard.

Stratified splits are allocated per class by hand rather than with two calls
of sklearn's ``train_test_split``: chaining two splits compounds their rounding,
while allocating each class's counts at once keeps every class within one
document of its exact share in every split and every split total within one of
its share of the dataset (controlled rounding). Grouped splits use sklearn's
``StratifiedGroupKFold``.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reprotext.config import SplitConfig
from reprotext.data.normalize import SPLIT_ORDER, fingerprints, leak_keys
from reprotext.errors import DataError

SPLITS = tuple(SPLIT_ORDER)
MAX_GROUP_FOLDS = 20


@dataclass(frozen=True)
class SplitResult:
    """The splits of one dataset (``text``, ``label``) and the rows the leak guard removed from each."""

    parts: dict[str, pd.DataFrame]
    leaks_removed: dict[str, int]


@dataclass(frozen=True)
class SplitPlan:
    """Where each row of a dataset goes: ``part`` (N,) int8 indexes SPLITS, -1 = removed by the leak guard."""

    part: np.ndarray
    leaks_removed: dict[str, int]


def split_frame(frame: pd.DataFrame, cfg: SplitConfig, where: str) -> SplitResult:
    """Split a prepared frame as ``cfg`` says; a ``group`` column keeps each group inside one split.

    A normalised text (compared case- and width-insensitively) in two splits
    keeps only its copy in the earliest of train, dev, test: the others are
    removed and counted, so dev and test never hold a text seen in training.
    """
    check_prepared(frame.columns, where)
    plan = plan_split(frame.drop(columns="text"), fingerprints(leak_keys(frame["text"])), cfg, where)
    parts = {name: frame.loc[plan.part == i, ["text", "label"]].reset_index(drop=True) for i, name in enumerate(SPLITS)}
    return SplitResult(parts, plan.leaks_removed)


def plan_split(rows: pd.DataFrame, leak_prints: np.ndarray, cfg: SplitConfig, where: str) -> SplitPlan:
    """The split of a dataset from what it needs of each row, not the text: :func:`split_frame` without the copying.

    Args:
        rows: ``label`` (+ ``split``, ``group`` when the data has them), one row per document, in file order.
        leak_prints: (N, 2) fingerprints of the texts' leak keys (:func:`~reprotext.data.normalize.leak_keys`).
    """
    labels = rows["label"].to_numpy(dtype=object)
    groups = rows["group"].to_numpy(dtype=object) if "group" in rows.columns else None
    ratios = np.array([cfg.train, cfg.dev, cfg.test])
    if cfg.method == "stratified":
        _check_class_sizes(rows["label"], len(SPLITS), where)
        part = assign(labels, groups, ratios, cfg.seed, where)
    else:
        part = _predefined(rows, groups, ratios, cfg.seed, where)
    part, leaks = remove_leak_prints(leak_prints, part)
    for i, (name, ratio) in enumerate(zip(SPLITS, ratios)):
        if not (part == i).any():
            raise DataError(f"{where}: the {name} split is empty ({len(rows)} documents, split.method={cfg.method}, "
                            f"split.{name}={ratio:g}); add documents or raise split.{name}")
    return SplitPlan(part, leaks)


def assign(labels: np.ndarray, groups: np.ndarray | None, ratios: np.ndarray, seed: int, where: str) -> np.ndarray:
    """For each row, the index of its part (0..len(ratios)-1): stratified by label, and by group when given."""
    if groups is None:
        return _assign_stratified(labels, ratios, seed)
    return _assign_grouped(labels, groups, ratios, seed, where)


def allocate(counts: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """Per-class part sizes: (C, S) ints, each cell the floor or ceiling of ``counts * ratios``.

    Rows sum to ``counts``; columns sum to the dataset's rounded part sizes.
    Each class's leftover units go to the parts still furthest below their
    total (Ryser's greedy construction of a 0-1 matrix with given margins,
    which succeeds here for two or three parts), ties to the largest remainder.
    """
    exact = np.round(counts[:, None] * ratios[None, :], 9)  # (C, S); rounding absorbs 0.7*10 = 7.000000000000001
    alloc = np.floor(exact).astype(np.int64)
    demand = _largest_remainder(int(counts.sum()), ratios) - alloc.sum(axis=0)  # (S,)
    frac = exact - alloc
    extras = counts - alloc.sum(axis=1)  # (C,) in 0..S-1
    for c in np.argsort(-extras, kind="stable"):
        if extras[c] == 0:
            break
        take = np.lexsort((-frac[c], -demand))[: extras[c]]
        alloc[c, take] += 1
        demand[take] -= 1
    return alloc


def _largest_remainder(n: int, ratios: np.ndarray) -> np.ndarray:
    """``n`` split into integer parts proportional to ``ratios`` (Hamilton's method; ties to the earlier part)."""
    exact = np.round(n * ratios, 9)
    sizes = np.floor(exact).astype(np.int64)
    sizes[np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]] += 1
    return sizes


def _assign_stratified(labels: np.ndarray, ratios: np.ndarray, seed: int) -> np.ndarray:
    codes, classes = pd.factorize(labels, sort=True)
    alloc = allocate(np.bincount(codes, minlength=len(classes)), ratios)
    # Rows in a seeded random order, grouped by class; a row's rank within its
    # class decides its part: the first alloc[c, 0] go to part 0, and so on.
    order = np.random.default_rng(seed).permutation(len(codes))
    order = order[np.argsort(codes[order], kind="stable")]
    cls = codes[order]
    starts = np.searchsorted(cls, np.arange(len(classes)))
    rank = np.arange(len(cls)) - starts[cls]
    part = np.empty(len(codes), dtype=np.int8)
    part[order] = (rank[:, None] >= np.cumsum(alloc, axis=1)[cls]).sum(axis=1)  # (N, S) -> (N,)
    return part


def _fold_counts(ratios: np.ndarray, where: str) -> np.ndarray:
    """How many of k equal folds each part gets, k <= MAX_GROUP_FOLDS chosen to match ``ratios`` best."""
    fits = [(float(np.abs(_largest_remainder(k, ratios) / k - ratios).max().round(9)), k)
            for k in range(len(ratios), MAX_GROUP_FOLDS + 1) if (_largest_remainder(k, ratios) > 0).all()]
    if not fits:
        raise DataError(f"{where}: a grouped split is made of at most {MAX_GROUP_FOLDS} folds, so every ratio must be "
                        f"at least 1/{MAX_GROUP_FOLDS}; got {'/'.join(f'{r:g}' for r in ratios)}: raise the small ones")
    return _largest_remainder(min(fits)[1], ratios)


def _assign_grouped(labels: np.ndarray, groups: np.ndarray, ratios: np.ndarray, seed: int, where: str) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    counts = _fold_counts(ratios, where)
    k = int(counts.sum())
    n_groups = len(pd.unique(groups))
    if n_groups < k:
        raise DataError(f"{where}: only {n_groups} distinct groups in column 'group' (prepare.group_column); a grouped "
                        f"split at ratios {'/'.join(f'{r:g}' for r in ratios)} needs at least {k}: add groups or unset "
                        "prepare.group_column")
    fold = np.empty(len(labels), dtype=np.int64)
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings(action="ignore", category=UserWarning):  # "least populated class" under k
        for i, (_, idx) in enumerate(folds.split(np.zeros(len(labels)), labels, groups)):
            fold[idx] = i
    return np.repeat(np.arange(len(counts), dtype=np.int8), counts)[fold]


def _predefined(frame: pd.DataFrame, groups: np.ndarray | None, ratios: np.ndarray, seed: int,
                where: str) -> np.ndarray:
    """The prepared ``split`` column; when it has no dev rows, dev is carved from train (stratified)."""
    if "split" not in frame.columns:
        raise DataError(f"{where}: split.method is 'predefined' but the prepared data has no split column; set "
                        "prepare.split_column to the file's split column or use split.method: stratified")
    codes = frame["split"].map(SPLIT_ORDER)
    if codes.isna().any():
        bad = frame["split"][codes.isna()].iloc[0]
        raise DataError(f"{where}: split value {bad!r} is not one of {', '.join(SPLITS)}; rerun the prepare stage")
    given = codes.to_numpy(dtype=np.int8)
    for name in ("train", "test"):
        if not (given == SPLIT_ORDER[name]).any():
            raise DataError(f"{where}: the predefined split has no {name} rows; fix the split column or use "
                            "split.method: stratified")
    if groups is not None:
        _check_groups_in_one_split(groups, given, where)
    if (given == SPLIT_ORDER["dev"]).any():
        return given
    # dev / (train + dev) of the training rows; a class with one training row keeps it in train.
    train = given == SPLIT_ORDER["train"]
    labels = frame["label"].to_numpy(dtype=object)
    counts = pd.Series(labels[train]).value_counts()
    carve = train & ~pd.Series(labels).isin(counts[counts < 2].index).to_numpy()
    part = given.copy()
    part[carve] = assign(labels[carve], None if groups is None else groups[carve], ratios[:2] / ratios[:2].sum(),
                         seed, where)
    return part


def _check_groups_in_one_split(groups: np.ndarray, given: np.ndarray, where: str) -> None:
    spread = pd.Series(given).groupby(groups).nunique()
    if (spread > 1).any():
        group = spread[spread > 1].index[0]
        raise DataError(f"{where}: group {group!r} has rows in several splits of the predefined split column "
                        f"({int((spread > 1).sum())} such groups); fix the split column or unset prepare.group_column")


def remove_leaks(texts: pd.Series, part: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Mark (-1) every row whose text also sits in an earlier split; count them per split."""
    return remove_leak_prints(fingerprints(leak_keys(texts)), part)


def remove_leak_prints(prints: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """:func:`remove_leaks` from the (N, 2) fingerprints of the texts' leak keys."""
    shared = pd.DataFrame(prints).duplicated(keep=False).to_numpy()
    removed = dict.fromkeys(SPLITS, 0)
    if not shared.any():
        return part, removed
    rows = np.flatnonzero(shared)
    first = pd.Series(part[rows]).groupby([prints[rows, 0], prints[rows, 1]]).transform("min").to_numpy()
    leaked = rows[part[rows] > first]
    for i, name in enumerate(SPLITS):
        removed[name] = int((part[leaked] == i).sum())
    part = part.copy()
    part[leaked] = -1
    return part, removed


def check_prepared(columns: Iterable[str], where: str) -> None:
    """Refuse prepared data without a ``text`` and a ``label`` column."""
    columns = list(columns)
    missing = [c for c in ("text", "label") if c not in columns]
    if missing:
        raise DataError(f"{where}: column {missing[0]!r} missing (columns: {', '.join(map(str, columns))}); "
                        "rerun the prepare stage")


def _check_class_sizes(labels: pd.Series, parts: int, where: str) -> None:
    counts = labels.value_counts()
    small = counts[counts < parts].sort_index()
    if len(small):
        name, n = small.index[0], int(small.iloc[0])
        more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
        raise DataError(f"{where}: class {name!r}{more} has {n} document(s); a stratified train/dev/test split needs "
                        f"at least {parts} per class: add documents, drop the class, or use split.method: predefined")
