"""Optimisers: one for the dense parameters and one for the embedding tables with sparse gradients, as one.

A bag with ``sparse: true`` returns sparse gradients for its piece and n-gram tables; Adam and
AdamW refuse them. ``make_optimizer`` then splits every parameter group into its dense and its
sparse part: the dense part goes to the chosen optimiser, the sparse part to SparseAdam (the
"lazy" Adam: moments updated only for the rows in the batch) or, for ``sgd``, to plain SGD
without momentum, as fastText trains. ``Composite`` steps both; its ``param_groups`` are the
inner groups themselves, so an LR scheduler's changes reach both.
"""
from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Iterable

import torch
from torch import nn


class Composite(torch.optim.Optimizer):
    """Several optimisers over disjoint parameters, stepped together (one closure call per step)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        params = [p for o in optimizers for g in o.param_groups for p in g["params"]]
        super().__init__(params, {})
        self.param_groups = [g for o in optimizers for g in o.param_groups]
        self.state = ChainMap(*(o.state for o in optimizers))  # read by Lightning to move the state to a device

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
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
                     else torch.optim.SparseAdam(sparse_groups, lr=lr))
    return parts[0] if len(parts) == 1 else Composite(parts)
