"""Test-set evaluation: predictions, metrics, per-class scores, confusion, calibration, baselines."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from reprotext.models import Classifier
from reprotext.tokenizer import TokenArray, Tokenizer
from reprotext.training.data import collate


def predict_proba(model: Classifier, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, C) for raw texts."""
    return predict_tokens(model, TokenArray.from_lists(tokenizer.encode(texts, threads=2)), batch_size)


@torch.no_grad()
def predict_tokens(model: Classifier, arr: TokenArray, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, C) for tokenized documents."""
    model.eval()
    out = []
    for start in range(0, len(arr), batch_size):
        batch = [(np.asarray(arr[i][: model.config.max_len]), 0) for i in range(start, min(start + batch_size, len(arr)))]
        ids, _ = collate(batch)
        out.append(torch.softmax(model(ids), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(model.config.labels)), dtype=np.float32)


def classification_metrics(actual: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 (every class counts the same)."""
    return {
        "accuracy": float(accuracy_score(actual, predicted)),
        "macro_f1": float(f1_score(actual, predicted, average="macro", zero_division=0)),
    }


def full_metrics(actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str],
                 proba: np.ndarray | None = None, bins: int = 15) -> dict[str, float]:
    """Accuracy; macro, micro and weighted F1 over ``labels``; the ECE when probabilities are given.

    Micro-F1 equals accuracy for single-label classification; it is listed because reports ask for it.
    """
    out = classification_metrics(actual, predicted)
    out["micro_f1"] = float(f1_score(actual, predicted, labels=list(labels), average="micro", zero_division=0))
    out["weighted_f1"] = float(f1_score(actual, predicted, labels=list(labels), average="weighted", zero_division=0))
    if proba is not None:
        index = {name: i for i, name in enumerate(labels)}
        out["ece"] = expected_calibration_error(proba, np.array([index.get(a, -1) for a in actual]), bins)
    return out


def per_class_frame(actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """One row per label: precision, recall, F1 and support (the number of actual documents)."""
    p, r, f, n = precision_recall_fscore_support(actual, predicted, labels=list(labels), zero_division=0)
    return pd.DataFrame({"label": list(labels), "precision": p, "recall": r, "f1": f, "support": n})


def confusion_frame(actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """Counts: rows are the actual labels, columns the predicted ones."""
    cm = confusion_matrix(actual, predicted, labels=list(labels))
    return pd.DataFrame(cm, index=pd.Index(list(labels), name="actual"), columns=list(labels))


def reliability_table(proba: np.ndarray, actual: Sequence[int] | np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Confidence (max probability) in ``bins`` equal-width bins: count, mean confidence and accuracy per bin."""
    conf = proba.max(1) if len(proba) else np.zeros(0)
    correct = (proba.argmax(1) == np.asarray(actual)).astype(float) if len(proba) else np.zeros(0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "count": int(sel.sum()),
                     "confidence": float(conf[sel].mean()) if sel.any() else float("nan"),
                     "accuracy": float(correct[sel].mean()) if sel.any() else float("nan")})
    return pd.DataFrame(rows)


def expected_calibration_error(proba: np.ndarray, actual: Sequence[int] | np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): the bin-size-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    if len(proba) == 0:
        return 0.0
    table = reliability_table(proba, actual, bins)
    used = table[table["count"] > 0]
    return float((used["count"] * (used["accuracy"] - used["confidence"]).abs()).sum() / len(proba))


def save_reliability(table: pd.DataFrame, ece: float, png: Path, title: str) -> None:
    """The reliability diagram: accuracy per confidence bin against the diagonal, with the bin counts below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = table[table["count"] > 0]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = float(table["bin_high"].iloc[0] - table["bin_low"].iloc[0])
    ax.bar(used["bin_low"], used["accuracy"], width=width, align="edge", edgecolor="black", alpha=0.7,
           label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(used["confidence"], used["accuracy"], "o", color="C3", markersize=3, label="mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"{title}\nECE {ece:.3f}")
    hist.bar(table["bin_low"], table["count"], width=width, align="edge", edgecolor="black", color="C0")
    hist.set_xlabel("confidence (max class probability)")
    hist.set_ylabel("documents")
    hist.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def majority_baseline(train_labels: Sequence[str], n: int) -> list[str]:
    """The most frequent training label (ties: the first in sorted order), ``n`` times."""
    values, counts = np.unique(np.asarray(train_labels, dtype=str), return_counts=True)
    return [str(values[int(np.argmax(counts))])] * n


def tfidf_logreg(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
                 max_features: int, c: float, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    """TF-IDF (word uni+bigrams, sublinear tf) + multinomial logistic regression, fit on the training split.

    Returns the predicted labels, the class probabilities (N, C) and the class order.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2, max_features=max_features)
    x_train = vectorizer.fit_transform(train_texts)
    clf = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    clf.fit(x_train, list(train_labels))
    proba = clf.predict_proba(vectorizer.transform(test_texts))
    classes = [str(c) for c in clf.classes_]
    return [classes[i] for i in proba.argmax(1)], proba, classes


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
