"""The LightningModule: loss, metrics and optimizer around a plain Classifier."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from reprotext.models import Classifier


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of a Classifier; logs ``<split>/loss`` and ``<split>/accuracy`` per epoch."""

    def __init__(self, model: Classifier, lr: float, weight_decay: float = 0.0):
        super().__init__()
        self.model = model
        self.lr, self.weight_decay = lr, weight_decay

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        ids, y = batch
        logits = self.model(ids)  # (B, C)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y), prog_bar=split == "dev")
        self.log(f"{split}/accuracy", acc, on_step=False, on_epoch=True, batch_size=len(y), prog_bar=split == "dev")
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "dev")

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
