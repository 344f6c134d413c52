"""Language-model objectives over piece ids: masking, the causal shift, next-piece windows, sampled softmax.

Targets use ``IGNORE`` (-100, PyTorch's ``ignore_index``) wherever nothing is predicted.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from reprotext.tokenizer import MASK, PAD, SPECIALS

IGNORE = -100
FIRST_REGULAR = len(SPECIALS)  # ids below are pad/unk/bos/eos/[CLS]/[MASK]: never a random replacement


def mask_pieces(ids: torch.Tensor, rate: float, mask_share: float, random_share: float, vocab_size: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption (Devlin et al. 2019): each real piece is chosen with probability ``rate``; a chosen
    piece becomes [MASK] with probability ``mask_share``, a random regular piece with ``random_share``, and stays
    itself otherwise. The model predicts the original piece at every chosen position.

    Args:
        ids: (B, T) piece ids, PAD never chosen.
    Returns:
        inputs (B, T) the corrupted ids, targets (B, T) the original id at chosen positions, IGNORE elsewhere.
    """
    u = torch.rand(ids.shape, generator=generator, device=ids.device)  # (B, T): chosen or not
    chosen = (u < rate) & (ids != PAD)
    v = torch.rand(ids.shape, generator=generator, device=ids.device)  # (B, T): which corruption
    to_mask = chosen & (v < mask_share)
    to_random = chosen & (v >= mask_share) & (v < mask_share + random_share)
    randoms = torch.randint(FIRST_REGULAR, max(vocab_size, FIRST_REGULAR + 1), ids.shape, generator=generator,
                            device=ids.device)
    inputs = torch.where(to_mask, torch.full_like(ids, MASK), torch.where(to_random, randoms, ids))
    return inputs, torch.where(chosen, ids, torch.full_like(ids, IGNORE))


def next_targets(ids: torch.Tensor) -> torch.Tensor:
    """The causal shift: position t's target is piece t+1 (IGNORE after the last, and at padding); (B, T)."""
    out = torch.full_like(ids, IGNORE)
    out[:, :-1] = ids[:, 1:]
    return out.masked_fill(out == PAD, IGNORE)


def previous_targets(ids: torch.Tensor) -> torch.Tensor:
    """The backward LM's shift: position t's target is piece t-1 (IGNORE at t = 0 and at padding); (B, T)."""
    out = torch.full_like(ids, IGNORE)
    out[:, 1:] = ids[:, :-1]
    return out.masked_fill((out == PAD) | (ids == PAD), IGNORE)


def context_windows(ids: torch.Tensor, n: int) -> torch.Tensor:
    """Bengio et al. 2003's contexts: window t holds pieces t-n .. t-1 (PAD before the start); (B, T) -> (B, T, n).

    Window t never holds piece t or anything after it.
    """
    padded = F.pad(ids, (n, 0), value=PAD)  # (B, n+T)
    return padded.unfold(1, n, 1)[:, : ids.shape[1]]  # (B, T, n)


def sampled_softmax_loss(h: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         negatives: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Sampled softmax (Jean et al. 2015): the true piece against K shared sampled ones, logits corrected by
    the log of each piece's expected count K q(w), so the gradient is an unbiased-in-the-limit estimate of the full
    softmax's; a sampled piece equal to the target is removed ("accidental hit").

    Args:
        h: (N, D) output states; targets: (N,) piece ids; weight: (V, D) the (tied) output table; bias: (V,);
        negatives: (K,) ids drawn with replacement from q; log_q: (V,) log of q.
    Returns:
        the mean loss over the N predictions.
    """
    k = negatives.numel()
    true = (h * weight[targets]).sum(-1) + bias[targets] - (math.log(k) + log_q[targets])  # (N,)
    neg = h @ weight[negatives].T + bias[negatives] - (math.log(k) + log_q[negatives])  # (N, K)
    neg = neg.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
    logits = torch.cat([true.unsqueeze(1), neg], 1)  # (N, 1+K); the true piece is class 0
    return F.cross_entropy(logits.float(), torch.zeros_like(targets))


def unigram_log_probs(counts: np.ndarray) -> np.ndarray:
    """Add-one unigram log-probabilities from training piece counts (V,); PAD gets none of the mass."""
    counts = counts.astype(np.float64) + 1.0
    counts[PAD] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def proposal(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """word2vec's negative-sampling distribution: counts^0.75 (Mikolov et al. 2013), never PAD; (V,) sums to 1."""
    q = (counts.astype(np.float64) + 1.0) ** power
    q[PAD] = 0.0
    return q / q.sum()
