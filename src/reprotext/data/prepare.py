"""The prepare stage's work: dataset specs in, clean frames and their provenance out."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from reprotext.config import PrepareConfig
from reprotext.data.normalize import CleanStats, clean, leak_keys, normalize_texts, stratified_sample
from reprotext.data.sources import (BUILTIN_PREFIX, UNLABELED_FORMATS, check_spec, load_labeled, load_unlabeled,
                                    spec_digest)
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
    """The prepare stage's outputs before they are written: frames by role, their metadata, metrics."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, int]] = field(default_factory=dict)


def prepare_dataset(spec: str, cfg: PrepareConfig, role: str) -> tuple[pd.DataFrame, CleanStats]:
    """Load ``spec``, clean it, and subsample to ``cfg.max_docs`` when set.

    Returns:
        ``text``, ``label`` (+ ``split``, ``group`` when the source has them), and the cleaning stats.
    """
    frame = load_labeled(spec, cfg, param=f"prepare.{role}")
    label_column = "label" if spec.startswith(BUILTIN_PREFIX) else cfg.label_column
    frame, stats = clean(frame, form=cfg.unicode_form, lowercase=cfg.lowercase, min_chars=cfg.min_chars,
                         where=f"{spec} (prepare.{role})", label_column=label_column)
    if cfg.max_docs is not None:
        sampled = stratified_sample(frame, cfg.max_docs, cfg.seed)
        stats = replace(stats, sampled_out=len(frame) - len(sampled), rows_kept=len(sampled))
        frame = sampled
    log.info("%s: %d rows in, %d empty/short, %d duplicates (%d with another label), %d sampled out, "
             "%d kept, %d classes", role, stats.rows_in, stats.short_dropped, stats.duplicates_dropped,
             stats.label_conflicts, stats.sampled_out, stats.rows_kept, stats.classes)
    return frame.reset_index(drop=True), stats


def prepare_unlabeled(spec: str | None, cfg: PrepareConfig,
                      labeled: list[pd.Series]) -> tuple[pd.DataFrame, UnlabeledStats]:
    """The unlabeled corpus normalised and deduplicated, minus any text of the ``labeled`` datasets.

    With no ``spec`` it is an empty frame with a ``text`` column, so the stage's
    declared output always exists.
    """
    if spec is None:
        return pd.DataFrame({"text": pd.Series([], dtype="str")}), UnlabeledStats(0, 0, 0, 0, 0)
    raw = load_unlabeled(spec, cfg)
    text = normalize_texts(raw, cfg.unicode_form, cfg.lowercase)
    short = text.str.len() < cfg.min_chars
    text = text[~short]
    dup = text.duplicated()
    text = text[~dup]
    overlap = leak_keys(text).isin(leak_keys(pd.concat(labeled, ignore_index=True)))
    text = text[~overlap]
    if text.empty:
        raise DataError(f"{spec} (prepare.unlabeled): no documents left after cleaning ({len(raw)} rows, "
                        f"{int(short.sum())} empty or shorter than prepare.min_chars={cfg.min_chars}, "
                        f"{int(overlap.sum())} equal to labelled texts); check the file or unset prepare.unlabeled")
    stats = UnlabeledStats(len(raw), int(short.sum()), int(dup.sum()), int(overlap.sum()), len(text))
    log.info("unlabeled: %d rows in, %d empty/short, %d duplicates, %d equal to labelled texts, %d kept",
             *asdict(stats).values())
    return pd.DataFrame({"text": text.reset_index(drop=True)}), stats


def prepare_all(cfg: PrepareConfig) -> Prepared:
    """Every dataset of the prepare stage, cleaned, with metadata recording how each was made.

    All specs are checked before anything is read, so a typo in the target
    fails in a second, not after the source has been processed.
    """
    for role, spec in zip(ROLES, (cfg.source, cfg.target)):
        check_spec(spec, f"prepare.{role}")
    if cfg.unlabeled is not None:
        check_spec(cfg.unlabeled, "prepare.unlabeled", UNLABELED_FORMATS)
    out = Prepared()
    params = cfg.model_dump()
    for role, spec in zip(ROLES, (cfg.source, cfg.target)):
        frame, stats = prepare_dataset(spec, cfg, role)
        out.frames[role] = frame
        out.metrics[role] = stats.as_dict()
        out.meta[role] = {"stage": "prepare", "role": role, "spec": spec, "input_sha256": spec_digest(spec),
                          "params": params, "stats": stats.as_dict()}
    frame, unlabeled = prepare_unlabeled(cfg.unlabeled, cfg, [out.frames[r]["text"] for r in ROLES])
    out.frames["unlabeled"] = frame
    out.metrics["unlabeled"] = unlabeled.as_dict()
    out.meta["unlabeled"] = {"stage": "prepare", "role": "unlabeled", "spec": cfg.unlabeled,
                             "input_sha256": spec_digest(cfg.unlabeled) if cfg.unlabeled else None,
                             "params": params, "stats": unlabeled.as_dict()}
    return out
