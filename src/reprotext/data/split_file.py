"""The split stage's work on one prepared file, in batches: read it twice, write train/dev/test as it goes.

Pass one keeps per row only what the split needs (label, the predefined split,
the group id, a fingerprint of the text's leak key); pass two routes each batch's
rows to their part's file and profiles them for the data report.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotext.config import SplitConfig
from reprotext.data.normalize import fingerprints, leak_keys
from reprotext.data.report import SplitProfile
from reprotext.data.sources import BATCH_ROWS
from reprotext.data.split import SPLITS, SplitPlan, check_prepared, plan_split
from reprotext.data.store import FrameWriter, iter_frames, read_schema

ROW_COLUMNS = ("label", "split", "group")  # what the split needs of a row besides its text


def split_file(path: Path, cfg: SplitConfig, out_dir: Path, meta: dict[str, Any],
               batch_rows: int = BATCH_ROWS) -> tuple[SplitPlan, dict[str, SplitProfile]]:
    """Split the prepared Parquet file ``path`` as ``cfg`` says into ``out_dir/<split>.parquet`` (``text``, ``label``).

    Each part file carries ``meta`` plus its ``split`` name. The rows keep the order of ``path``, as
    :func:`~reprotext.data.split.split_frame` keeps it.

    Returns:
        The plan (each row's part, the leaks removed) and each part's profile for the data report.
    """
    where = str(path)
    names = read_schema(path).names
    check_prepared(names, where)
    columns = [c for c in names if c in ROW_COLUMNS]
    rows, prints = [], []
    for batch in iter_frames(path, batch_rows, ["text", *columns]):
        rows.append(batch[columns])
        prints.append(fingerprints(leak_keys(batch["text"])))
    plan = plan_split(pd.concat(rows, ignore_index=True), np.concatenate(prints), cfg, where)
    del rows, prints
    profiles = {name: SplitProfile() for name in SPLITS}
    start = 0
    with ExitStack() as stack:
        writers = {name: stack.enter_context(FrameWriter(out_dir / f"{name}.parquet", {**meta, "split": name}))
                   for name in SPLITS}
        for batch in iter_frames(path, batch_rows, ["text", "label"]):
            part = plan.part[start:start + len(batch)]
            start += len(batch)
            for i, name in enumerate(SPLITS):
                rows_i = batch[part == i].reset_index(drop=True)
                writers[name].write(rows_i)
                profiles[name].add(rows_i)
    return plan, profiles
