"""The data report: class counts per split, text lengths, what cleaning and the leak guard removed."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotext.config import SplitConfig
from reprotext.data.split import SPLITS, SplitResult

REPORT_NAME = "data.md"
QUANTILES = {"min": 0.0, "median": 0.5, "p95": 0.95, "max": 1.0}


@dataclass(frozen=True)
class DataSummary:
    """What the report says about one dataset."""

    role: str
    spec: str | None  # None when the prepared file carries no prepare metadata
    classes: pd.DataFrame  # (class x train/dev/test/total) document counts
    lengths: pd.DataFrame  # (split, unit) x min/median/mean/p95/max
    chars: dict[str, np.ndarray]  # characters per document, by split
    leaks_removed: dict[str, int]
    prepare_stats: dict[str, int]  # empty when the prepared file carries no prepare metadata

    def metrics(self) -> dict[str, float]:
        """Flat metrics (``train_docs``, ``leaks_removed``, ``chars_median``, ...) for DVC and MLflow."""
        out: dict[str, float] = {f"{name}_docs": int(self.classes[name].sum()) for name in SPLITS}
        out["classes"] = len(self.classes)
        out["leaks_removed"] = sum(self.leaks_removed.values())
        for unit in ("chars", "words"):
            for stat in ("median", "mean"):
                out[f"{unit}_{stat}"] = float(self.lengths.loc[("all", unit), stat])
        return out


class SplitProfile:
    """What the report needs of one split, gathered batch by batch: class counts and lengths, not the text."""

    def __init__(self) -> None:
        self.labels = pd.Series(dtype="int64")
        self._chars: list[np.ndarray] = []
        self._words: list[np.ndarray] = []

    def add(self, part: pd.DataFrame) -> None:
        """Count the rows of ``part`` (``text``, ``label``), the next batch of the split."""
        self.labels = self.labels.add(part["label"].value_counts(), fill_value=0)
        self._chars.append(part["text"].str.len().to_numpy())
        # Prepared text has single spaces between words and none at the ends.
        self._words.append(part["text"].str.count(" ").to_numpy() + 1)

    @property
    def chars(self) -> np.ndarray:
        return np.concatenate(self._chars) if self._chars else np.zeros(0, dtype=np.int64)

    @property
    def words(self) -> np.ndarray:
        return np.concatenate(self._words) if self._words else np.zeros(0, dtype=np.int64)

    @classmethod
    def of(cls, part: pd.DataFrame) -> SplitProfile:
        profile = cls()
        profile.add(part)
        return profile


def summarize(role: str, result: SplitResult, prepare_meta: dict[str, Any]) -> DataSummary:
    """Count classes and measure lengths in each split of one dataset."""
    profiles = {name: SplitProfile.of(part) for name, part in result.parts.items()}
    return summarize_profiles(role, profiles, result.leaks_removed, prepare_meta)


def summarize_profiles(role: str, profiles: Mapping[str, SplitProfile], leaks_removed: Mapping[str, int],
                       prepare_meta: dict[str, Any]) -> DataSummary:
    """:func:`summarize` from the splits' profiles, gathered while writing them."""
    classes = pd.DataFrame({name: profile.labels for name, profile in profiles.items()})
    classes = classes.reindex(columns=list(SPLITS)).fillna(0).astype(int).sort_index()
    classes["total"] = classes.sum(axis=1)
    chars = {name: profile.chars for name, profile in profiles.items()}
    words = {name: profile.words for name, profile in profiles.items()}
    rows = {}
    for unit, lengths in (("chars", chars), ("words", words)):
        for name in (*SPLITS, "all"):
            values = np.concatenate(list(lengths.values())) if name == "all" else lengths[name]
            rows[(name, unit)] = {**{k: float(np.quantile(values, q)) for k, q in QUANTILES.items()},
                                  "mean": float(values.mean())}
    lengths = pd.DataFrame.from_dict(rows, orient="index")[["min", "median", "mean", "p95", "max"]]
    return DataSummary(role=role, spec=prepare_meta.get("spec"), classes=classes, lengths=lengths,
                       chars=chars, leaks_removed=dict(leaks_removed),
                       prepare_stats=dict(prepare_meta.get("stats", {})))


def write_report(out_dir: Path, summaries: list[DataSummary], cfg: SplitConfig) -> None:
    """Write ``data.md`` and one PNG per dataset (class counts per split, length histogram) into ``out_dir``."""
    lines = ["# Data report", "",
             f"Made by the split stage: method `{cfg.method}`, ratios train {cfg.train:g} / dev {cfg.dev:g} / "
             f"test {cfg.test:g}, seed {cfg.seed}. Lengths count characters and whitespace-separated words of the "
             "normalised text. A text found in two splits keeps only its copy in the earliest of train, dev, test "
             "(compared case- and width-insensitively); the others are counted as leaks removed.", ""]
    for summary in summaries:
        lines += _section(summary)
        _plot(summary, out_dir / f"{summary.role}.png")
    (out_dir / REPORT_NAME).write_text("\n".join(lines), encoding="utf-8")


def _section(s: DataSummary) -> list[str]:
    docs = [int(s.classes[name].sum()) for name in SPLITS]
    leaks = [s.leaks_removed[name] for name in SPLITS]
    lines = [f"## {s.role}" + (f": `{s.spec}`" if s.spec else ""), "",
             "| | train | dev | test | total |", "|---|---:|---:|---:|---:|",
             _row("documents", [*docs, sum(docs)]), _row("leaks removed", [*leaks, sum(leaks)]), ""]
    p = s.prepare_stats
    if p:
        lines += [f"Prepare: {p['rows_in']:,} rows read; {p['short_dropped']:,} empty or shorter than min_chars; "
                  f"{p['duplicates_dropped']:,} exact duplicates dropped "
                  f"({p['label_conflicts']:,} with another label); {p['sampled_out']:,} sampled out by max_docs.", ""]
    absent = [f"{_cell(c)} ({name})" for name in SPLITS for c in s.classes.index[s.classes[name] == 0]]
    if absent:
        lines += [f"Classes absent from a split: {', '.join(absent)}.", ""]
    lines += [f"![{s.role}]({s.role}.png)", "", "### Lengths", "",
              "| split | unit | min | median | mean | p95 | max |", "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {unit} | " + " | ".join(f"{v:,.1f}" for v in row) + " |"
              for (name, unit), row in s.lengths.iterrows()]
    lines += ["", "### Classes", "", "| class | train | dev | test | total |", "|---|---:|---:|---:|---:|"]
    lines += [_row(_cell(c), row.tolist()) for c, row in s.classes.iterrows()]
    return [*lines, ""]


def _row(name: str, values: list[int]) -> str:
    return f"| {name} | " + " | ".join(f"{v:,}" for v in values) + " |"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def _plot(s: DataSummary, path: Path) -> None:
    """Class counts per split (stacked bars) beside a histogram of characters per document."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, hist) = plt.subplots(1, 2, figsize=(12, max(3.5, 0.25 * len(s.classes) + 1.5)),
                                     gridspec_kw={"width_ratios": [3, 2]})
    left = np.zeros(len(s.classes))
    for name in SPLITS:
        bars.barh(s.classes.index.astype(str), s.classes[name], left=left, label=name)
        left += s.classes[name].to_numpy()
    bars.invert_yaxis()
    bars.set_xlabel("documents")
    bars.set_title(f"{s.role}: documents per class and split")
    bars.legend(loc="lower right")
    top = max(int(v.max()) for v in s.chars.values())
    bins = np.unique(np.geomspace(1, top + 1, 40).astype(int))  # integer edges: lengths are integers
    for name in SPLITS:
        chars = s.chars[name]  # never empty: split_frame refuses empty splits
        hist.hist(chars, bins=bins, histtype="step", label=name, weights=np.full(len(chars), 1 / len(chars)))
    hist.set_xscale("log")
    hist.set_xlabel("characters per document")
    hist.set_ylabel("share of the split's documents")
    hist.set_title("length")
    hist.legend()
    with warnings.catch_warnings(action="ignore", category=UserWarning):  # glyphs missing from the default font
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
