"""Hashed piece and word n-grams of a batch of piece ids, computed on the fly (fastText's features).

Joulin et al. 2017 hash word n-grams into a fixed number of buckets; Bojanowski et al. 2017
add subword (character) n-grams. Here the text is already BPE pieces, so a document yields:

- its pieces (ids ``[0, V)``, the piece embedding table);
- piece n-grams, n = 2..``piece_n`` (adjacent pieces, across word boundaries);
- words, rebuilt from the pieces (a piece that starts with U+2581 starts a word) and hashed,
  and word n-grams, n = 2..``word_n``;

every hashed feature an id in ``[V, V + buckets)`` (the bucket table). The hash is a fixed
polynomial over the piece ids in int64 arithmetic (wrapping), so the same n-gram lands in the
same bucket in every process, on every machine, with no Python ``hash()`` seed involved.
Everything is vectorised over the (B, T) batch: the features live inside the model, and an
exported model takes plain piece ids.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from reprotext.tokenizer import PAD

# Odd 63-bit multipliers (splitmix64 constants and digits of pi), one per position in a word or an n-gram.
_MULT = (0x1F3D5B79A2C4E6F1, 0x2545F4914F6CDD1D, 0x3243F6A8885A308D, 0x13198A2E03707345,
         0x24BE5E0E9C2B8D31, 0x452821E638D01377, 0x1BE5466CF34E90C7, 0x0C0AC29B7C97C50D)
# Pieces past this position in a word reuse the last multiplier (words of 8+ pieces are rare and still hash).
_MAX_WORD_PIECES = len(_MULT)
_SALT_PIECE, _SALT_WORD = 0x5BD1E995, 0x27D4EB2F


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A cheap avalanche step (xorshift-multiply) so nearby inputs spread over the buckets; int64 in, int64 out."""
    h = h ^ (h >> 29)
    h = h * 0x0BF58476D1CE4E5B  # wraps in int64: two's complement, deterministic
    return h ^ (h >> 32)


def ngram_hashes(ids: torch.Tensor, word_start: torch.Tensor, piece_n: int,
                 word_n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """64-bit hashes of the n-gram features ending at every position, and their validity: (B, T, K') each.

    Args:
        ids: (B, T) piece ids, right-padded with PAD.
        word_start: (V,) bool, True for pieces that start a word (and for special pieces).
        piece_n: the longest piece n-gram (1 = no piece n-grams).
        word_n: the longest word n-gram (0 = no word features, 1 = words, 2 = words and word bigrams, ...).

    K' = (piece_n - 1) + word_n: piece n-grams 2..piece_n (ending at this position), then word
    n-grams 1..word_n (emitted at the last piece of the n-th word, so each counts once).
    """
    B, T = ids.shape
    valid = ids != PAD  # (B, T)
    hashes, masks = [], []
    x = ids.long() + 1  # (B, T); +1 so that id 0 still moves the hash

    # Piece n-grams ending at t: sum_j x[t-j] * MULT[j], salted by n.
    h = x * _MULT[0]
    for n in range(2, piece_n + 1):
        shifted = torch.zeros_like(x)
        shifted[:, n - 1:] = x[:, : T - n + 1]
        h = h + shifted * _MULT[(n - 1) % len(_MULT)]
        ok = torch.zeros_like(valid)
        ok[:, n - 1:] = valid[:, n - 1:] & valid[:, : T - n + 1]
        hashes.append(_mix(h + _SALT_PIECE * n))
        masks.append(ok)

    if word_n >= 1:
        pos = torch.arange(T, device=ids.device).expand(B, T)  # (B, T)
        starts = word_start[ids] | (pos == 0)  # (B, T) a piece that opens a word
        # Start position of the word each position belongs to, and the position within it.
        start_pos = torch.where(starts, pos, torch.zeros_like(pos)).cummax(1).values  # (B, T)
        within = (pos - start_pos).clamp(max=_MAX_WORD_PIECES - 1)
        mult = torch.tensor(_MULT, device=ids.device)[within]  # (B, T)
        c = torch.cumsum(x * mult, 1)  # (B, T) wrapping prefix sums
        before = torch.where(start_pos > 0, c.gather(1, (start_pos - 1).clamp(min=0)), torch.zeros_like(c))
        word_hash = c - before  # (B, T): hash of the word's pieces up to t; complete at its last piece
        nxt_start = torch.ones_like(starts)
        nxt_start[:, :-1] = starts[:, 1:] | ~valid[:, 1:]
        is_end = valid & nxt_start  # (B, T) the last piece of a word
        hw = word_hash.clone()
        prev_end = start_pos - 1  # (B, T) last piece of the previous word (-1: none)
        have = torch.ones_like(valid)
        for n in range(1, word_n + 1):
            if n > 1:
                ok_prev = prev_end >= 0
                pe = prev_end.clamp(min=0)
                hw = hw + word_hash.gather(1, pe) * _MULT[(n - 1) % len(_MULT)]
                have = have & ok_prev
                prev_end = torch.where(ok_prev, start_pos.gather(1, pe) - 1, torch.full_like(pe, -1))
            hashes.append(_mix(hw + _SALT_WORD * n))
            masks.append(is_end & have)
    if not hashes:
        return ids.new_zeros(B, T, 0, dtype=torch.long), valid.new_zeros(B, T, 0)
    return torch.stack(hashes, -1), torch.stack(masks, -1)  # (B, T, K')


def ngram_features(ids: torch.Tensor, word_start: torch.Tensor, piece_n: int, word_n: int, buckets: int = 0,
                   keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature ids and their validity of every position: (B, T, K) long and (B, T, K) bool.

    Feature k = 0 is the piece itself (id < V); the n-gram features of ``ngram_hashes`` follow, each
    mapped to a row V + r of the n-gram table: with ``keys`` (the sorted hashes of a counted n-gram
    vocabulary) r is the hash's index there and an n-gram outside it is dropped (masked); without,
    r = hash mod ``buckets`` (the hashing trick, collisions and all).
    """
    V = word_start.numel()
    valid = ids != PAD  # (B, T)
    if piece_n <= 1 and word_n <= 0 or (keys is None and buckets <= 0):
        return ids.unsqueeze(-1), valid.unsqueeze(-1)
    h, m = ngram_hashes(ids, word_start, piece_n, word_n)  # (B, T, K')
    if keys is None:
        rows = torch.remainder(h, buckets)  # non-negative for a positive divisor
    elif keys.numel() == 0:
        rows, m = torch.zeros_like(h), torch.zeros_like(m)
    else:
        rows = torch.searchsorted(keys, h).clamp(max=keys.numel() - 1)
        m = m & (keys[rows] == h)
    return torch.cat([ids.unsqueeze(-1), V + rows], -1), torch.cat([valid.unsqueeze(-1), m], -1)


def _distinct_per_document(doc: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``h`` with each (document, value) pair once: sorted by value, then stably by document, neighbours compared.

    Two 1-D sorts: on CPU about ten times faster than ``torch.unique(..., dim=1)`` over the stacked pairs.
    """
    order = torch.argsort(h, stable=True)
    order = order[torch.argsort(doc[order], stable=True)]
    d, v = doc[order], h[order]
    first = torch.ones_like(v, dtype=torch.bool)
    first[1:] = (d[1:] != d[:-1]) | (v[1:] != v[:-1])
    return v[first]


def count_ngrams(batches: Iterable[torch.Tensor], word_start: torch.Tensor, piece_n: int,
                 word_n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Document frequencies over ``batches`` of (B, T) ids: (piece df (V,), n-gram hashes (H,) sorted, their df (H,), N)."""
    V = word_start.numel()
    piece_df = torch.zeros(V)
    seen: list[torch.Tensor] = []
    n_docs = 0
    for ids in batches:
        B, T = ids.shape
        docs = torch.arange(B).unsqueeze(1).expand(B, T)
        valid = ids != PAD
        pairs = torch.unique(docs[valid] * V + ids[valid].long())
        piece_df.index_add_(0, pairs % V, torch.ones(pairs.numel()))
        h, m = ngram_hashes(ids, word_start, piece_n, word_n)
        if h.shape[-1]:
            seen.append(_distinct_per_document(docs.unsqueeze(-1).expand_as(h)[m], h[m]))
        n_docs += B
    hashes, df = torch.unique(torch.cat(seen) if seen else torch.zeros(0, dtype=torch.long), return_counts=True)
    return piece_df, hashes, df.float(), n_docs


def weighted_bags(feats: torch.Tensor, mask: torch.Tensor, idf: torch.Tensor | None,
                  sublinear: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each document's distinct features with TF-IDF weights, L2-normalised per document.

    Returns (features (N,), weights (N,), document index (N,)), N distinct (document, feature)
    pairs. Weight = (1 + log tf) * idf (or tf * idf), then divided by the document's L2 norm:
    the vector scikit-learn's ``TfidfVectorizer(sublinear_tf=True)`` gives, over hashed features.
    """
    B = feats.shape[0]
    flat = feats.reshape(B, -1)
    keep = mask.reshape(B, -1)
    doc = torch.arange(B, device=feats.device).unsqueeze(1).expand_as(flat)[keep]  # (M,)
    f = flat[keep]  # (M,)
    width = int(f.max().item()) + 1 if f.numel() else 1
    keys, counts = torch.unique(doc * width + f, return_counts=True)  # sorted by document, then feature
    d, f = keys // width, keys % width
    tf = counts.float()
    w = (1.0 + torch.log(tf)) if sublinear else tf
    if idf is not None:
        w = w * idf[f]
    norm = torch.zeros(B, device=w.device).index_add_(0, d, w * w).sqrt().clamp(min=1e-12)
    return f, w / norm[d], d


def document_frequency(batches: Iterable[torch.Tensor], word_start: torch.Tensor, piece_n: int, word_n: int,
                       buckets: int) -> tuple[torch.Tensor, int]:
    """Document frequency of every hashed feature id over ``batches`` of (B, T) piece ids: (V + buckets,), and N."""
    V = word_start.numel()
    df = torch.zeros(V + (buckets if buckets > 0 and (piece_n > 1 or word_n > 0) else 0))
    n_docs = 0
    for ids in batches:
        feats, mask = ngram_features(ids, word_start, piece_n, word_n, buckets)
        f, _, _ = weighted_bags(feats, mask, None)
        df.index_add_(0, f, torch.ones_like(f, dtype=df.dtype))
        n_docs += ids.shape[0]
    return df, n_docs


_MERGE_PAIRS = 1 << 20  # class_document_frequency folds its pending (class, feature) keys into counts past this


def class_document_frequency(batches: Iterable[torch.Tensor], labels: Sequence[int], n_classes: int, n_features: int,
                             word_start: torch.Tensor, piece_n: int, word_n: int, buckets: int = 0,
                             keys: torch.Tensor | None = None) -> torch.Tensor:
    """(C, F) document frequency of every feature id in the documents of each class, a sparse COO tensor.

    ``batches``: (B, T) piece ids of the documents in order, ``labels`` their class indices; the features are
    ``ngram_features``' (pieces, then the counted ``keys`` or the ``buckets``). Sparse, because a dense (C, F)
    table of a corpus with many classes and millions of n-grams would not fit in memory (1,000 classes x
    3M n-grams: 12 GB); it holds only the (class, feature) pairs that occur.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    pairs, counts = torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.float64)
    pending: list[torch.Tensor] = []
    start = 0

    def merge() -> tuple[torch.Tensor, torch.Tensor]:
        keys_ = torch.cat([pairs, *pending])
        weights = torch.cat([counts, torch.ones(sum(p.numel() for p in pending), dtype=torch.float64)])
        merged, inverse = torch.unique(keys_, return_inverse=True)
        return merged, torch.zeros(merged.numel(), dtype=torch.float64).index_add_(0, inverse, weights)

    for ids in batches:
        y = labels[start:start + ids.shape[0]]
        if len(y) != ids.shape[0]:
            raise ValueError(f"{len(labels)} labels for more documents than that: one label per document")
        f, _, d = weighted_bags(*ngram_features(ids, word_start, piece_n, word_n, buckets, keys), None)
        pending.append(y[d] * n_features + f)  # each (document, feature) once: its class and feature as one key
        start += ids.shape[0]
        if sum(p.numel() for p in pending) > 4 * max(pairs.numel(), _MERGE_PAIRS):  # memory: the distinct pairs
            pairs, counts = merge()
            pending = []
    if start != len(labels):
        raise ValueError(f"{len(labels)} labels for {start} documents")
    pairs, counts = merge()
    return torch.sparse_coo_tensor(torch.stack([pairs // n_features, pairs % n_features]), counts,
                                   (n_classes, n_features), is_coalesced=True, check_invariants=True)


def nb_ratio(class_df: torch.Tensor, alpha: float = 1.0, chunk: int = 1 << 24) -> torch.Tensor:
    """(F,) how strongly each feature tells a class from the others: max over classes c of |r_c|, with
    r_c = log((a + df_c) / |a + df_c|_1) - log((a + df_not_c) / |a + df_not_c|_1) the Naive Bayes log-count
    ratio of Wang & Manning 2012 (NBSVM), one class against the rest. Two classes: NBSVM's |r|.

    ``class_df``: (C, F) counts, dense or sparse; computed a few classes at a time (at most ``chunk`` cells),
    in float64, so memory stays O(F) whatever the number of classes.
    """
    class_df = class_df.coalesce() if class_df.is_sparse else class_df.to_sparse()
    C, F = class_df.shape
    rows, cols = class_df.indices()
    counts = class_df.values().double()
    total = torch.zeros(F, dtype=torch.float64).index_add_(0, cols, counts)  # df over all classes
    per_class = torch.zeros(C, dtype=torch.float64).index_add_(0, rows, counts)
    norm_own = alpha * F + per_class  # |a + df_c|_1
    norm_rest = alpha * F + per_class.sum() - per_class  # |a + df_not_c|_1
    best = torch.zeros(F, dtype=torch.float64)
    step = max(1, chunk // max(F, 1))
    for lo in range(0, C, step):
        hi = min(C, lo + step)
        sel = (rows >= lo) & (rows < hi)
        dense = torch.zeros(hi - lo, F, dtype=torch.float64).index_put_((rows[sel] - lo, cols[sel]), counts[sel])
        r = (torch.log((dense + alpha) / norm_own[lo:hi, None])
             - torch.log((total - dense + alpha) / norm_rest[lo:hi, None]))
        best = torch.maximum(best, r.abs().amax(0))
    return best.float()


def smooth_idf(df: torch.Tensor, n_docs: int) -> torch.Tensor:
    """scikit-learn's smoothed IDF: log((1 + N) / (1 + df)) + 1."""
    return torch.log((1.0 + n_docs) / (1.0 + df)) + 1.0
