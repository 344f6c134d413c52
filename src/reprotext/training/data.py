"""Token arrays + labels -> padded batches (the DataModule)."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from reprotext.data.store import read_frame
from reprotext.errors import DataError
from reprotext.tokenizer import PAD, TokenArray

log = logging.getLogger(__name__)


class TokenDataset(Dataset):
    """Document i: its first ``max_len`` piece ids and its label index."""

    def __init__(self, tokens: TokenArray, labels: Sequence[int], max_len: int):
        if len(tokens) != len(labels):
            raise DataError(f"{len(tokens)} tokenized documents but {len(labels)} labels; rerun `dvc repro tokenize`")
        self.tokens = tokens
        self.labels = np.asarray(labels, dtype=np.int64)
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.asarray(self.tokens[i][: self.max_len]), int(self.labels[i])


def collate(batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad with PAD to the longest document in the batch: ids (B, T), labels (B,)."""
    longest = max(1, max(len(ids) for ids, _ in batch))
    out = np.full((len(batch), longest), PAD, dtype=np.int64)
    for row, (ids, _) in enumerate(batch):
        out[row, : len(ids)] = ids
    return torch.from_numpy(out), torch.tensor([y for _, y in batch], dtype=torch.long)


class IdBatches:
    """The dataset's documents in order as padded (B, T) id batches, built afresh on every pass (not held)."""

    def __init__(self, dataset: TokenDataset, batch_size: int = 256):
        self.dataset, self.batch_size = dataset, batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.dataset), self.batch_size):
            yield collate([self.dataset[i] for i in range(start, min(len(self.dataset), start + self.batch_size))])[0]


def id_batches(dataset: TokenDataset, batch_size: int = 256) -> IdBatches:
    """The dataset's documents in order as padded (B, T) id batches (e.g. to count statistics over); iterable
    more than once, so statistics that need two passes do not hold every batch in memory."""
    return IdBatches(dataset, batch_size)


def encode_labels(labels: Sequence[str], known: Sequence[str], where: str) -> list[int]:
    """Label strings -> indices into ``known``; an unknown label is an error naming it."""
    index = {name: i for i, name in enumerate(known)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{where}: label {unknown[0]!r} is not among the {len(known)} labels the model knows "
                        f"({', '.join(known[:10])}{', ...' if len(known) > 10 else ''})")
    return [index[name] for name in labels]


class EpochShuffleSampler(Sampler[int]):
    """Process ``rank``'s share of a permutation of range(n) that depends only on (seed, epoch).

    Lightning calls ``set_epoch`` before every epoch, so a run resumed at epoch
    e sees the same order as an uninterrupted one (a generator seeded once could
    not give that). With ``world`` processes, rank r takes every world-th index
    (the permutation padded with its own head to a multiple of world), so their
    per-process batches of B / world together form exactly the batches of B that
    one process would draw.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.world)

    def __iter__(self) -> Iterator[int]:
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).tolist()
        order += order[: len(self) * self.world - self.n]  # every process gets as many examples
        return iter(order[self.rank:: self.world])


class TextDataModule(L.LightningDataModule):
    """Train (reshuffled per epoch from the seed, sharded over processes) and dev (whole, on every process) loaders."""

    def __init__(self, train: TokenDataset, dev: TokenDataset, batch_size: int, seed: int, drop_last: bool = False):
        super().__init__()
        self.train_ds, self.dev_ds = train, dev
        self.batch_size, self.seed, self.drop_last = batch_size, seed, drop_last

    def train_dataloader(self) -> DataLoader:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochShuffleSampler(len(self.train_ds), self.seed, rank, world)
        if world > 1:  # each process's own share, in its own log
            log.info("process %d of %d: %d of the %d training documents per epoch, in batches of %d", rank, world,
                     len(sampler), len(self.train_ds), self.batch_size)
        return DataLoader(self.train_ds, batch_size=self.batch_size, sampler=sampler, collate_fn=collate,
                          drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.dev_ds, batch_size=max(self.batch_size, 128), shuffle=False, collate_fn=collate)


def load_task(splits_dir: Path, tokens_dir: Path, tokenizer_sha256: str, max_len: int,
              labels: Sequence[str] | None = None) -> tuple[TokenDataset, TokenDataset, list[str]]:
    """Train and dev datasets of one task; the label list is the sorted train labels unless given."""
    frames = {}
    for split in ("train", "dev"):
        path = splits_dir / f"{split}.parquet"
        if not path.is_file():
            raise DataError(f"{path}: split not found; run `dvc repro split` first")
        frames[split] = read_frame(path, columns=["label"])["label"].astype(str).tolist()
    known = list(labels) if labels is not None else sorted(set(frames["train"]))
    datasets = [
        TokenDataset(TokenArray.load(tokens_dir / split, tokenizer_sha256),
                     encode_labels(frames[split], known, str(splits_dir / f"{split}.parquet")), max_len)
        for split in ("train", "dev")
    ]
    return datasets[0], datasets[1], known
