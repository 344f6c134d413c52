"""Resume state: where a killed training picks up again, and when it must not.

The directory holds ``last.ckpt`` (Lightning's full training state: weights,
optimiser and scheduler, loop counters, early-stopping and history state) and
``fingerprint``: a hash of everything the run depends on (settings, model
config, initial weights, data). A checkpoint whose fingerprint does not match
belongs to another run and is discarded, so changing a param never resumes a
stale run. Checkpoints are read with ``torch.load(weights_only=True)``: tensors
and plain containers only, no arbitrary pickle.
"""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import shutil
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from reprotext.errors import ArtifactError
from reprotext.io import atomic_file
from reprotext.models import Classifier
from reprotext.training.data import TokenDataset
from reprotext.training.settings import FitSettings

log = logging.getLogger(__name__)
CHECKPOINT, FINGERPRINT = "last.ckpt", "fingerprint"


def fingerprint(model: Classifier, train: TokenDataset, dev: TokenDataset, settings: FitSettings) -> str:
    """sha256 of the settings, the model config, the initial weights and the train/dev ids and labels."""
    h = hashlib.sha256()
    knobs = {k: v for k, v in asdict(settings).items() if k != "progress_bar"}
    h.update(json.dumps({"settings": knobs, "model": asdict(model.config)}, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    for ds in (train, dev):
        for array in (ds.tokens.ids, ds.tokens.offsets, ds.labels, np.array([ds.max_len])):
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _epochs_done(path: Path, model: Classifier) -> int | None:
    """Epochs completed by the checkpoint at ``path``; None when it is unreadable or holds other weights."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state, epoch = ckpt["state_dict"], int(ckpt["epoch"])
    except (OSError, RuntimeError, EOFError, KeyError, IndexError, ValueError, pickle.UnpicklingError) as exc:
        log.warning("%s: unreadable resume checkpoint (%s); starting afresh", path, exc.__class__.__name__)
        return None
    expected = {f"model.{k}": v.shape for k, v in model.state_dict().items()}
    if {k: v.shape for k, v in state.items()} != expected:
        log.warning("%s: resume checkpoint holds other weights; starting afresh", path)
        return None
    return epoch + 1


def prepare(directory: Path, run_fingerprint: str, model: Classifier) -> tuple[Path, int] | None:
    """(checkpoint, epochs it completed) to resume from, or None; rank 0 clears stale state and stamps this run."""
    ckpt, stamp = directory / CHECKPOINT, directory / FINGERPRINT
    if stamp.is_file() and stamp.read_text() == run_fingerprint and ckpt.is_file():
        done = _epochs_done(ckpt, model)
        if done is not None:
            return ckpt, done
    if rank_zero_only.rank == 0:  # DDP workers re-run the script; only rank 0 touches the directory
        if directory.exists():
            log.info("%s: resume state of another run; discarding it", directory)
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        with atomic_file(stamp) as tmp:
            tmp.write_text(run_fingerprint)
    return None


class SameStart(L.Callback):
    """Under DDP, stops every process before any state is restored unless all resume from the same epoch.

    Each process reads the resume directory itself; on several nodes without a
    shared filesystem only rank 0's node holds the checkpoint, and processes
    starting at different epochs would wait for each other forever.
    """

    def __init__(self, directory: Path, epochs_done: int):
        self.directory, self.epochs_done = directory, epochs_done

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        starts = trainer.strategy.all_gather(torch.tensor(self.epochs_done)).tolist()
        if len(set(starts)) > 1:
            seen = ", ".join(f"rank {r}: {f'after epoch {e - 1}' if e else 'afresh'}" for r, e in enumerate(starts))
            raise ArtifactError(f"{self.directory}: the processes would start from different epochs ({seen}); on "
                                "several nodes the resume directory must be one that every node shares, "
                                "or delete it on every node to start afresh")
