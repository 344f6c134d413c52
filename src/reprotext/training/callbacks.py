"""Callbacks: early stopping that restores the best epoch, per-epoch history and seeds, resume checkpoints."""
from __future__ import annotations

import logging
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed derived from (seed, epoch, rank) without collisions between nearby triples."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


class EpochSeed(L.Callback):
    """Reseeds Python, NumPy and torch before each epoch's first batch: a resumed run draws the same dropout masks.

    Not in ``on_train_epoch_start``: Lightning skips that hook for the first
    epoch after resuming from a checkpoint written at the end of an epoch.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if batch_idx:
            return
        s = epoch_seed(self.seed, trainer.current_epoch, trainer.global_rank)
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)  # also seeds every CUDA device


class EarlyStopping(L.Callback):
    """Stops after ``patience`` epochs in which ``monitor`` did not improve by more than ``min_delta``.

    The weights of the last improving epoch (for dev loss: the last local minimum
    that beat every earlier epoch) are kept in memory, saved with the resume
    checkpoint, and loaded back into the module when fitting ends.
    """

    def __init__(self, monitor: str = "dev/loss", mode: str = "min", patience: int = 3, min_delta: float = 0.0,
                 restore: bool = True):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.restore = restore  # False: no best-epoch copy is kept, and the last epoch's weights stay
        self.best_value = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped = False
        self.best_state: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        gain = self.best_value - value if self.mode == "min" else value - self.best_value
        return math.isfinite(value) and gain > self.min_delta

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.should_stop = trainer.should_stop or self.stopped  # resumed from the checkpoint of the stopping epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation has run by now (Lightning 2.x), so the epoch's dev metrics are in callback_metrics.
        if self.monitor not in trainer.callback_metrics:
            raise KeyError(f"early stopping monitors {self.monitor!r}, which was not logged; "
                           f"logged: {', '.join(sorted(trainer.callback_metrics))}")
        value = float(trainer.callback_metrics[self.monitor])
        improved = self._improved(value)
        if improved:
            self.best_value, self.best_epoch, self.wait = value, trainer.current_epoch, 0
            if self.restore:
                self.best_state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        else:
            self.wait += 1
        # A diverged run (NaN or inf) stops at once; it will not come back.
        self.stopped = (not improved and self.wait >= self.patience) or not math.isfinite(value)
        trainer.should_stop = trainer.should_stop or trainer.strategy.reduce_boolean_decision(self.stopped, all=False)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)
            self.best_state = None  # restored: the copy (as large as the model) has done its work

    def state_dict(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped": self.stopped, "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_value, self.best_epoch = state_dict["best_value"], state_dict["best_epoch"]
        self.wait, self.stopped, self.best_state = state_dict["wait"], state_dict["stopped"], state_dict["best_state"]


NEAR_ZERO = (1e-3, 1e-2)


def weight_stats(module: torch.nn.Module) -> dict[str, float]:
    """Per weight matrix ``weights/<layer>/l1`` and ``/l2`` (they grow when a model overfits), and over all of them
    ``weights/share_below_<t>``, the share of entries with ``|w| < t`` (L1 drives it up).

    One pass per matrix, no copies of the whole model: a bag's n-gram table has tens of millions of entries,
    and these run after every epoch of every fit.
    """
    out: dict[str, float] = {}
    below = dict.fromkeys(NEAR_ZERO, 0)
    total = 0
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim < 2:
                continue
            a = p.detach().abs()
            layer = name.removesuffix(".weight")
            out[f"weights/{layer}/l1"] = float(a.sum(dtype=torch.float64))
            out[f"weights/{layer}/l2"] = float(torch.linalg.vector_norm(a, dtype=torch.float64))
            for t in NEAR_ZERO:
                below[t] += int(torch.count_nonzero(a < t))
            total += a.numel()
    if total:
        out.update({f"weights/share_below_{t:g}": below[t] / total for t in NEAR_ZERO})
    return out


class History(L.Callback):
    """One row per epoch: every logged epoch metric, the LR, the steps so far, weight norms and near-zero shares;
    mirrored to MLflow (with the wall time since training started)."""

    def __init__(self, mlflow_module=None, log_epochs: bool = False, weight_stats: bool = True):
        self.rows: list[dict[str, float]] = []
        self.weight_stats = weight_stats
        self.mlflow = mlflow_module
        self.log_epochs = log_epochs  # one log line per epoch (where no progress bar shows)
        self.start = time.perf_counter()

    def _send(self, row: dict[str, float]) -> None:
        if self.mlflow is not None:
            self.mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for row in self.rows:  # restored from a resume checkpoint: this run's MLflow record gets them too
            self._send(row)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row = {"epoch": trainer.current_epoch, **{k: float(v) for k, v in trainer.callback_metrics.items()},
               "train/lr": float(trainer.optimizers[0].param_groups[0]["lr"]), "train/steps": trainer.global_step,
               **(weight_stats(pl_module.model) if self.weight_stats else {})}
        self.rows.append(row)
        if self.log_epochs and trainer.is_global_zero:
            log.info("epoch %d/%d: %s", row["epoch"] + 1, trainer.max_epochs, ", ".join(
                f"{k} {row[k]:.4g}" for k in ("train/loss", "dev/loss", "dev/accuracy") if k in row))
        # Wall time since training started (this process): MLflow only, never the history file, which must repeat.
        self._send({**row, "time/elapsed_seconds": time.perf_counter() - self.start})

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = state_dict["rows"]


class ResumeCheckpoint(L.Callback):
    """Writes the whole training state at the end of every epoch, atomically (temp file + rename).

    Must come after every callback whose state it should capture: Lightning
    runs callbacks in list order.
    """

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        # The full state (optimizer, loops, callbacks) to resume from, read back with weights_only=True.
        # Every rank calls it; rank 0 writes, then all wait at a barrier.
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
