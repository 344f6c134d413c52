"""Bag of embeddings over pieces and hashed n-grams, fastText-style, with pooling that weighs them.

Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification": a document is the
pooled vectors of its features; hashed word n-grams give the bag some word order at the cost
of one table lookup each. The features (models/ngrams.py) are the pieces themselves, piece
n-grams and words / word n-grams rebuilt from the pieces, all hashed into one bucket table.

Pooling:
- ``mean`` / ``max`` over every feature occurrence (the classic bag);
- ``tfidf``: each distinct feature weighted (1 + log tf) * idf, the document L2-normalised,
  the IDF counted over the training documents (``bag_statistics``): the weighting that makes
  TF-IDF + a linear model hard to beat, learned end to end over dense vectors. With ``nb_weights``
  the IDF is multiplied by the feature's Naive Bayes log-count ratio over the training labels
  (Wang & Manning 2012's NBSVM, one class against the rest): features that tell the classes apart
  weigh more, and words every class uses weigh less, before any training;
- ``attention``: a learned softmax over the document's distinct features (Yang et al. 2016's
  attention pooling, without the recurrent layer), for a bag that chooses its own weights.

With ``sparse`` the lookups return sparse gradients, so an optimiser step touches only the rows
of the features in the batch (the optimiser pairs them with SparseAdam or SGD): a 1M-bucket
table costs no more per step than a 10k one, where dense Adam updates every row every step.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reprotext.errors import ArtifactError
from reprotext.models.ngrams import (class_document_frequency, count_ngrams, document_frequency, nb_ratio,
                                     ngram_features, smooth_idf, weighted_bags)
from reprotext.models.pooling import masked_max, masked_mean
from reprotext.tokenizer import PAD

POOLINGS = ("mean", "max", "tfidf", "attention")


class BagEncoder(nn.Module):
    """Pooled piece and hashed n-gram embeddings; ids (B, T) -> (B, D), D the embedding dim."""

    def __init__(self, embedding: nn.Embedding, pooling: str = "mean", piece_ngrams: int = 1, word_ngrams: int = 0,
                 buckets: int = 0, sparse: bool = False, min_count: int = 0, rows: int = 0, nb_weights: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"bag pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if (piece_ngrams > 1 or word_ngrams > 0) and buckets < 1 and min_count < 1:
            raise ValueError(f"piece_ngrams {piece_ngrams} / word_ngrams {word_ngrams} need buckets > 0 "
                             "to hash the n-grams into, or min_count >= 1 for a counted vocabulary")
        self.embedding = embedding
        self.pooling, self.sparse, self.nb_weights = pooling, sparse, nb_weights
        self.piece_ngrams, self.word_ngrams = piece_ngrams, word_ngrams
        self.out_dim = embedding.embedding_dim
        vocab = embedding.num_embeddings
        grams = piece_ngrams > 1 or word_ngrams > 0
        # Counted (min_count >= 1): one row per n-gram of the training text's vocabulary (``rows`` of them, set
        # from bag_statistics), no collisions, the rarer ones dropped. Hashed: ``buckets`` rows shared by all.
        self.counted = grams and min_count >= 1
        self.hashed = grams and not self.counted and buckets > 0
        self.buckets = buckets if self.hashed else 0
        self.min_count = min_count
        n_rows = rows if self.counted else self.buckets
        self.ngrams: nn.Embedding | None = None
        if self.hashed or self.counted:
            # Zero-initialised: training starts from the plain piece bag and learns what the n-grams add.
            self.ngrams = nn.Embedding(max(n_rows, 1), self.out_dim, sparse=sparse)
            nn.init.zeros_(self.ngrams.weight)
        if pooling == "attention":
            self.query = nn.Parameter(torch.zeros(self.out_dim))  # zeros: attention starts as the plain mean
        # Statistics of the tokenizer and the training text, not learned; saved with the weights.
        self.register_buffer("word_start", torch.zeros(vocab, dtype=torch.bool))
        self.register_buffer("keys", torch.zeros(rows if self.counted else 0, dtype=torch.long))
        self.register_buffer("idf", torch.ones(vocab + n_rows) if pooling == "tfidf" else torch.ones(0))
        self.register_buffer("prepared", torch.tensor(not self.needs_statistics))

    @property
    def needs_statistics(self) -> bool:
        """Word features need the tokenizer's word starts, tfidf pooling the training text's IDF, a counted table its keys."""
        return self.word_ngrams > 0 or self.pooling == "tfidf" or self.counted

    @torch.no_grad()
    def load_statistics(self, stats: dict[str, torch.Tensor]) -> None:
        """Set the buffers that ``bag_statistics`` computed (word starts, n-gram keys, IDF)."""
        for name, value in stats.items():
            buf = getattr(self, name)
            if buf.shape != value.shape:
                raise ArtifactError(f"bag statistics {name!r} of shape {tuple(value.shape)} do not fit the model's "
                                    f"{tuple(buf.shape)}; compute them with the model's own tokenizer and options")
            buf.copy_(value)
        self.prepared.fill_(True)

    def features(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, K) feature ids of every position and their (B, T, K) validity."""
        if not bool(self.prepared):
            raise ArtifactError("this bag model has word n-grams or tfidf pooling but no statistics: call "
                                "load_statistics(bag_statistics(...)) with its tokenizer and training text first")
        return ngram_features(ids, self.word_start, self.piece_ngrams, self.word_ngrams, self.buckets,
                              self.keys if self.counted else None)

    def _lookup(self, f: torch.Tensor) -> torch.Tensor:
        """Vectors of feature ids f (N,) -> (N, D): pieces from the embedding, n-grams from the bucket table."""
        vocab = self.embedding.num_embeddings
        out = F.embedding(f.clamp(max=vocab - 1), self.embedding.weight, sparse=self.sparse)
        if self.ngrams is not None:
            hashed = f >= vocab
            grams = F.embedding((f - vocab).clamp(min=0), self.ngrams.weight, sparse=self.sparse)
            out = torch.where(hashed.unsqueeze(1), grams, out)
        return out

    def _bag(self, f: torch.Tensor, w: torch.Tensor, d: torch.Tensor, n_docs: int) -> torch.Tensor:
        """Sum over each document's features of w * vector: (B, D); one EmbeddingBag per table."""
        vocab = self.embedding.num_embeddings
        out = torch.zeros(n_docs, self.out_dim, device=w.device, dtype=self.embedding.weight.dtype)
        tables = [(f < vocab, self.embedding.weight, 0)]
        if self.ngrams is not None:
            tables.append((f >= vocab, self.ngrams.weight, vocab))
        for sel, weight, base in tables:
            if not bool(sel.any()):
                continue
            docs = d[sel]  # sorted: weighted_bags orders by document
            offsets = torch.searchsorted(docs, torch.arange(n_docs, device=docs.device))
            out = out + F.embedding_bag(f[sel] - base, weight, offsets, mode="sum", per_sample_weights=w[sel],
                                        sparse=self.sparse)
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B = ids.shape[0]
        if self.pooling in ("mean", "max") and self.ngrams is None and not self.sparse:
            mask = ids != PAD  # (B, T): the plain piece bag, one batched reduction
            x = self.embedding(ids)  # (B, T, D)
            return masked_mean(x, mask) if self.pooling == "mean" else masked_max(x, mask)
        feats, mask = self.features(ids)  # (B, T, K)
        if self.pooling == "tfidf":
            f, w, d = weighted_bags(feats, mask, self.idf)
            return self._bag(f, w, d, B)  # (B, D)
        if self.pooling == "mean":
            f, w, d = weighted_bags(feats, mask, None, sublinear=False)  # w: tf, L2-normalised; make it tf / total
            tf_sum = torch.zeros(B, device=w.device).index_add_(0, d, w)
            return self._bag(f, w / tf_sum.clamp(min=1e-12)[d], d, B)  # (B, D)
        # max and attention need each occurrence's vector: (N, D) over the valid positions.
        flat = feats[mask]  # (N,)
        d = torch.arange(B, device=ids.device).view(B, 1, 1).expand_as(feats)[mask]  # (N,)
        x = self._lookup(flat)  # (N, D)
        if self.pooling == "max":
            out = torch.full((B, self.out_dim), float("-inf"), device=x.device, dtype=x.dtype)
            out = out.scatter_reduce(0, d.unsqueeze(1).expand_as(x), x, reduce="amax", include_self=True)
            return torch.where(torch.isinf(out), torch.zeros_like(out), out)  # an empty document pools to zeros
        scores = x @ self.query  # (N,)
        top = torch.full((B,), float("-inf"), device=x.device).scatter_reduce(0, d, scores, reduce="amax")
        e = torch.exp(scores - top[d])  # (N,)
        z = torch.zeros(B, device=x.device).index_add_(0, d, e)
        a = e / z[d]  # softmax within each document
        return torch.zeros(B, self.out_dim, device=x.device, dtype=x.dtype).index_add_(0, d, a.unsqueeze(1) * x)

    def sparse_parameters(self) -> list[nn.Parameter]:
        """The tables whose gradients are sparse (empty unless ``sparse``)."""
        if not self.sparse:
            return []
        return [self.embedding.weight] + ([self.ngrams.weight] if self.ngrams is not None else [])


def bag_statistics(options: dict, pieces: list[str], documents: Iterable[torch.Tensor],
                   labels: Sequence[int] | None = None, n_classes: int = 0) -> tuple[dict, dict]:
    """What a bag with ``options`` needs from its tokenizer and training text, before it is built.

    Returns (the options completed with the table size a counted vocabulary decides, the buffers for
    ``BagEncoder.load_statistics``): the word-start flags of the pieces; with ``min_count`` >= 1 the
    sorted hashes of the n-grams in at least that many documents; with tfidf pooling the smoothed IDF
    of every feature (scikit-learn's), with ``nb_weights`` times its Naive Bayes ratio over ``labels``
    (class indices < ``n_classes``, one per document). ``documents``: batches of (B, T) piece ids of the
    training split, in the order of ``labels``.
    """
    pooling, piece_n, word_n = options.get("pooling", "mean"), options.get("piece_ngrams", 1), options.get("word_ngrams", 0)
    buckets, min_count = options.get("buckets", 0), options.get("min_count", 0)
    nb = bool(options.get("nb_weights")) and pooling == "tfidf"
    if nb:
        if labels is None or n_classes < 1:
            raise ValueError("bag nb_weights need the training documents' labels")
        if iter(documents) is documents:  # a one-pass iterator: keep its batches for the second pass
            documents = list(documents)
    ws = word_starts(pieces)
    stats: dict[str, torch.Tensor] = {"word_start": ws}
    grams = piece_n > 1 or word_n > 0
    if grams and min_count >= 1:
        piece_df, hashes, df, n_docs = count_ngrams(documents, ws, piece_n, word_n)
        keep = df >= min_count
        stats["keys"] = hashes[keep]  # sorted: torch.unique sorts
        options = {**options, "rows": int(keep.sum())}
        if pooling == "tfidf":
            stats["idf"] = smooth_idf(torch.cat([piece_df, df[keep]]), n_docs)
    elif pooling == "tfidf":
        df, n_docs = document_frequency(documents, ws, piece_n, word_n, buckets)
        stats["idf"] = smooth_idf(df, n_docs)
    if nb:
        counted = grams and min_count >= 1
        class_df = class_document_frequency(documents, labels, n_classes, stats["idf"].numel(), ws, piece_n, word_n,
                                            0 if counted else buckets, stats["keys"] if counted else None)
        stats["idf"] = stats["idf"] * nb_ratio(class_df)
    return options, stats


def word_starts(pieces: list[str], specials: int = 6) -> torch.Tensor:
    """(V,) bool: pieces that start a word (sentencepiece's U+2581 prefix) and the special pieces."""
    return torch.tensor([i < specials or p.startswith("\u2581") for i, p in enumerate(pieces)], dtype=torch.bool)
