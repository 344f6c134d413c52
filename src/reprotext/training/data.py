"""Token arrays + labels -> padded batches (the DataModule)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from reprotext.errors import DataError
from reprotext.tokenizer import PAD, TokenArray


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


def encode_labels(labels: Sequence[str], known: Sequence[str], where: str) -> list[int]:
    """Label strings -> indices into ``known``; an unknown label is an error naming it."""
    index = {name: i for i, name in enumerate(known)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise DataError(f"{where}: label {unknown[0]!r} is not among the {len(known)} labels the model knows "
                        f"({', '.join(known[:10])}{', ...' if len(known) > 10 else ''})")
    return [index[name] for name in labels]


class TextDataModule(L.LightningDataModule):
    """Train (shuffled with a seeded generator) and dev loaders."""

    def __init__(self, train: TokenDataset, dev: TokenDataset, batch_size: int, seed: int):
        super().__init__()
        self.train_ds, self.dev_ds = train, dev
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True, collate_fn=collate, generator=gen)

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
        frames[split] = pd.read_parquet(path, columns=["label"])["label"].astype(str).tolist()
    known = list(labels) if labels is not None else sorted(set(frames["train"]))
    datasets = [
        TokenDataset(TokenArray.load(tokens_dir / split, tokenizer_sha256),
                     encode_labels(frames[split], known, str(splits_dir / f"{split}.parquet")), max_len)
        for split in ("train", "dev")
    ]
    return datasets[0], datasets[1], known
