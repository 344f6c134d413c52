"""Optimisers: one for the dense parameters and one for the embedding tables with sparse gradients, as one.

A bag with ``sparse: true`` returns sparse gradients for its piece and n-gram tables; Adam and
AdamW refuse them. ``make_optimizer`` then splits every parameter group into its dense and its
sparse part: the dense part goes to the chosen optimiser, the sparse part to SparseAdam (the
"lazy" Adam: moments updated only for the rows in the batch) or, for ``sgd``, to plain SGD
without momentum, as fastText trains. ``Composite`` steps both; its ``param_groups`` are the
inner groups themselves, so an LR scheduler's changes reach both.

``RowSparseAdam`` is torch's SparseAdam with the update done by row: gather the batch's rows of
the moments, update them, scatter them back. torch's own builds sparse tensors for each moment
and masks the dense moments with them (``sparse_mask``), which on CPU cost more than the whole
forward and backward pass of a bag; the arithmetic here is the same, operation for operation.
"""
from __future__ import annotations

import math
from collections import ChainMap
from collections.abc import Callable, Iterable

import torch
from torch import nn


def _evaluate(closure: Callable[[], torch.Tensor] | None) -> torch.Tensor | None:
    """The loss from an optimiser step's closure (None without one), with gradients on inside the no-grad step."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class _PartStates(ChainMap):
    """The parts' states seen as one mapping; ``clear`` empties every part (ChainMap's own, only the first)."""

    def clear(self) -> None:
        for state in self.maps:
            state.clear()


class Composite(torch.optim.Optimizer):
    """Several optimisers over disjoint parameters, stepped together (one closure call per step)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        params = [p for o in optimizers for g in o.param_groups for p in g["params"]]
        super().__init__(params, {})
        self.param_groups = [g for o in optimizers for g in o.param_groups]
        self.state = _PartStates(*(o.state for o in optimizers))  # read by Lightning to move the state to a device

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = _evaluate(closure)
        for o in self.optimizers:
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict) -> None:
        for o, s in zip(self.optimizers, state_dict["optimizers"], strict=True):
            o.load_state_dict(s)


class RowSparseAdam(torch.optim.SparseAdam):
    """SparseAdam (the "lazy" Adam: moments and weights change only in the rows of the batch), updated by row.

    Same state (``step``, ``exp_avg``, ``exp_avg_sq``) and same floating-point operations as
    ``torch.optim.SparseAdam``, so its checkpoints and its results are interchangeable with it.
    """

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = _evaluate(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = float(group["lr"]), group["eps"]
            sign = -1.0 if group.get("maximize", False) else 1.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("SparseAdam does not support dense gradients, please consider Adam instead")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                grad = p.grad.coalesce()  # one row per index: the update is not linear in the gradient
                rows, values = grad._indices()[0], grad._values()
                if values.numel() == 0:
                    continue
                if sign < 0:
                    values = -values
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                old_avg = exp_avg.index_select(0, rows)
                old_sq = exp_avg_sq.index_select(0, rows)
                avg = values.sub(old_avg).mul_(1 - beta1).add_(old_avg)  # old + (1 - b) * (new - old)
                sq = values.pow(2).sub_(old_sq).mul_(1 - beta2).add_(old_sq)
                exp_avg.index_copy_(0, rows, avg)
                exp_avg_sq.index_copy_(0, rows, sq)
                step_size = lr * math.sqrt(1 - beta2 ** state["step"]) / (1 - beta1 ** state["step"])
                p.index_add_(0, rows, avg.div_(sq.sqrt_().add_(eps)).mul_(-step_size))
        return loss


def make_optimizer(groups: list[dict], name: str, lr: float, momentum: float, weight_decay: float,
                   sparse: Iterable[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """The optimiser ``name`` (sgd | adam | adamw) over ``groups``; parameters in ``sparse`` get a sparse-aware one.

    Weight decay does not apply to the sparse tables (it would touch every row every step); their
    regularisation is the early stopping and the dropout after pooling.
    """
    sparse_ids = {id(p) for p in sparse}

    def dense_opt(gs: list[dict]) -> torch.optim.Optimizer:
        if name == "sgd":
            return torch.optim.SGD(gs, lr=lr, momentum=momentum, weight_decay=weight_decay)
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(gs, lr=lr, weight_decay=weight_decay)

    if not sparse_ids:
        return dense_opt(groups)
    dense_groups, sparse_groups = [], []
    for g in groups:
        opts = {k: v for k, v in g.items() if k != "params"}
        d = [p for p in g["params"] if id(p) not in sparse_ids]
        s = [p for p in g["params"] if id(p) in sparse_ids]
        if d:
            dense_groups.append({**opts, "params": d})
        if s:
            sparse_groups.append({"lr": opts.get("lr", lr), "params": s})
    parts = [dense_opt(dense_groups)] if dense_groups else []
    if sparse_groups:
        parts.append(torch.optim.SGD(sparse_groups, lr=lr) if name == "sgd"
                     else RowSparseAdam(sparse_groups, lr=lr))
    return parts[0] if len(parts) == 1 else Composite(parts)
