"""Which task the next batch comes from: proportional or temperature sampling (Arivazhagan et al. 2019).

Every batch holds documents of one task only, so each step trains the shared encoder and exactly one head
(Collobert & Weston 2008 pick a task, then an example of it). With ``N_t`` training documents in task t, the
next batch is task t's with probability

    p_t = N_t^(1/T) / sum_s N_s^(1/T)

``T = 1`` is proportional sampling (each document is seen about once an epoch, a small task rarely);
``T > 1`` flattens the distribution toward uniform (Arivazhagan et al. 2019 found ``T = 5`` a good middle:
a small task is upsampled, its documents repeat within an epoch, a large one is downsampled).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from reprotext.errors import ConfigError

RULES = ("proportional", "temperature")


def task_probabilities(sizes: Sequence[int], rule: str = "proportional", temperature: float = 1.0) -> np.ndarray:
    """The probability of drawing each task's batch next: ``N_t^(1/T)`` normalised (``T = 1`` when proportional).

    Args:
        sizes: training documents per task (each >= 1).
        rule: ``proportional`` or ``temperature``.
        temperature: ``T >= 1`` of the temperature rule.
    """
    if rule not in RULES:
        raise ConfigError(f"sampling rule {rule!r} is unknown; use one of {', '.join(RULES)}")
    if rule == "temperature" and not temperature >= 1:
        raise ConfigError(f"sampling temperature {temperature} must be >= 1 (1 = proportional, larger = closer "
                          "to uniform); fix multitask.temperature")
    sizes = np.asarray(sizes, dtype=np.float64)
    if sizes.size == 0 or (sizes < 1).any():
        raise ConfigError(f"every task needs at least one training document; got sizes {sizes.astype(int).tolist()}")
    weights = sizes ** (1.0 / (temperature if rule == "temperature" else 1.0))
    return weights / weights.sum()


class TaskBatchSampler(Sampler[list[int]]):
    """Batches of indices into the tasks' concatenated training sets, one task per batch.

    An epoch is ``steps`` batches; each step draws its task with ``probabilities`` and takes the next
    ``batch_size`` documents of that task's stream: the task's documents in a seeded random order, a new
    order each time they run out (so an upsampled task repeats documents, each once per pass). The draws
    and the orders depend only on (seed, epoch): Lightning calls ``set_epoch`` before every epoch.
    """

    def __init__(self, sizes: Sequence[int], batch_size: int, probabilities: Sequence[float], steps: int, seed: int):
        if len(sizes) != len(probabilities):
            raise ValueError(f"{len(sizes)} task sizes but {len(probabilities)} probabilities")
        if batch_size < 1 or steps < 1:
            raise ValueError(f"batch_size {batch_size} and steps {steps} must be >= 1")
        self.sizes = [int(n) for n in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self.batch_size, self.steps, self.seed, self.epoch = batch_size, steps, seed, 0
        self.probabilities = np.asarray(probabilities, dtype=np.float64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def tasks(self) -> np.ndarray:
        """The task of every batch of the current epoch, (steps,)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch]))
        return rng.choice(len(self.sizes), size=self.steps, p=self.probabilities)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 1]))
        streams: list[np.ndarray] = [np.empty(0, dtype=np.int64) for _ in self.sizes]
        for t in self.tasks():
            take = min(self.batch_size, self.sizes[t])  # a task smaller than a batch gives all its documents
            while len(streams[t]) < take:  # the task's next pass, in a new order
                streams[t] = np.concatenate([streams[t], rng.permutation(self.sizes[t])])
            batch, streams[t] = streams[t][:take], streams[t][take:]
            yield (self.offsets[t] + batch).tolist()
