"""The prepare stage's work: dataset specs in, clean Parquet files and their provenance out.

Every dataset is read twice in batches (:mod:`reprotext.data.sources`): the
first pass keeps per row only what de-duplication, the leak guard and sampling
need (128-bit fingerprints, label codes, split ranks), the second writes the
surviving rows batch by batch. Memory grows with the number of rows, by a few
dozen bytes each, not with the text.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotext.config import PrepareConfig
from reprotext.data.normalize import CleanScan, CleanStats, first_occurrences, fingerprints, leak_keys, normalize_texts
from reprotext.data.sources import (BATCH_ROWS, BUILTIN_PREFIX, UNLABELED_FORMATS, check_spec, iter_labeled,
                                    iter_unlabeled, spec_digest)
from reprotext.data.store import FrameWriter
from reprotext.errors import DataError

log = logging.getLogger(__name__)

ROLES = ("source", "target")


@dataclass(frozen=True)
class UnlabeledStats:
    """What cleaning the unlabeled corpus did."""

    rows_in: int
    short_dropped: int
    duplicates_dropped: int
    overlap_dropped: int  # equal (case-insensitively) to a labelled text: would leak dev/test into pretraining
    rows_kept: int

    def as_dict(self) -> dict[str, int]:
        """The stats as a flat dict of ints."""
        return asdict(self)


@dataclass
class Prepared:
    """What the prepare stage wrote: metadata of each dataset by role, and metrics."""

    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, int]] = field(default_factory=dict)


class LabeledPass:
    """One labelled dataset, scanned (pass one) and ready to yield its clean rows in batches (pass two)."""

    def __init__(self, spec: str, cfg: PrepareConfig, role: str, batch_rows: int = BATCH_ROWS):
        self.spec, self.cfg, self.role, self.batch_rows = spec, cfg, role, batch_rows
        label_column = "label" if spec.startswith(BUILTIN_PREFIX) else cfg.label_column
        self.scan = CleanScan(form=cfg.unicode_form, lowercase=cfg.lowercase, min_chars=cfg.min_chars,
                              where=f"{spec} (prepare.{role})", label_column=label_column)
        for batch in self._batches():
            self.scan.add(batch)
        stats = self.scan.finish()
        if cfg.max_docs is not None:
            sampled_out = self.scan.sample(cfg.max_docs, cfg.seed)
            stats = replace(stats, sampled_out=sampled_out, rows_kept=stats.rows_kept - sampled_out)
        self.stats = stats
        log.info("%s: %d rows in, %d empty/short, %d duplicates (%d with another label), %d sampled out, "
                 "%d kept, %d classes", role, stats.rows_in, stats.short_dropped, stats.duplicates_dropped,
                 stats.label_conflicts, stats.sampled_out, stats.rows_kept, stats.classes)

    def _batches(self) -> Iterator[pd.DataFrame]:
        return iter_labeled(self.spec, self.cfg, param=f"prepare.{self.role}", batch_rows=self.batch_rows)

    def frames(self) -> Iterator[pd.DataFrame]:
        """Pass two: ``text``, ``label`` (+ ``split``, ``group`` when the source has them), clean, in file order."""
        for batch in self._batches():
            yield self.scan.select(batch)


def prepare_dataset(spec: str, cfg: PrepareConfig, role: str) -> tuple[pd.DataFrame, CleanStats]:
    """Load ``spec``, clean it, and subsample to ``cfg.max_docs`` when set, in memory.

    Returns:
        ``text``, ``label`` (+ ``split``, ``group`` when the source has them), and the cleaning stats.
    """
    dataset = LabeledPass(spec, cfg, role)
    return pd.concat(list(dataset.frames())).reset_index(drop=True), dataset.stats


class UnlabeledPass:
    """The unlabeled corpus: normalised, de-duplicated, minus any text of the labelled datasets, in two passes."""

    def __init__(self, spec: str, cfg: PrepareConfig, labeled_leaks: np.ndarray, batch_rows: int = BATCH_ROWS):
        """Pass one. ``labeled_leaks``: (K, 2) fingerprints of the labelled texts' leak keys."""
        self.spec, self.cfg, self.batch_rows = spec, cfg, batch_rows
        shorts, prints, leaks = [], [], []
        for raw in iter_unlabeled(spec, cfg, batch_rows):
            text = self._normalized(raw)
            short = (text.str.len() < cfg.min_chars).to_numpy()
            shorts.append(short)
            prints.append(fingerprints(text[~short]))
            leaks.append(fingerprints(leak_keys(text[~short])))
        short = np.concatenate(shorts)
        rows = np.flatnonzero(~short)  # the survivors of each step, as rows of the file
        first = first_occurrences(np.concatenate(prints))
        dup = int((~first).sum())
        rows, leak = rows[first], np.concatenate(leaks)[first]
        overlap = pd.MultiIndex.from_arrays(leak.T).isin(pd.MultiIndex.from_arrays(labeled_leaks.T))
        rows = rows[~overlap]
        if len(rows) == 0:
            raise DataError(f"{spec} (prepare.unlabeled): no documents left after cleaning ({len(short)} rows, "
                            f"{int(short.sum())} empty or shorter than prepare.min_chars={cfg.min_chars}, "
                            f"{int(overlap.sum())} equal to labelled texts); check the file or unset prepare.unlabeled")
        self.keep = np.zeros(len(short), dtype=bool)
        self.keep[rows] = True
        self.stats = UnlabeledStats(len(short), int(short.sum()), dup, int(overlap.sum()), len(rows))
        log.info("unlabeled: %d rows in, %d empty/short, %d duplicates, %d equal to labelled texts, %d kept",
                 *asdict(self.stats).values())

    def _normalized(self, raw: pd.Series) -> pd.Series:
        return normalize_texts(raw, self.cfg.unicode_form, self.cfg.lowercase)

    def frames(self) -> Iterator[pd.DataFrame]:
        """Pass two: the kept texts as frames with one ``text`` column, in file order."""
        start = 0
        for raw in iter_unlabeled(self.spec, self.cfg, self.batch_rows):
            keep = self.keep[start:start + len(raw)]
            start += len(raw)
            yield pd.DataFrame({"text": self._normalized(raw)[keep]})


def prepare_unlabeled(spec: str | None, cfg: PrepareConfig,
                      labeled: list[pd.Series]) -> tuple[pd.DataFrame, UnlabeledStats]:
    """The unlabeled corpus normalised and deduplicated, minus any text of the ``labeled`` datasets, in memory.

    With no ``spec`` it is an empty frame with a ``text`` column, so the stage's
    declared output always exists.
    """
    if spec is None:
        return _no_unlabeled(), UnlabeledStats(0, 0, 0, 0, 0)
    leaks = fingerprints(leak_keys(pd.concat(labeled, ignore_index=True)))
    corpus = UnlabeledPass(spec, cfg, leaks)
    return pd.concat(list(corpus.frames())).reset_index(drop=True), corpus.stats


def _no_unlabeled() -> pd.DataFrame:
    return pd.DataFrame({"text": pd.Series([], dtype="str")})


def prepare_all(cfg: PrepareConfig, outs: Mapping[str, Path], batch_rows: int = BATCH_ROWS) -> Prepared:
    """Clean every dataset of the prepare stage into ``outs`` (role -> Parquet path), batch by batch.

    All specs are checked before anything is read, so a typo in the target
    fails in a second, not after the source has been processed; and every
    dataset is scanned (pass one, where bad data is found) before any file is
    written. Each file records how it was made in its metadata.

    Args:
        outs: a path for ``source``, ``target`` and ``unlabeled`` (an empty ``text`` table when
            ``cfg.unlabeled`` is null). The caller moves them into place: write to temporary paths.
    """
    for role, spec in zip(ROLES, (cfg.source, cfg.target)):
        check_spec(spec, f"prepare.{role}")
    if cfg.unlabeled is not None:
        check_spec(cfg.unlabeled, "prepare.unlabeled", UNLABELED_FORMATS)
    out = Prepared()
    params = cfg.model_dump()
    datasets = {role: LabeledPass(spec, cfg, role, batch_rows) for role, spec in zip(ROLES, (cfg.source, cfg.target))}
    corpus = None
    if cfg.unlabeled is not None:
        leaks = np.concatenate([d.scan.leak_prints() for d in datasets.values()])
        corpus = UnlabeledPass(cfg.unlabeled, cfg, leaks, batch_rows)
    for role, dataset in datasets.items():
        out.metrics[role] = dataset.stats.as_dict()
        out.meta[role] = {"stage": "prepare", "role": role, "spec": dataset.spec,
                          "input_sha256": spec_digest(dataset.spec), "params": params, "stats": out.metrics[role]}
        _write(dataset.frames(), outs[role], out.meta[role])
    stats = corpus.stats if corpus else UnlabeledStats(0, 0, 0, 0, 0)
    out.metrics["unlabeled"] = stats.as_dict()
    out.meta["unlabeled"] = {"stage": "prepare", "role": "unlabeled", "spec": cfg.unlabeled,
                             "input_sha256": spec_digest(cfg.unlabeled) if cfg.unlabeled else None,
                             "params": params, "stats": out.metrics["unlabeled"]}
    _write(corpus.frames() if corpus else iter([_no_unlabeled()]), outs["unlabeled"], out.meta["unlabeled"])
    return out


def _write(frames: Iterator[pd.DataFrame], path: Path, meta: dict[str, Any]) -> None:
    with FrameWriter(path, meta) as writer:
        for frame in frames:
            writer.write(frame.reset_index(drop=True))
