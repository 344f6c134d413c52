"""Callbacks: per-epoch history (and its MLflow mirror), and the best epoch kept in memory."""
from __future__ import annotations

import copy

import lightning as L
import torch


class History(L.Callback):
    """One row per epoch of every logged epoch metric, also sent to the active MLflow run."""

    def __init__(self, mlflow_module=None):
        self.rows: list[dict[str, float]] = []
        self.mlflow = mlflow_module

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # In Lightning 2.x validation has run by now, and the epoch-reduced train/* are in callback_metrics.
        row = {"epoch": trainer.current_epoch, **{k: float(v) for k, v in trainer.callback_metrics.items()}}
        self.rows.append(row)
        if self.mlflow is not None:
            self.mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])


class BestState(L.Callback):
    """Remembers the weights of the epoch with the best monitored value and restores them at the end."""

    def __init__(self, monitor: str = "dev/loss", mode: str = "min"):
        self.monitor, self.mode = monitor, mode
        self.best_value: float | None = None
        self.best_epoch: int = -1
        self._state: dict[str, torch.Tensor] | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        better = self.best_value is None or (value < self.best_value if self.mode == "min" else value > self.best_value)
        if better:
            self.best_value, self.best_epoch = value, trainer.current_epoch
            self._state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._state is not None:
            pl_module.load_state_dict(self._state)
