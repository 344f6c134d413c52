"""The LightningModule: loss, penalties, metrics, optimiser and LR schedule around a plain Classifier."""
from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F

from reprotext.models import Classifier, combine, member_cross_entropy
from reprotext.training.optim import make_optimizer
from reprotext.training.settings import FitSettings

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "linear", "cosine")
GD_MODES = ("full", "sgd", "minibatch")


def lr_factor(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """step -> LR multiplier: a linear warmup from 0, then constant, a linear decay to 0 or half a cosine to 0.

    The linear decay as in Devlin et al. 2019 (BERT), the cosine as in Loshchilov & Hutter 2017 without restarts.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of a Classifier, with L1/L2 penalties logged as their own terms.

    Logs per epoch ``<split>/loss`` (the cross-entropy, comparable between train
    and dev), ``<split>/accuracy`` and, when their coefficients are set,
    ``train/l1_penalty`` and ``train/l2_penalty``.
    """

    def __init__(self, model: Classifier, settings: FitSettings):
        super().__init__()
        if settings.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {settings.optimizer!r}")
        if settings.gd_mode not in GD_MODES:
            raise ValueError(f"gd_mode must be one of {', '.join(GD_MODES)}, got {settings.gd_mode!r}")
        self.model = model
        self.settings = settings
        # The penalised weights: every matrix (embeddings, linear, conv, recurrent); not biases or norm scales, and
        # not tables with sparse gradients (a penalty over a whole table would make its gradient dense).
        sparse = {id(p) for p in model.sparse_parameters()}
        self.penalised = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2 and id(p) not in sparse]
        # gd_mode "full": the cross-entropy of a micro-batch is rescaled so that the gradients accumulated over
        # the epoch are those of the mean over the whole training set (set in on_train_start).
        self.ce_scale: float | None = None
        self.penalty_scale = 1.0
        # The training epoch's sum of loss * n, correct predictions and n, kept on the device: one self.log per
        # step costs about as much as a bag model's whole step, so train metrics are logged once, at the last batch.
        self.tally = torch.zeros(3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids)

    def _log(self, name: str, value: torch.Tensor, batch_size: int) -> None:
        self.log(name, value, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True,
                 prog_bar=name.startswith("dev/"))

    def penalty(self) -> torch.Tensor:
        """l1 * sum |w| + l2 * sum w^2 over the penalised weights, each term logged on its own."""
        total = torch.zeros((), device=self.device)
        for name, coef, norm in (("l1", self.settings.l1, lambda w: w.abs().sum()),
                                 ("l2", self.settings.l2, lambda w: w.pow(2).sum())):
            if coef:
                term = coef * torch.stack([norm(w.float()) for w in self.penalised]).sum()
                self.log(f"train/{name}_penalty", term, on_step=False, on_epoch=True, batch_size=1)
                total = total + term
        return total

    def on_train_start(self) -> None:
        if self.settings.gd_mode == "full":
            loader = self.trainer.train_dataloader
            seen = len(loader.sampler) - (len(loader.sampler) % loader.batch_size if loader.drop_last else 0)
            k = self.trainer.accumulate_grad_batches  # Lightning divides every micro-batch loss by k
            self.ce_scale = k / seen
            self.penalty_scale = k / self.trainer.num_training_batches  # the penalty counts once per step

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        ids, y = batch
        members = self.model.member_logits(ids)  # (B, K, C): K = 1 but for an ensemble
        logits = combine(members)  # (B, C)
        ce = member_cross_entropy(members.float(), y)  # each member learns from its own loss
        if batch_idx == 0:
            self.tally = torch.zeros(3, device=ce.device)
        self.tally += torch.stack([ce.detach() * len(y), (logits.argmax(-1) == y).sum(), ce.new_tensor(len(y))])
        if self.trainer.is_last_batch:
            n = self.tally[2]
            self._log("train/loss", self.tally[0] / n, 1)
            self._log("train/accuracy", self.tally[1] / n, 1)
        if self.ce_scale is not None:
            ce = ce * len(y) * self.ce_scale
        if self.settings.l1 or self.settings.l2:
            ce = ce + self.penalty() * self.penalty_scale
        return ce

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        ids, y = batch
        logits = self.model(ids)  # (B, C)
        self._log("dev/loss", F.cross_entropy(logits.float(), y), len(y))
        self._log("dev/accuracy", (logits.argmax(-1) == y).float().mean(), len(y))

    def param_groups(self) -> list[dict]:
        """The optimiser's parameter groups; a subclass may give groups their own ``lr`` (a multiple of ``settings.lr``)."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    def configure_optimizers(self):
        s = self.settings
        optimizer = make_optimizer(self.param_groups(), s.optimizer, s.lr, s.momentum, s.weight_decay,
                                   self.model.sparse_parameters())
        total = int(self.trainer.estimated_stepping_batches)
        factor = lr_factor(s.schedule, round(s.warmup * total), total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
