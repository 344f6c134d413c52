"""One shared encoder, one head per task (Collobert & Weston 2008), and its checkpoint format.

The encoder is any of the single-task encoders (models/), built from the same ModelConfig; every task gets a
Head of its own over the encoder's pooled vector. ``task_model(name)`` is a view with the plain Classifier's
interface (``config`` with the task's labels, ``forward(ids)``) over the shared weights, so the evaluation
and export code of a single-task model applies to each task unchanged.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reprotext.artifacts import ArtifactKind, load_artifact, save_artifact
from reprotext.errors import ArtifactError, ConfigError
from reprotext.models import Classifier, ModelConfig, make_head

WEIGHTS_FILE, CONFIG_FILE = "multitask.pt", "multitask.json"
MULTITASK = ArtifactKind("multitask model", WEIGHTS_FILE, CONFIG_FILE, fix="rerun `dvc repro multitask`",
                         made="model was trained", tokenizer_fix="retrain it or use its own tokenizer")
DISABLED = "disabled.json"  # the marker the multitask stage writes into its outputs when multitask.enabled is false
TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # used in metric keys, file names and the export's columns


class TaskModel(nn.Module):
    """One task's classifier over the shared weights: ids (B, T) -> logits (B, C_task)."""

    def __init__(self, config: ModelConfig, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.config, self.encoder, self.head = config, encoder, head

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))


class MultitaskClassifier(nn.Module):
    """ids (B, T) and a task -> that task's logits (B, C_task); the encoder is shared, the heads are not.

    ``config`` describes the encoder and the heads' shape (its ``labels`` are unused: each task has its own).
    """

    def __init__(self, config: ModelConfig, tasks: Mapping[str, Sequence[str]], vectors: np.ndarray | None = None):
        super().__init__()
        if not tasks:
            raise ConfigError("a multitask model needs at least one task")
        for name, labels in tasks.items():
            if not TASK_NAME.fullmatch(name):
                raise ConfigError(f"task name {name!r} must be letters, digits, '_' or '-' (it names metrics and "
                                  "files); rename it in multitask.extra_tasks")
            if len(labels) < 2:
                raise ConfigError(f"task {name!r} has {len(labels)} label(s); a classifier needs at least 2")
        self.config = replace(config, labels=())
        self.task_labels: dict[str, tuple[str, ...]] = {name: tuple(labels) for name, labels in tasks.items()}
        # A classifier built as the single-task stages build one gives the encoder (and its embedding init);
        # its own head is dropped.
        self.encoder = Classifier(replace(config, labels=next(iter(self.task_labels.values()))), vectors).encoder
        self.heads = nn.ModuleDict({name: make_head(self.encoder, len(labels), config)
                                    for name, labels in self.task_labels.items()})

    @property
    def tasks(self) -> list[str]:
        return list(self.task_labels)

    def task_head(self, task: int | str) -> nn.Module:
        """Task ``task``'s head, by index or by name."""
        return self.heads[self.tasks[task] if isinstance(task, int) else task]

    def forward(self, ids: torch.Tensor, task: int | str) -> torch.Tensor:
        return self.task_head(task)(self.encoder(ids))  # (B, C_task)

    def member_logits(self, ids: torch.Tensor, task: int | str) -> torch.Tensor:
        """That task's logits of each member (B, K, C_task): K = 1 but for an ensemble encoder."""
        return self.task_head(task).members(self.encoder(ids))

    def task_model(self, task: str) -> TaskModel:
        """Task ``task``'s classifier, sharing this model's weights."""
        if task not in self.heads:
            raise ArtifactError(f"the multitask model has no task {task!r}; tasks: {', '.join(self.tasks)}")
        return TaskModel(replace(self.config, labels=self.task_labels[task]), self.encoder, self.heads[task])

    def sparse_parameters(self) -> list[nn.Parameter]:
        """The encoder's parameters with sparse gradients (a bag's tables with ``sparse: true``)."""
        get = getattr(self.encoder, "sparse_parameters", None)
        return get() if get is not None else []


def copy_encoder_statistics(model: MultitaskClassifier, source: Classifier) -> None:
    """The encoder's buffers (a bag's word starts and IDF: statistics of the tokenizer and text, not weights)."""
    theirs = dict(source.encoder.named_buffers())
    for name, buf in model.encoder.named_buffers():
        buf.copy_(theirs[name])


def save_multitask(model: MultitaskClassifier, directory: Path, info: dict) -> None:
    """Weights (a plain CPU state dict) and the config, the tasks and their labels, side by side."""
    # The tasks as a list: their order is the heads' (a task's index in a batch), and JSON objects get sorted.
    tasks = [{"name": name, "labels": list(labels)} for name, labels in model.task_labels.items()]
    save_artifact(directory, MULTITASK, model.state_dict(), {"config": asdict(model.config), "tasks": tasks, **info})


def _rebuild(meta: dict) -> MultitaskClassifier:
    cfg = meta["config"]
    config = ModelConfig(**{**cfg, "labels": tuple(cfg["labels"])})
    return MultitaskClassifier(config, {task["name"]: tuple(task["labels"]) for task in meta["tasks"]})


def load_multitask(directory: str | Path, tokenizer_sha256: str | None = None) -> tuple[MultitaskClassifier, dict]:
    """Rebuild a saved multitask model; refuse one trained with another tokenizer."""
    return load_artifact(directory, MULTITASK, _rebuild, tokenizer_sha256)
