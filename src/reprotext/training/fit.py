"""Fit a classifier with Lightning: early stopping on a dev metric, the best epoch restored, resumable."""
from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.plugins.environments import (LSFEnvironment, MPIEnvironment, SLURMEnvironment,
                                                   TorchElasticEnvironment)
from torch import nn

from reprotext.errors import ConfigError
from reprotext.models import Classifier
from reprotext.training import resume
from reprotext.training.callbacks import EarlyStopping, EpochSeed, History, ResumeCheckpoint
from reprotext.training.data import TextDataModule, TokenDataset
from reprotext.training.module import ClassifierModule
from reprotext.training.settings import FitSettings

log = logging.getLogger(__name__)


class _DropLitLoggerTip(logging.Filter):
    """Lightning 2.6 advertises its cloud logger ("💡 Tip: ... try installing [litlogger]") on every Trainer
    built without one, and no flag or variable turns that off: drop exactly that record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "try installing [litlogger]" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropLitLoggerTip())


@dataclass
class FitResult:
    """The per-epoch history and where it ended; ``seconds`` is wall time (MLflow only, never metrics files)."""

    history: list[dict[str, float]]
    best_epoch: int
    best_dev_loss: float
    seconds: float
    steps: int = 0  # optimiser steps over the whole run
    resumed_after: int = 0  # epochs restored from a resume checkpoint
    stopped_early: bool = False  # early stopping ended the run, not max_epochs: the dev metric had stopped improving

    @property
    def best(self) -> dict[str, float]:
        return next(row for row in self.history if row["epoch"] == self.best_epoch)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; call before building a model so its initial weights repeat."""
    L.seed_everything(seed, workers=True, verbose=False)


def _per_device_batch(settings: FitSettings, world: int) -> int:
    """The loader's batch size: the global batch split over ``world`` processes (1 in gd_mode sgd)."""
    if settings.gd_mode == "sgd":
        if world > 1:
            raise ConfigError(f"train.gd_mode sgd takes one example per step and cannot be split over {world} "
                              "processes; use gd_mode minibatch or one device")
        return 1
    if settings.batch_size % world:
        raise ConfigError(f"train.batch_size {settings.batch_size} does not split evenly over {world} processes "
                          "(devices x num_nodes); make it a multiple of that")
    return settings.batch_size // world


# What starts the processes of a multi-node run and says so in the environment (Kubeflow and Lightning's own
# set-up are told by MASTER_ADDR).
LAUNCHERS = (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment)


def check_launched_world(num_nodes: int, devices: int | str | list[int]) -> None:
    """The processes params.yaml describes must be the ones a launcher started. Without this, ``num_nodes: 2``
    under a plain ``dvc repro`` would wait for the other machine forever, and a torchrun of another size would
    stop inside ``Trainer.fit`` with a traceback. ``devices: auto`` is left to Lightning."""
    if num_nodes > 1 and "MASTER_ADDR" not in os.environ and not any(env.detect() for env in LAUNCHERS):
        raise ConfigError(f"train.num_nodes {num_nodes}: nothing started this stage on the other machines; run it "
                          "under torchrun on every machine (README: Growing beyond one machine), "
                          "or set train.num_nodes: 1")
    if isinstance(devices, list):
        devices = len(devices)
    if not isinstance(devices, int) or not TorchElasticEnvironment.detect():
        return
    if num_nodes * devices != int(os.environ["WORLD_SIZE"]):
        raise ConfigError(f"torchrun started {os.environ['WORLD_SIZE']} processes, but train.num_nodes {num_nodes} "
                          f"x train.devices {devices} is {num_nodes * devices}; set them to torchrun's --nnodes "
                          "and --nproc-per-node")


def check_sparse_all_reduce(sparse: bool, world: int, device: torch.device) -> None:
    """Sparse gradients over several processes need gloo, the CPU backend: stock NCCL builds refuse them
    ("allreduce_sparse is only available in the NCCL experimental branch") at the first step."""
    if sparse and world > 1 and device.type != "cpu":
        raise ConfigError(f"train.bag.sparse: {world} {device.type} processes would all-reduce sparse gradients, "
                          "which NCCL does not do; set train.bag.sparse: false (dense tables) or train on CPUs")


@contextmanager
def _sparse_tables_for_ddp(model: Classifier) -> Iterator[None]:
    """Readies the tables with sparse gradients for DDP while it wraps and trains the model; undone afterwards.

    DDP learns which gradients will be sparse from ``nn.Embedding.sparse`` when it is built, and a bag looks
    its tables up functionally (``F.embedding(..., sparse=True)``): without the mark its reducer would copy
    a sparse gradient into a dense bucket and fail. DDP also needs a gradient for every parameter on every
    process at every step, and a table gets none from a batch without its features (no counted n-gram in
    any document of one process's share): an empty lookup of each table, added as 0 to the encoder's output
    (which every path to the logits goes through: ``forward`` and the members' logits of the training
    step), gives it an empty sparse gradient instead. The model's outputs and its saved form are unchanged.
    """
    sparse = model.sparse_parameters()
    ids = {id(p) for p in sparse}
    tables = [m for m in model.modules()
              if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and id(m.weight) in ids and not m.sparse]
    for m in tables:
        m.sparse = True

    def touch(module: nn.Module, inputs: tuple, features: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return features
        none = torch.zeros(0, dtype=torch.long, device=features.device)
        return features + sum(F.embedding(none, p, sparse=True).sum() for p in sparse)

    hook = model.encoder.register_forward_hook(touch) if sparse else None
    try:
        yield
    finally:
        if hook is not None:
            hook.remove()
        for m in tables:
            m.sparse = False


def fit(model: Classifier, train: TokenDataset, dev: TokenDataset, settings: FitSettings, mlflow_module=None,
        resume_dir: Path | None = None, module_cls: type[ClassifierModule] = ClassifierModule,
        extra_callbacks: Sequence[L.Callback] = ()) -> FitResult:
    """Train ``model`` in place; on return it holds the weights of its best epoch (on the CPU, in eval mode).

    Gradient-descent modes: ``minibatch`` takes one step per ``batch_size``
    examples, ``sgd`` one per example, ``full`` one per epoch over the whole
    training set, accumulated over micro-batches of ``batch_size``. With
    ``resume_dir``, the full training state is saved there after every epoch, a
    matching earlier state is resumed, and the directory is removed on success.
    ``module_cls`` (a ClassifierModule subclass, e.g. with per-group LRs) and
    ``extra_callbacks`` (run before the history, e.g. a freezing schedule) let fine-tuning
    reuse this loop.
    """
    check_launched_world(settings.num_nodes, settings.devices)
    if settings.threads:
        # Small models gain little from a second thread, and oversubscribed cores (a shared machine,
        # parallel experiments) make OpenMP's barriers spin: one thread was 6x faster under load here.
        torch.set_num_threads(settings.threads)
    seed_everything(settings.seed)
    module = module_cls(model, settings)
    if settings.keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', got {settings.keep!r}")
    last = settings.keep == "last"  # every epoch runs: the stopper only watches for divergence
    stopper = EarlyStopping(settings.monitor, settings.mode, settings.max_epochs if last else settings.patience,
                            settings.min_delta, restore=not last)
    # Lightning's bar (on stdout) redraws every step: where that is no terminal (a log, CI) it would write
    # thousands of updates, so there History logs one line per epoch instead.
    bar = settings.progress_bar and sys.stdout.isatty()
    history = History(mlflow_module, log_epochs=settings.progress_bar and not bar, weight_stats=settings.weight_stats)
    callbacks: list[L.Callback] = [*extra_callbacks, EpochSeed(settings.seed), history, stopper]
    start_from = None
    if resume_dir is not None:
        start_from = resume.prepare(resume_dir, resume.fingerprint(model, train, dev, settings), model)
        callbacks.insert(0, resume.SameStart(resume_dir, start_from[1] if start_from else 0))  # stateless
        callbacks.append(ResumeCheckpoint(resume_dir / resume.CHECKPOINT))  # last: it saves the others' state
    trainer = L.Trainer(
        max_epochs=settings.max_epochs,
        accelerator=settings.accelerator,
        devices=settings.devices,
        strategy=settings.strategy,
        precision=settings.precision,
        num_nodes=settings.num_nodes,
        deterministic=settings.deterministic,
        gradient_clip_val=settings.grad_clip or None,
        accumulate_grad_batches=math.ceil(len(train) / settings.batch_size) if settings.gd_mode == "full" else 1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=bar,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the DataModule shards the training set itself, batch for batch
        callbacks=callbacks,
    )
    batch = _per_device_batch(settings, trainer.world_size)
    check_sparse_all_reduce(bool(model.sparse_parameters()), trainer.world_size, trainer.strategy.root_device)
    # BatchNorm cannot normalise a batch of one: a lone leftover example is dropped (a different one each epoch).
    has_bn = any(isinstance(m, nn.BatchNorm1d) for m in model.modules())
    drop_last = has_bn and math.ceil(len(train) / trainer.world_size) % batch == 1
    datamodule = TextDataModule(train, dev, batch, settings.seed, drop_last)
    if start_from is not None:
        log.info("resuming from %s after epoch %d", start_from[0], start_from[1] - 1)
    model.train()  # Lightning keeps the modes it finds: a model loaded for inference would train without dropout
    start = time.perf_counter()
    with warnings.catch_warnings(), _sparse_tables_for_ddp(model) if trainer.world_size > 1 else nullcontext():
        # num_workers=0 on purpose: collation is cheap, and worker processes would add nondeterminism and start-up time.
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        # Lightning 2.6's own combined loader builds torch's deprecated LeafSpec (torch >= 2.10 warns); ours is fine.
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning,
                                r"lightning\.pytorch\.utilities\._pytree")
        trainer.fit(module, datamodule=datamodule, ckpt_path=start_from[0] if start_from else None, weights_only=True)
    seconds = time.perf_counter() - start
    model.cpu().eval()
    if resume_dir is not None and trainer.is_global_zero:
        shutil.rmtree(resume_dir, ignore_errors=True)
    if stopper.best_epoch < 0 or last and not math.isfinite(history.rows[-1][settings.monitor]):
        where = "was never finite" if stopper.best_epoch < 0 else "was not finite at the last epoch"
        raise ConfigError(f"training diverged: {settings.monitor} {where}; "
                          "lower train.lr or set train.grad_clip")
    kept = len(history.rows) - 1 if last else stopper.best_epoch
    best_dev_loss = next(row["dev/loss"] for row in history.rows if row["epoch"] == kept)
    early = len(history.rows) < settings.max_epochs
    if trainer.is_global_zero and last:
        log.info("%d epochs, the last kept, in %.1fs", len(history.rows), seconds)
    elif trainer.is_global_zero:  # said once, not by every process of a DDP run
        log.info("best epoch %d of %d (%s %.4f) in %.1fs", stopper.best_epoch, len(history.rows), settings.monitor,
                 stopper.best_value, seconds)
        if not early and stopper.best_epoch >= len(history.rows) - 1 - settings.patience // 2:
            # A default that a run never reaches is a finding: the comparison would be between unfinished models.
            log.warning("all %d epochs ran and the best was epoch %d: the run had not converged; raise max_epochs "
                        "or the learning rate", settings.max_epochs, stopper.best_epoch)
    result = FitResult(history.rows, kept, best_dev_loss, seconds, trainer.global_step,
                       start_from[1] if start_from else 0, stopped_early=early)
    release_training_state(trainer, model)
    return result


def release_training_state(trainer: L.Trainer, model: nn.Module) -> None:
    """Drop what only training needed: the optimiser's moments and the gradients.

    The trainer, its module and its callbacks refer to each other, so they outlive ``fit`` until Python's
    next full collection, which comes rarely; with them these tensors stayed (with early stopping's
    best-epoch copy, which it drops itself once restored: 3x the model): a 1M-row n-gram table left
    1.6 GB per fit, and a study's 30 fits in one process passed 9 GB after five and were killed at 17 GB.
    Freed here, they go at once.
    """
    for opt in trainer.optimizers:
        opt.state.clear()  # a Composite's clears each of its parts
    model.zero_grad(set_to_none=True)
