"""Fit a classifier with early stopping on dev loss; the best epoch's weights are kept."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping

from reprotext.models import Classifier
from reprotext.training.callbacks import BestState, History
from reprotext.training.data import TextDataModule, TokenDataset
from reprotext.training.module import ClassifierModule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitSettings:
    lr: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int


@dataclass
class FitResult:
    history: list[dict[str, float]]
    best_epoch: int
    best_dev_loss: float
    seconds: float

    @property
    def best(self) -> dict[str, float]:
        return next(row for row in self.history if row["epoch"] == self.best_epoch)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; call before building a model so its initial weights repeat."""
    L.seed_everything(seed, workers=True, verbose=False)


def fit(model: Classifier, train: TokenDataset, dev: TokenDataset, settings: FitSettings, mlflow_module=None) -> FitResult:
    """Train ``model`` in place; on return it holds the weights of its best dev-loss epoch."""
    seed_everything(settings.seed)
    module = ClassifierModule(model, settings.lr, settings.weight_decay)
    history, best = History(mlflow_module), BestState("dev/loss", "min")
    trainer = L.Trainer(
        max_epochs=settings.max_epochs,
        accelerator="cpu",
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[EarlyStopping("dev/loss", patience=settings.patience, mode="min"), best, history],
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=TextDataModule(train, dev, settings.batch_size, settings.seed))
    seconds = time.perf_counter() - start
    model.eval()
    log.info("best epoch %d of %d (dev loss %.4f) in %.1fs", best.best_epoch, len(history.rows), best.best_value, seconds)
    return FitResult(history.rows, best.best_epoch, float(best.best_value), seconds)
