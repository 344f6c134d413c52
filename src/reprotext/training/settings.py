"""How to fit: the optimiser, its schedule, the regularisers, early stopping and the devices."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class FitSettings:
    """Training knobs: the first six every stage sets; the rest default to plain mini-batch AdamW on the CPU."""

    lr: float
    weight_decay: float
    batch_size: int  # the global batch: split over devices x nodes; the micro-batch of gd_mode "full"
    max_epochs: int
    patience: int
    seed: int
    optimizer: str = "adamw"  # sgd | adam | adamw
    momentum: float = 0.9  # sgd only
    l1: float = 0.0  # coefficient of sum |w| over the weight matrices
    l2: float = 0.0  # coefficient of sum w^2 over the weight matrices
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    schedule: str = "constant"  # constant | linear | cosine (after warmup)
    warmup: float = 0.0  # share of all optimiser steps spent warming the LR up from 0
    gd_mode: str = "minibatch"  # full | sgd | minibatch
    monitor: str = "dev/loss"
    mode: str = "min"
    min_delta: float = 0.0
    # best: early stopping ends the run and its best epoch is restored; last: every one of max_epochs runs and the
    # last is kept (a refit on train + dev, whose epochs were chosen before: its "dev" is part of its training data)
    keep: str = "best"
    accelerator: str = "cpu"
    devices: int | str | list[int] = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1
    deterministic: bool | str = True
    threads: int = 0  # torch CPU threads (intra-op); 0 = leave torch's default
    progress_bar: bool = True
    # Weight norms and near-zero shares in the history every epoch: a pass over every weight (0.4 s an epoch for a
    # bag's n-gram table); off for the few-shot study's fits, whose histories nobody reads.
    weight_stats: bool = True

    @classmethod
    def from_config(cls, config: Any) -> "FitSettings":
        """Copy the fields of the same name from a stage config (TrainConfig, FinetuneConfig)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})
