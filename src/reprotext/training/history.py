"""The per-epoch history as a CSV (a DVC plot) and a PNG."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from reprotext.io import atomic_file

COLUMNS = ["epoch", "train/loss", "dev/loss", "train/accuracy", "dev/accuracy"]


def save_history(rows: list[dict[str, float]], csv_path: Path, png_path: Path, best_epoch: int, title: str) -> None:
    """Write the history CSV (the core columns first, then LR, penalties and weight norms) and a four-panel plot.

    Panels: loss, accuracy, each layer's L2 weight norm, the LR; a dashed line marks the restored epoch.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(rows)
    frame = frame[[c for c in COLUMNS if c in frame] + sorted(c for c in frame if c not in COLUMNS)]
    with atomic_file(csv_path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, metric in zip(axes[0], ("loss", "accuracy")):
        for split in ("train", "dev"):
            if f"{split}/{metric}" in frame:
                ax.plot(frame["epoch"], frame[f"{split}/{metric}"], marker="o", label=split)
        ax.set_ylabel(metric)
    norms = [c for c in frame if c.startswith("weights/") and c.endswith("/l2")]
    for column in norms:
        axes[1, 0].plot(frame["epoch"], frame[column], label=column.removeprefix("weights/").removesuffix("/l2"))
    axes[1, 0].set_ylabel("L2 norm of the weights")
    if norms:
        axes[1, 0].set_yscale("log")
    if "train/lr" in frame:
        axes[1, 1].plot(frame["epoch"], frame["train/lr"], marker="o", label="lr at epoch end")
    axes[1, 1].set_ylabel("learning rate")
    for ax in axes.flat:
        ax.axvline(best_epoch, color="grey", linestyle="--", label=f"restored epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6 if ax is axes[1, 0] else 8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
