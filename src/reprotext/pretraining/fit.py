"""Pretrain a language model on a token budget: packed sequences, AdamW with warmup + cosine, dev perplexity.

The training text is one stream of pieces (the documents back to back) cut into ``seq_len``-piece sequences,
so no step is spent on padding. An epoch is ``max_tokens / epochs`` tokens of a seeded shuffle of those
sequences (the next epoch continues the shuffle, reshuffling when it runs out): the budget, not the corpus,
sets the cost, and dev perplexity is measured on the same held-out targets after every epoch.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reprotext.config import PretrainConfig
from reprotext.errors import ConfigError, DataError
from reprotext.pretraining.lm import LanguageModel
from reprotext.pretraining.objectives import IGNORE, proposal, sampled_softmax_loss, unigram_log_probs
from reprotext.tokenizer import PAD, TokenArray

log = logging.getLogger(__name__)


def pack(arrays: Sequence[TokenArray], seq_len: int, max_tokens: int | None = None) -> np.ndarray:
    """The documents of ``arrays`` back to back, cut into rows of ``seq_len`` (the last one PAD-filled); (S, seq_len).

    With ``max_tokens``, only the stream's first ``max_tokens`` pieces.
    """
    stream = np.concatenate([np.asarray(a.ids, dtype=np.int64) for a in arrays]) if arrays else np.zeros(0, np.int64)
    if max_tokens is not None:
        stream = stream[:max_tokens]
    if not len(stream):
        raise DataError("no text to pretrain on: the token sets are empty; check the train splits")
    rows = math.ceil(len(stream) / seq_len)
    out = np.full(rows * seq_len, PAD, dtype=np.int64)
    out[: len(stream)] = stream
    return out.reshape(rows, seq_len)


def device_for(accelerator: str) -> torch.device:
    """cpu, gpu (CUDA, an error without one) or auto (CUDA when present)."""
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError("pretrain.accelerator gpu but torch sees no CUDA device; use cpu or auto")
    return torch.device("cuda" if accelerator in ("gpu", "auto") and torch.cuda.is_available() else "cpu")


@dataclass
class PretrainResult:
    """Per-epoch history (``dev/perplexity`` etc.), the unigram baseline on the same dev targets, and the cost."""

    history: list[dict[str, float]]
    unigram_perplexity: float
    dev_targets: int
    train_tokens: int
    steps: int
    seconds: float  # training only, evaluation excluded

    @property
    def tokens_per_second(self) -> float:
        return self.train_tokens / max(self.seconds, 1e-9)


def _loss(lm: LanguageModel, outputs, negatives: torch.Tensor | None, log_q: torch.Tensor | None) -> torch.Tensor:
    """The mean cross-entropy over every predicted position of every direction."""
    hs, ts = [], []
    for h, targets in outputs:
        keep = targets != IGNORE
        hs.append(h[keep])
        ts.append(targets[keep])
    h, targets = torch.cat(hs), torch.cat(ts)  # (N, D), (N,)
    if negatives is None:
        return F.cross_entropy(lm.output.logits(h).float(), targets)
    return sampled_softmax_loss(h, targets, lm.output.weight, lm.output.bias, negatives, log_q)


@torch.no_grad()
def evaluate(lm: LanguageModel, dev: np.ndarray, batch_size: int, seed: int, device: torch.device,
             autocast: Callable[[], contextlib.AbstractContextManager]) -> tuple[float, int, np.ndarray]:
    """Full-softmax NLL summed over the dev targets (the masking seeded, so every epoch sees the same ones).

    Returns (total NLL in nats, number of targets, the target ids).
    """
    lm.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count, seen = 0.0, 0, []
    for start in range(0, len(dev), batch_size):
        ids = torch.from_numpy(dev[start:start + batch_size]).to(device)
        with autocast():
            for h, targets in lm.outputs(ids, generator):
                keep = targets != IGNORE
                logits = lm.output.logits(h[keep]).float()
                total += float(F.cross_entropy(logits, targets[keep], reduction="sum"))
                count += int(keep.sum())
                seen.append(targets[keep].cpu().numpy())
    lm.train()
    return total, count, np.concatenate(seen) if seen else np.zeros(0, np.int64)


def pretrain(lm: LanguageModel, train: np.ndarray, dev: np.ndarray, cfg: PretrainConfig,
             on_epoch: Callable[[dict[str, float]], None] | None = None) -> PretrainResult:
    """Train ``lm`` in place on the packed ``train`` rows for ``cfg.max_tokens`` tokens; score ``dev`` each epoch.

    Args:
        train, dev: (S, seq_len) packed piece ids (see :func:`pack`).
        on_epoch: called with each epoch's history row (e.g. to log it to MLflow).
    Returns:
        the history; ``lm`` ends on the CPU in eval mode.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = device_for(cfg.accelerator)
    bf16 = cfg.precision == "bf16-mixed"

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    torch.manual_seed(cfg.seed)
    lm.to(device).train()
    vocab = lm.output.weight.shape[0]
    counts = np.bincount(train[train != PAD].ravel(), minlength=vocab)[:vocab]
    unigram = unigram_log_probs(counts)
    with torch.no_grad():  # the output bias starts as the unigram log-probabilities: the LM starts near unigram
        lm.output.bias.copy_(torch.from_numpy(np.maximum(unigram, -30.0)).float())
    log_q = torch.from_numpy(np.log(np.maximum(proposal(counts), 1e-30))).float().to(device)
    q_cpu = torch.from_numpy(proposal(counts)).float()
    sample_negatives = cfg.negatives > 0 and lm.objective != "masked_lm"  # an MLM predicts 15%: full softmax is cheap

    rows_per_epoch = max(1, cfg.max_tokens // cfg.epochs // cfg.seq_len)
    steps_per_epoch = math.ceil(rows_per_epoch / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    decay = [p for n, p in lm.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in lm.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    warmup = max(1, round(cfg.warmup * total_steps))

    def lr_at(step: int) -> float:  # linear warmup, then cosine down to 10% of the peak
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    rng = np.random.default_rng(cfg.seed)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sampler = torch.Generator().manual_seed(cfg.seed + 1)
    order, cursor = rng.permutation(len(train)), 0
    history: list[dict[str, float]] = []
    seconds, tokens, step, dev_seen = 0.0, 0, 0, np.zeros(0, np.int64)
    for epoch in range(cfg.epochs):
        start, loss_sum = time.perf_counter(), 0.0
        for _ in range(steps_per_epoch):
            if cursor + cfg.batch_size > len(order):
                order, cursor = np.concatenate([order[cursor:], rng.permutation(len(train))]), 0
            rows = train[order[cursor:cursor + cfg.batch_size]]
            cursor += cfg.batch_size
            ids = torch.from_numpy(rows).to(device)
            negatives = torch.multinomial(q_cpu, cfg.negatives, True, generator=sampler).to(device) \
                if sample_negatives else None
            with autocast():
                loss = _loss(lm, lm.outputs(ids, generator), negatives, log_q)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(lm.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            loss_sum += float(loss.detach())
            tokens += int((rows != PAD).sum())
            step += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        nll, n, dev_seen = evaluate(lm, dev, max(cfg.batch_size, 32), cfg.seed + 2, device, autocast)
        if not math.isfinite(nll) or not math.isfinite(loss_sum):
            raise ConfigError(f"pretraining diverged in epoch {epoch} (dev NLL {nll}); lower pretrain.lr")
        row = {"epoch": epoch, "train/loss": loss_sum / steps_per_epoch, "dev/nll": nll / max(n, 1),
               "dev/perplexity": math.exp(nll / max(n, 1)), "train/tokens": tokens, "train/lr": sched.get_last_lr()[0],
               "throughput/tokens_per_second": tokens / max(seconds, 1e-9)}
        history.append(row)
        log.info("epoch %d: train loss %.3f, dev perplexity %.1f, %.0f tokens/s", epoch, row["train/loss"],
                 row["dev/perplexity"], row["throughput/tokens_per_second"])
        if on_epoch is not None:
            on_epoch(row)
    lm.cpu().eval()
    unigram_ppl = math.exp(-float(unigram[dev_seen].mean())) if len(dev_seen) else float("nan")
    return PretrainResult(history, unigram_ppl, len(dev_seen), tokens, step, seconds)
