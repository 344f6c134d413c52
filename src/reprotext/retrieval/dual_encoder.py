"""A DSSM-style dual encoder: the trained encoder fine-tuned for retrieval with a contrastive loss.

Huang et al. 2013 (DSSM) train a query tower and a document tower so that the
cosine of a query and its clicked document beats that of other documents under
a softmax; Henderson et al. 2017 and Karpukhin et al. 2020 (DPR) take the other
documents of the batch as the negatives ("in-batch negatives"). Here one
shared encoder embeds both sides (a siamese dual encoder), starting from the
fine-tuned classifier's encoder (``init: finetuned``: what contrastive training
adds on top of classification) or from the train stage's encoder (``init:
pretrained``: the two fine-tuning objectives side by side), and the pairs are either

- two documents with the same label (the default: a labelled task gives
  (query, relevant document) pairs for free), or
- a user's (query, document) pairs, two text columns of a table.

The loss for a batch of B pairs (q_i, d_i) is the symmetric InfoNCE
cross-entropy over the B x B matrix of cosines / temperature: each q_i must pick
d_i among d_1..d_B, and each d_i must pick q_i. With same-label pairs, another
document of the batch that shares q_i's label is relevant too, so it is taken
out of q_i's negatives (masked), not pushed away.

Model selection: after every epoch the encoder is scored by mAP@100 on the
task's dev split (dev documents query the training documents); the best epoch
is kept. Epoch 0 in the history is the starting encoder, before any step.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reprotext.artifacts import ArtifactKind, load_artifact, save_artifact
from reprotext.errors import DataError
from reprotext.models import Classifier, ModelConfig
from reprotext.retrieval.dense import DenseIndex, encode
from reprotext.retrieval.documents import read_documents
from reprotext.retrieval.qbe import K_MAP, evaluate_scorer
from reprotext.tokenizer import PAD, TokenArray
from reprotext.training.data import collate
from reprotext.training.optim import make_optimizer

log = logging.getLogger(__name__)
CONFIG_FILE, WEIGHTS_FILE = "encoder.json", "encoder.pt"
DUAL_ENCODER = ArtifactKind("dual encoder", WEIGHTS_FILE, CONFIG_FILE, fix="rerun `dvc repro finetune`",
                            made="dual encoder was trained", tokenizer_fix="retrain it or use its own tokenizer")


def contrastive_loss(queries: torch.Tensor, docs: torch.Tensor, temperature: float,
                     labels: torch.Tensor | None = None, negatives: torch.Tensor | None = None,
                     negative_labels: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric in-batch-negatives InfoNCE over the cosines of (B, D) query and document vectors.

    With ``labels`` (B,), pairs (i, j != i) of the same label are masked out of both softmaxes (another query's
    document that is the same document, or of the same class, is not a negative). ``negatives`` (M, D) are extra
    documents (hard negatives, Karpukhin et al. 2020) that every query must rank below its own; those whose
    ``negative_labels`` (M,) equal a query's label are masked for it. They join the query-to-document softmax only.
    """
    q, d = F.normalize(queries, dim=-1), F.normalize(docs, dim=-1)
    b = len(q)
    cand = d if negatives is None else torch.cat([d, F.normalize(negatives, dim=-1)])
    logits = q @ cand.T / temperature  # (B, B + M)
    if labels is not None:
        col = labels if negatives is None else torch.cat([labels, negative_labels])
        same = labels[:, None] == col[None, :]  # (B, B + M)
        idx = torch.arange(b, device=q.device)
        same[idx, idx] = False
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(b, device=q.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits[:, :b].T, target))


def same_label_pairs(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of pairs: every document that has a same-label partner, with a random other one of its label.

    Returns (query indices, document indices), shuffled.
    """
    labels = np.asarray(labels)
    queries, docs = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < 2:
            continue
        # A random partner that is never the document itself: shift by 1..n-1 within a permutation.
        perm = rng.permutation(members)
        shift = rng.integers(1, len(members), size=len(members))
        pos = (np.arange(len(members)) + shift) % len(members)
        queries.append(perm)
        docs.append(perm[pos])
    if not queries:
        raise DataError("no label has two training documents: same-label pairs are impossible; give "
                        "finetune.dual_encoder.pairs_file")
    q, d = np.concatenate(queries), np.concatenate(docs)
    order = rng.permutation(len(q))
    return q[order], d[order]


def _batch(docs: TokenArray, idx: np.ndarray, max_len: int) -> torch.Tensor:
    ids, _ = collate([(np.asarray(docs[int(i)][:max_len]), 0) for i in idx])
    return ids


def _optimizer(encoder: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over the trainable weights; a bag's sparse tables get SparseAdam (training/optim.py)."""
    sparse = encoder.sparse_parameters() if hasattr(encoder, "sparse_parameters") else []
    return make_optimizer([{"params": [p for p in encoder.parameters() if p.requires_grad]}], "adamw", lr, 0.0,
                          weight_decay, sparse)


class _KeepBest:
    """Scores the encoder with ``select`` (higher is better) before training and after every epoch, and keeps
    the best epoch's weights; without ``select`` the last epoch is the best."""

    def __init__(self, encoder: nn.Module, select, history: list[dict[str, float]]):
        self.encoder, self.select = encoder, select
        self.epoch, self.score, self.state = 0, -np.inf, None
        if select is not None:
            self._keep(0, float(select(encoder)))
            history.append({"epoch": 0, "dev/score": self.score})  # the starting encoder, before any step

    def _keep(self, epoch: int, score: float) -> None:
        self.epoch, self.score = epoch, score
        self.state = {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}

    def update(self, epoch: int, row: dict[str, float]) -> None:
        """After ``epoch`` (the encoder in eval mode): score it into ``row`` and keep it if it is the best."""
        if self.select is None:
            self.epoch = epoch
            return
        row["dev/score"] = float(self.select(self.encoder))
        if row["dev/score"] > self.score:
            self._keep(epoch, row["dev/score"])

    def restore(self) -> int:
        """Load the best epoch's weights; returns that epoch."""
        if self.state is not None:
            self.encoder.load_state_dict(self.state)
        self.encoder.eval()
        return self.epoch


def train_dual_encoder(encoder: nn.Module, query_docs: TokenArray, doc_docs: TokenArray | None,
                       labels: np.ndarray | None, *, epochs: int, batch_size: int, lr: float, temperature: float,
                       max_len: int, seed: int, weight_decay: float = 0.0,
                       select=None) -> tuple[list[dict[str, float]], int]:
    """Train ``encoder`` in place with in-batch negatives; returns (history, best epoch).

    Same-label pairs: ``doc_docs`` None and ``labels`` given (pairs drawn anew every epoch from ``query_docs``).
    A user's pairs: ``doc_docs[i]`` is the document of query ``query_docs[i]``, ``labels`` None.
    ``select(encoder) -> float`` (higher is better) is scored before training and after every epoch; the best
    epoch's weights are restored. The history has one row per epoch: epoch, train/loss (mean over its steps)
    and dev/score.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = _optimizer(encoder, lr, weight_decay)
    history: list[dict[str, float]] = []
    best = _KeepBest(encoder, select, history)
    for epoch in range(1, epochs + 1):
        if doc_docs is None:
            q_idx, d_idx = same_label_pairs(labels, rng)
            q_src = d_src = query_docs
        else:
            q_idx = rng.permutation(len(query_docs))
            d_idx = q_idx
            q_src, d_src = query_docs, doc_docs
        encoder.train()
        losses = []
        for s in range(0, len(q_idx) - 1, batch_size):
            qi, di = q_idx[s:s + batch_size], d_idx[s:s + batch_size]
            if len(qi) < 2:  # one pair has no negatives
                continue
            ids_q, ids_d = _batch(q_src, qi, max_len), _batch(d_src, di, max_len)
            # One forward over both sides keeps batch-dependent layers (batch norm) consistent.
            both = encoder(torch.cat([F.pad(ids_q, (0, max(0, ids_d.shape[1] - ids_q.shape[1]))),
                                      F.pad(ids_d, (0, max(0, ids_q.shape[1] - ids_d.shape[1])))]))
            lab = torch.from_numpy(np.asarray(labels)[qi]) if doc_docs is None else None
            loss = contrastive_loss(both[:len(qi)], both[len(qi):], temperature, lab)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        encoder.eval()
        row = {"epoch": epoch, "train/loss": float(np.mean(losses)) if losses else float("nan")}
        best.update(epoch, row)
        log.info("dual encoder epoch %d: loss %.4f%s", epoch, row["train/loss"],
                 f", dev mAP@100 {row['dev/score']:.4f}" if "dev/score" in row else "")
        history.append(row)
    return history, best.restore()


@dataclass
class PairBatch:
    """One epoch of training pairs: token ids of each query and its document, and the document's identity.

    ``keys`` (P,) name the document of each pair (its corpus row): two pairs with the same key share the document,
    so neither is the other's negative. ``negatives`` (P,) are optional hard negatives (token ids; an empty array
    for none) with their own ``negative_keys``.
    """

    queries: list[np.ndarray]
    docs: list[np.ndarray]
    keys: np.ndarray
    negatives: list[np.ndarray] | None = None
    negative_keys: np.ndarray | None = None


def _pad(seqs: list[np.ndarray], max_len: int, width: int | None = None) -> torch.Tensor:
    width = width or max(1, max(min(len(x), max_len) for x in seqs))
    out = np.full((len(seqs), width), PAD, dtype=np.int64)
    for row, ids in enumerate(seqs):
        ids = ids[:max_len]
        out[row, :len(ids)] = ids
    return torch.from_numpy(out)


def train_on_pairs(encoder: nn.Module, epoch_pairs: Callable[[np.random.Generator], PairBatch], *, epochs: int,
                   batch_size: int, lr: float, temperature: float, max_len: int, seed: int,
                   weight_decay: float = 0.0, select: Callable[[nn.Module], float] | None = None,
                   ) -> tuple[list[dict[str, float]], int]:
    """Train ``encoder`` in place on (query, document) pairs with in-batch (and hard) negatives.

    ``epoch_pairs(rng)`` draws one epoch's pairs (self-supervised pairs are sampled anew each epoch). ``select``
    (higher is better) scores the encoder before training and after every epoch; the best epoch's weights are
    restored. Returns (history: epoch, train/loss, dev/score; the best epoch).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = _optimizer(encoder, lr, weight_decay)
    history: list[dict[str, float]] = []
    best = _KeepBest(encoder, select, history)
    for epoch in range(1, epochs + 1):
        pairs = epoch_pairs(rng)
        order = rng.permutation(len(pairs.keys))
        encoder.train()
        losses = []
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            if len(idx) < 2:  # one pair has no in-batch negative
                continue
            sides = [[pairs.queries[i] for i in idx], [pairs.docs[i] for i in idx]]
            neg = [int(i) for i in idx if pairs.negatives is not None and len(pairs.negatives[i])]
            if neg:
                sides.append([pairs.negatives[i] for i in neg])
            width = max(1, max(min(len(x), max_len) for side in sides for x in side))
            # One forward over all sides keeps batch-dependent layers consistent.
            out = encoder(torch.cat([_pad(side, max_len, width) for side in sides]))  # (2B + H, D)
            b = len(idx)
            keys = torch.from_numpy(pairs.keys[idx].astype(np.int64))
            loss = contrastive_loss(out[:b], out[b:2 * b], temperature, keys,
                                    out[2 * b:] if neg else None,
                                    torch.from_numpy(pairs.negative_keys[neg].astype(np.int64)) if neg else None)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        encoder.eval()
        row = {"epoch": epoch, "train/loss": float(np.mean(losses)) if losses else float("nan"), "pairs": len(order)}
        best.update(epoch, row)
        log.info("dual encoder epoch %d: loss %.4f over %d pairs%s", epoch, row["train/loss"], len(order),
                 f", dev {row['dev/score']:.4f}" if "dev/score" in row else "")
        history.append(row)
    return history, best.restore()


def inverse_cloze(doc: np.ndarray, rng: np.random.Generator, span: int, keep_prob: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The inverse cloze task (Lee et al. 2019) on one document's token ids: a random span of ``span`` ids is the
    query; the document is the rest, or (with ``keep_prob``) the whole, so that lexical overlap still counts."""
    n = len(doc)
    if n <= span + 1:
        cut = max(1, n // 2)
        return doc[:cut], doc if rng.random() < keep_prob else doc[cut:]
    start = int(rng.integers(0, n - span + 1))
    query = doc[start:start + span]
    rest = doc if rng.random() < keep_prob else np.concatenate([doc[:start], doc[start + span:]])
    return query, rest


def save_encoder(model: Classifier, directory: Path, info: dict) -> None:
    """The encoder's weights and the model config that rebuilds it (the head is not part of a dual encoder)."""
    save_artifact(directory, DUAL_ENCODER, model.encoder.state_dict(),
                  {"kind": "dual_encoder", "config": asdict(model.config), **info})


def _config(meta: dict) -> ModelConfig:
    cfg = meta["config"]
    return ModelConfig(**{**cfg, "labels": tuple(cfg["labels"])})


def load_encoder(directory: str | Path, tokenizer_sha256: str | None = None) -> tuple[nn.Module, ModelConfig]:
    """The saved dual encoder (in eval mode) and its config; refuse one made with another tokenizer."""
    encoder, meta = load_artifact(directory, DUAL_ENCODER, lambda meta: Classifier(_config(meta)).encoder,
                                  tokenizer_sha256)
    return encoder, _config(meta)


def read_pairs(path: str | Path, query_column: str, document_column: str) -> tuple[list[str], list[str]]:
    """A user's (query, document) text pairs from two columns of a .csv/.tsv/.parquet/.jsonl table."""
    queries = read_documents(path, query_column)["text"].tolist()
    docs = read_documents(path, document_column)["text"].tolist()
    keep = [i for i, (q, d) in enumerate(zip(queries, docs)) if q.strip() and d.strip()]
    if len(keep) < 2:
        raise DataError(f"{path}: {len(keep)} non-empty ({query_column}, {document_column}) pairs; in-batch "
                        "negatives need at least 2")
    return [queries[i] for i in keep], [docs[i] for i in keep]


def dev_map(encoder: nn.Module, queries: TokenArray, query_labels: np.ndarray, docs: TokenArray,
            doc_labels: np.ndarray, max_len: int, center: bool = True) -> float:
    """mAP@100 of ``queries`` against the collection ``docs`` (relevant: the same label)."""
    index = DenseIndex.build(encode(encoder, docs, max_len), center)
    q = encode(encoder, queries, max_len)
    ev = evaluate_scorer(lambda idx: index.scores(q[idx]), len(q), query_labels, doc_labels)
    return ev.result()[f"map_at_{K_MAP}"]


def fit_for_retrieval(pretrained: Classifier, options, train_tokens: TokenArray, train_labels: np.ndarray,
                      select_tokens: TokenArray, select_labels: np.ndarray, score_tokens: TokenArray,
                      score_labels: np.ndarray, baseline: nn.Module, out_dir: Path,
                      tokenizer=None) -> tuple[dict, float]:
    """The finetune stage's dual encoder: start from ``pretrained``'s encoder (``options.init: pretrained``) or
    from ``baseline``, the fine-tuned classifier's encoder (``finetuned``); train on same-label pairs of the
    training split (or ``options.pairs_file``), select the epoch on one half of dev, score on the other half
    against ``baseline``, and save it into ``out_dir``.

    Returns the metrics (mAP@100 on the scoring half of dev, the gain over the classifier encoder, the history)
    and the training wall time in seconds (for MLflow: metrics files hold only what repeats).
    """
    model = Classifier(pretrained.config)
    model.encoder.load_state_dict((baseline if options.init == "finetuned" else pretrained.encoder).state_dict())
    encoder, max_len = model.encoder, pretrained.config.max_len
    if options.pairs_file:
        queries, docs = read_pairs(options.pairs_file, options.query_column, options.document_column)
        q_tokens = TokenArray.from_lists(tokenizer.encode(queries, threads=2))
        d_tokens = TokenArray.from_lists(tokenizer.encode(docs, threads=2))
        pairs, labels = f"columns {options.query_column}, {options.document_column} of {options.pairs_file}", None
    else:
        q_tokens, d_tokens, labels, pairs = train_tokens, None, np.asarray(train_labels), "same_label"

    def select(enc: nn.Module) -> float:
        return dev_map(enc, select_tokens, select_labels, train_tokens, train_labels, max_len)

    start = time.perf_counter()
    history, best_epoch = train_dual_encoder(
        encoder, q_tokens, d_tokens, labels, epochs=options.epochs, batch_size=options.batch_size, lr=options.lr,
        temperature=options.temperature, max_len=max_len, seed=options.seed, select=select)
    seconds = time.perf_counter() - start
    dual = dev_map(encoder, score_tokens, score_labels, train_tokens, train_labels, max_len)
    classifier = dev_map(baseline, score_tokens, score_labels, train_tokens, train_labels, max_len)
    save_encoder(model, out_dir, {"pairs": pairs, "best_epoch": best_epoch, "options": options.model_dump()})
    return {"pairs": pairs, "init": options.init, "best_epoch": best_epoch, "epochs_run": len(history) - 1,
            "history": history,
            "dev": {"map_at_100": dual, "classifier_encoder_map_at_100": classifier,
                    "gain_map_at_100": dual - classifier}}, seconds
