"""The prepare stage's work: one dataset spec in, a clean frame out."""
from __future__ import annotations

import logging

import pandas as pd

from reprotext.config import PrepareConfig
from reprotext.data.normalize import CleanStats, clean, stratified_sample
from reprotext.data.sources import load

log = logging.getLogger(__name__)


def prepare_dataset(spec: str, cfg: PrepareConfig, where: str) -> tuple[pd.DataFrame, CleanStats]:
    """Load ``spec``, clean it, and subsample to ``cfg.max_docs`` when set."""
    frame = load(spec, cfg.text_column, cfg.label_column)
    frame, stats = clean(frame, cfg.lowercase, cfg.min_chars, where=f"{where} ({spec})")
    if cfg.max_docs is not None:
        frame = stratified_sample(frame, cfg.max_docs, cfg.seed)
    log.info("%s: %d rows in, %d empty/short, %d duplicates dropped, %d kept, %d classes",
             where, stats.rows_in, stats.dropped_short, stats.dropped_duplicates, len(frame), stats.classes)
    return frame, stats
