"""The per-epoch history as a CSV (a DVC plot) and a PNG."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from reprotext.io import atomic_file

COLUMNS = ["epoch", "train/loss", "dev/loss", "train/accuracy", "dev/accuracy"]


def save_history(rows: list[dict[str, float]], csv_path: Path, png_path: Path, best_epoch: int, title: str) -> None:
    """Write the history CSV and a two-panel loss/accuracy plot marking the restored epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    frame = frame[[c for c in COLUMNS if c in frame.columns]]
    with atomic_file(csv_path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split in ("train", "dev"):
            if f"{split}/{metric}" in frame:
                ax.plot(frame["epoch"], frame[f"{split}/{metric}"], marker="o", label=split)
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"restored epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
