"""Test-set evaluation: predictions, metrics, the confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from reprotext.models import Classifier
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.training.data import collate


@torch.no_grad()
def predict_proba(model: Classifier, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, C) for raw texts."""
    model.eval()
    arr = TokenArray.from_lists(tokenizer.encode(texts, threads=2))
    out = []
    for start in range(0, len(arr), batch_size):
        batch = [(np.asarray(arr[i][: model.config.max_len]), 0) for i in range(start, min(start + batch_size, len(arr)))]
        ids, _ = collate(batch)
        out.append(torch.softmax(model(ids), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(model.config.labels)), dtype=np.float32)


def classification_metrics(actual: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(actual, predicted)),
        "macro_f1": float(f1_score(actual, predicted, average="macro", zero_division=0)),
    }


def save_confusion(actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str], png: Path, title: str) -> None:
    """A row-normalised confusion matrix heat map with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = confusion_matrix(actual, predicted, labels=list(labels))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the actual class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def predictions_frame(actual: Sequence[str], predicted: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"actual": list(actual), "predicted": list(predicted)})
