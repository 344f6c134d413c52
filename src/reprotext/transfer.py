"""Transfer learning: keep a trained encoder, swap the head, unfreeze gradually; few-shot subsets of a task.

The recipe follows ULMFiT (Howard & Ruder 2018): train the new head alone for
a few epochs (the encoder frozen, so a random head cannot wreck it), then
unfreeze the encoder's layer groups one at a time from the top, and train the
encoder with a smaller learning rate than the head (discriminative LRs).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
from torch import nn

from reprotext.errors import ConfigError
from reprotext.evaluation import classification_metrics, predict_tokens
from reprotext.models import Classifier, copy_statistics
from reprotext.pretraining import init_from_pretrained
from reprotext.tokenizer import TokenArray
from reprotext.training.data import TokenDataset
from reprotext.training.fit import FitResult, fit
from reprotext.training.module import ClassifierModule
from reprotext.training.settings import FitSettings


def swap_head(pretrained: Classifier, labels: Sequence[str], dropout: float) -> Classifier:
    """A new Classifier for ``labels`` whose encoder is a copy of ``pretrained``'s (head freshly initialised)."""
    config = replace(pretrained.config, labels=tuple(labels), dropout=dropout)
    model = Classifier(config)
    model.encoder.load_state_dict(pretrained.encoder.state_dict())
    return model


def from_scratch(pretrained: Classifier, labels: Sequence[str], dropout: float,
                 vectors: np.ndarray | None) -> Classifier:
    """The same architecture as ``pretrained`` for ``labels``, its encoder initialised anew (``vectors`` or random).

    The encoder's statistics (a bag's word starts and IDF) are copied: they describe the tokenizer and
    the text, not anything learned, and a bag without them cannot run.
    """
    model = Classifier(replace(pretrained.config, labels=tuple(labels), dropout=dropout), vectors)
    copy_statistics(model, pretrained)
    return model


def from_language_model(pretrained: Classifier, labels: Sequence[str], dropout: float, vectors: np.ndarray | None,
                        lm_dir: str | Path, tokenizer_sha256: str) -> Classifier:
    """The same architecture as ``pretrained`` for ``labels``, its encoder from the pretrain stage's language model.

    LM-pretrained, not source-trained: what self-supervised pretraining alone gives the target task.
    """
    model = from_scratch(pretrained, labels, dropout, vectors)
    init_from_pretrained(model, lm_dir, tokenizer_sha256, vectors is not None)
    return model


def layer_groups(model: Classifier) -> list[list[nn.Parameter]]:
    """The encoder's parameters in unfreezing units, bottom (the embedding) to top.

    One unit per direct child module of the encoder that holds parameters, in
    registration order (every encoder registers its embedding first), plus one
    for the encoder's own direct parameters (e.g. a transformer's [CLS]), which
    sit just above the embedding.
    """
    groups = [list(child.parameters()) for child in model.encoder.children()]
    groups = [g for g in groups if g]
    own = list(model.encoder.parameters(recurse=False))
    if own:
        groups.insert(min(1, len(groups)), own)
    return groups


def frozen_groups(epoch: int, n_groups: int, warmup_epochs: int, unfreeze_every: int) -> int:
    """How many encoder groups (counted from the bottom) are frozen in ``epoch`` (0-based).

    Epochs ``0 .. warmup_epochs - 1`` train the head only; then the top group
    thaws, and one more every ``unfreeze_every`` epochs.
    """
    if epoch < warmup_epochs:
        return n_groups
    thawed = 1 + (epoch - warmup_epochs) // max(1, unfreeze_every)
    return max(0, n_groups - thawed)


class GradualUnfreezing(L.Callback):
    """Sets ``requires_grad`` of the encoder groups at the start of every epoch; records what it froze."""

    def __init__(self, warmup_epochs: int, unfreeze_every: int):
        self.warmup_epochs, self.unfreeze_every = warmup_epochs, unfreeze_every
        self.frozen_per_epoch: list[int] = []

    def apply(self, model: Classifier, epoch: int) -> int:
        groups = layer_groups(model)
        n_frozen = frozen_groups(epoch, len(groups), self.warmup_epochs, self.unfreeze_every)
        for i, group in enumerate(groups):
            for p in group:
                p.requires_grad_(i >= n_frozen)
        return n_frozen

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.frozen_per_epoch.append(self.apply(pl_module.model, trainer.current_epoch))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for p in pl_module.model.parameters():
            p.requires_grad_(True)


def transfer_module(encoder_lr_factor: float) -> type[ClassifierModule]:
    """A ClassifierModule whose optimiser gives the encoder ``encoder_lr_factor`` x the head's LR.

    Every parameter is in the optimiser from the start; a frozen one has no
    gradient, so the optimiser leaves it (and its weight decay) alone until it thaws.
    The head is group 0, so the logged ``train/lr`` is the head's.
    """

    class TransferModule(ClassifierModule):
        def param_groups(self) -> list[dict]:
            return [{"params": list(self.model.head.parameters())},
                    {"params": list(self.model.encoder.parameters()), "lr": self.settings.lr * encoder_lr_factor}]

    return TransferModule


def sample_per_class(labels: Sequence[int] | np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted indices of ``k`` examples of every class (all of a class that has fewer), drawn with ``seed``."""
    if k < 1:
        raise ConfigError(f"few-shot k = {k} must be at least 1 example per class; fix finetune.fewshot_k")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def halve(labels: Sequence[int] | np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified halving: (the larger half of every class, the rest), each sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    first, second = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = (len(idx) + 1) // 2
        first.append(idx[:cut])
        second.append(idx[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def subset(ds: TokenDataset, indices: Sequence[int] | np.ndarray) -> TokenDataset:
    """The documents ``indices`` of ``ds`` as a dataset of their own."""
    tokens = TokenArray.from_lists([ds.tokens[int(i)] for i in indices])
    return TokenDataset(tokens, ds.labels[np.asarray(indices, dtype=np.int64)], ds.max_len)


def fit_transfer(model: Classifier, train: TokenDataset, dev: TokenDataset, settings: FitSettings,
                 warmup_epochs: int, unfreeze_every: int, encoder_lr_factor: float,
                 mlflow_module=None) -> tuple[FitResult, list[int]]:
    """Fit with the head-only warm-up, gradual unfreezing and the encoder's LR factor.

    Returns the fit result and the number of frozen encoder groups in each epoch.
    """
    schedule = GradualUnfreezing(warmup_epochs, unfreeze_every)
    result = fit(model, train, dev, settings, mlflow_module, module_cls=transfer_module(encoder_lr_factor),
                 extra_callbacks=[schedule])
    return result, schedule.frozen_per_epoch


def score(model: Classifier, ds: TokenDataset, labels: Sequence[str], batch_size: int = 256) -> dict[str, float]:
    """Accuracy and macro-F1 of ``model`` on ``ds``."""
    proba = predict_tokens(model, ds.tokens, batch_size)
    names = np.asarray(labels)
    return classification_metrics(names[ds.labels].tolist(), names[proba.argmax(1)].tolist())


def summarise_curve(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; 0 for one seed) and count of the few-shot scores per (k, variant)."""
    grouped = rows.groupby(["k", "variant"], sort=False)
    out = grouped.agg(train_docs=("train_docs", "mean"), accuracy_mean=("accuracy", "mean"),
                      accuracy_std=("accuracy", "std"), macro_f1_mean=("macro_f1", "mean"),
                      macro_f1_std=("macro_f1", "std"), best_epoch_mean=("best_epoch", "mean"),
                      seeds=("seed", "count")).reset_index()
    order = out["k"].map(lambda k: float("inf") if k == "all" else float(k))  # numeric k first, "all" last
    out = out.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)
    return out.fillna({"accuracy_std": 0.0, "macro_f1_std": 0.0})


def save_curve_plot(summary: pd.DataFrame, png: Path, title: str) -> None:
    """Dev accuracy against examples per class (log x), one line per variant with +-1 std bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    numeric = summary[summary["k"] != "all"]
    for i, (variant, part) in enumerate(numeric.groupby("variant", sort=False)):
        ax.errorbar(part["k"].astype(int), part["accuracy_mean"], yerr=part["accuracy_std"], marker="o", capsize=3,
                    label=variant, color=f"C{i}")
        full = summary[(summary["k"] == "all") & (summary["variant"] == variant)]
        if len(full):
            ax.axhline(float(full["accuracy_mean"].iloc[0]), color=f"C{i}", linestyle=":", linewidth=1,
                       label=f"{variant}, all training data")
    ax.set_xscale("log")
    ax.set_xlabel("training examples per class (k)")
    ax.set_ylabel("dev accuracy (scoring half)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def save_comparison_plot(histories: dict[str, list[dict[str, float]]], best: dict[str, int], png: Path,
                         title: str) -> None:
    """Dev loss and accuracy per epoch of each full-data run; a dot marks each run's restored epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, rows) in enumerate(histories.items()):
        epochs = [r["epoch"] for r in rows]
        for ax, key in zip(axes, ("dev/loss", "dev/accuracy")):
            values = [r[key] for r in rows]
            ax.plot(epochs, values, marker=".", color=f"C{i}", label=name)
            ax.plot([best[name]], [values[epochs.index(best[name])]], "o", color=f"C{i}", markersize=9, alpha=0.5)
            ax.set_xlabel("epoch")
            ax.set_ylabel(key)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
