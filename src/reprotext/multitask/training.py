"""Training one encoder with a head per task: interleaved one-task batches, per-task dev metrics every epoch,
early stopping on the mean of the tasks' dev scores or on one task's.

The loop is the single-task one's (Lightning, training/callbacks.py's early stopping that restores the best
epoch, per-epoch history mirrored to MLflow, per-epoch reseeding); what differs is the data (one task per
batch, drawn by sampler.py's rule), the module (the batch's task picks the head) and the metrics.
"""
from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reprotext.errors import ConfigError
from reprotext.models import combine, member_cross_entropy
from reprotext.multitask.model import MultitaskClassifier
from reprotext.multitask.sampler import TaskBatchSampler
from reprotext.training.callbacks import EarlyStopping, EpochSeed, History
from reprotext.training.data import TokenDataset, collate
from reprotext.training.fit import FitResult, release_training_state, seed_everything
from reprotext.training.optim import make_optimizer

log = logging.getLogger(__name__)
MEAN = "mean"


@dataclass(frozen=True)
class MultitaskSettings:
    """How to fit a multitask model (its own knobs; the encoder and head shapes come from the model)."""

    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    seed: int
    probabilities: tuple[float, ...]  # per task, sampler.task_probabilities
    steps_per_epoch: int | None = None  # None: the tasks' training documents / batch_size
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    momentum: float = 0.9
    monitor: str = "loss"  # loss (mode min) | accuracy (mode max)
    stop_on: str = MEAN  # mean over the tasks, or one task's name
    min_delta: float = 0.0
    accelerator: str = "cpu"
    precision: str = "32-true"
    threads: int = 0
    progress_bar: bool = True
    weight_stats: bool = True  # as FitSettings.weight_stats

    @property
    def mode(self) -> str:
        return "min" if self.monitor == "loss" else "max"

    def monitor_key(self) -> str:
        return monitor_key(self.monitor, self.stop_on)


def monitor_key(monitor: str, stop_on: str) -> str:
    """The logged metric early stopping watches: ``dev/<monitor>`` (the tasks' mean) or ``dev/<task>/<monitor>``."""
    return f"dev/{monitor}" if stop_on == MEAN else f"dev/{stop_on}/{monitor}"


class TaskTagged(Dataset):
    """Documents of several tasks, concatenated: item i is (ids, label, task index)."""

    def __init__(self, datasets: Sequence[TokenDataset]):
        self.datasets = list(datasets)
        self.ends = np.cumsum([len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        t = int(np.searchsorted(self.ends, i, side="right"))
        ids, y = self.datasets[t][i - (int(self.ends[t - 1]) if t else 0)]
        return ids, y, t


def collate_task(batch: list[tuple[np.ndarray, int, int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Padded ids (B, T), labels (B,) and the batch's one task."""
    tasks = {t for _, _, t in batch}
    assert len(tasks) == 1, f"a batch mixes tasks {sorted(tasks)}"
    ids, y = collate([(ids, label) for ids, label, _ in batch])
    return ids, y, tasks.pop()


class MultitaskDataModule(L.LightningDataModule):
    """Training: one-task batches drawn by TaskBatchSampler; dev: one loader per task, in task order."""

    def __init__(self, train: Sequence[TokenDataset], dev: Sequence[TokenDataset], settings: MultitaskSettings):
        super().__init__()
        self.train_sets, self.dev_sets, self.settings = list(train), list(dev), settings

    def steps(self) -> int:
        s = self.settings
        return s.steps_per_epoch or max(1, -(-sum(len(d) for d in self.train_sets) // s.batch_size))

    def train_dataloader(self) -> DataLoader:
        s = self.settings
        sampler = TaskBatchSampler([len(d) for d in self.train_sets], s.batch_size, s.probabilities, self.steps(),
                                   s.seed)
        return DataLoader(TaskTagged(self.train_sets), batch_sampler=sampler, collate_fn=collate_task)

    def val_dataloader(self) -> list[DataLoader]:
        return [DataLoader(OneTask(ds, t), batch_size=max(self.settings.batch_size, 128), shuffle=False,
                           collate_fn=collate_task) for t, ds in enumerate(self.dev_sets)]


class OneTask(Dataset):
    """One task's documents tagged with its index: item i is (ids, label, task)."""

    def __init__(self, dataset: TokenDataset, task: int):
        self.dataset, self.task = dataset, task

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int, int]:
        ids, y = self.dataset[i]
        return ids, y, self.task


class MultitaskModule(L.LightningModule):
    """Cross-entropy of the batch's task through that task's head; per-task and mean metrics every epoch.

    Logs ``train/<task>/loss`` and ``dev/<task>/{loss,accuracy}`` per task, and ``train/loss``,
    ``dev/loss``, ``dev/accuracy``: the unweighted means over the tasks (each task counts the same,
    whatever its size).
    """

    def __init__(self, model: MultitaskClassifier, settings: MultitaskSettings):
        super().__init__()
        self.model, self.settings = model, settings
        self.n_tasks = len(model.tasks)
        self.train_tally = torch.zeros(self.n_tasks, 3)  # per task: loss * n, correct, n
        self.dev_tally = torch.zeros(self.n_tasks, 3)

    def forward(self, ids: torch.Tensor, task: int) -> torch.Tensor:
        return self.model(ids, task)

    def _tally(self, tally: torch.Tensor, task: int, ce: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        tally[task] += torch.stack([ce.detach() * len(y), (logits.argmax(-1) == y).sum().float(),
                                    ce.new_tensor(float(len(y)))])

    def on_train_epoch_start(self) -> None:
        self.train_tally = torch.zeros(self.n_tasks, 3, device=self.device)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor, int], batch_idx: int) -> torch.Tensor:
        ids, y, task = batch
        members = self.model.member_logits(ids, task)  # (B, K, C_task): K = 1 but for an ensemble
        logits = combine(members)  # (B, C_task)
        ce = member_cross_entropy(members.float(), y)  # each member learns from its own loss
        self._tally(self.train_tally, task, ce, logits, y)
        if self.trainer.is_last_batch:
            seen = self.train_tally[:, 2] > 0
            epoch = dict(on_step=False, on_epoch=True, batch_size=1)
            for t, name in enumerate(self.model.tasks):
                if seen[t]:
                    loss, correct, n = self.train_tally[t]
                    self.log(f"train/{name}/loss", loss / n, **epoch)
                    self.log(f"train/{name}/accuracy", correct / n, **epoch)
                    self.log(f"train/{name}/documents", n, **epoch)  # documents drawn this epoch
            per_task = self.train_tally[seen]
            self.log("train/loss", (per_task[:, 0] / per_task[:, 2]).mean(), **epoch)
            self.log("train/accuracy", (per_task[:, 1] / per_task[:, 2]).mean(), **epoch)
        return ce

    def on_validation_epoch_start(self) -> None:
        self.dev_tally = torch.zeros(self.n_tasks, 3, device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor, int], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        ids, y, task = batch
        logits = self.model(ids, task)
        self._tally(self.dev_tally, task, F.cross_entropy(logits.float(), y), logits, y)

    def on_validation_epoch_end(self) -> None:
        losses, accuracies = [], []
        for t, name in enumerate(self.model.tasks):
            n = self.dev_tally[t, 2].clamp(min=1)
            loss, acc = self.dev_tally[t, 0] / n, self.dev_tally[t, 1] / n
            self.log(f"dev/{name}/loss", loss, batch_size=1)
            self.log(f"dev/{name}/accuracy", acc, batch_size=1)
            losses.append(loss)
            accuracies.append(acc)
        self.log("dev/loss", torch.stack(losses).mean(), batch_size=1, prog_bar=True)
        self.log("dev/accuracy", torch.stack(accuracies).mean(), batch_size=1, prog_bar=True)

    def configure_optimizers(self):
        s = self.settings
        # A head whose task drew no batch in a step has no gradient: the optimiser leaves it (and its decay) alone.
        return make_optimizer([{"params": [p for p in self.model.parameters() if p.requires_grad]}], s.optimizer,
                              s.lr, s.momentum, s.weight_decay, self.model.sparse_parameters())


def fit_multitask(model: MultitaskClassifier, train: Sequence[TokenDataset], dev: Sequence[TokenDataset],
                  settings: MultitaskSettings, mlflow_module=None) -> FitResult:
    """Train ``model`` in place on its tasks (``train``/``dev`` in the order of ``model.tasks``).

    On return the model holds the weights of the best epoch by ``settings.monitor_key()``, on the CPU, in
    eval mode; the history has one row per epoch with every per-task and mean metric.
    """
    if len(train) != len(model.tasks) or len(dev) != len(model.tasks):
        raise ValueError(f"{len(model.tasks)} tasks but {len(train)} training and {len(dev)} dev sets")
    if settings.stop_on != MEAN and settings.stop_on not in model.tasks:
        raise ConfigError(f"multitask.stop_on {settings.stop_on!r} is neither 'mean' nor a task "
                          f"({', '.join(model.tasks)}); fix multitask.stop_on")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    module = MultitaskModule(model, settings)
    monitor = settings.monitor_key()
    stopper = EarlyStopping(monitor, settings.mode, settings.patience, settings.min_delta)
    bar = settings.progress_bar and sys.stdout.isatty()
    history = History(mlflow_module, log_epochs=settings.progress_bar and not bar, weight_stats=settings.weight_stats)
    trainer = L.Trainer(max_epochs=settings.max_epochs, accelerator=settings.accelerator, devices=1,
                        precision=settings.precision, deterministic=True, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=bar, num_sanity_val_steps=0,
                        use_distributed_sampler=False, callbacks=[EpochSeed(settings.seed), history, stopper])
    model.train()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
        trainer.fit(module, datamodule=MultitaskDataModule(train, dev, settings))
    seconds = time.perf_counter() - start
    model.cpu().eval()
    if stopper.best_epoch < 0:
        raise ConfigError(f"multitask training diverged: {monitor} was never finite; lower multitask.lr")
    best_dev_loss = next(row["dev/loss"] for row in history.rows if row["epoch"] == stopper.best_epoch)
    log.info("multitask: best epoch %d of %d (%s %.4f) in %.1fs", stopper.best_epoch, len(history.rows), monitor,
             stopper.best_value, seconds)
    result = FitResult(history.rows, stopper.best_epoch, best_dev_loss, seconds, trainer.global_step,
                       stopped_early=len(history.rows) < settings.max_epochs)
    release_training_state(trainer, model)  # the stage runs several fits in one process
    return result
